from __future__ import annotations

import warnings

import pytest
from rich.console import Console

from framefarm.backends import Local
from framefarm.cli.context import Context
from framefarm.cli.monitor import PageActions
from framefarm.monitor.app import Monitor, create_app
from tests.monitor_jobs import Farm

with warnings.catch_warnings():  # starlette's note about httpx's successor; the client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def farm(tmp_path):
    farm = Farm(tmp_path)
    yield farm
    for gate in farm.held.values():
        gate.set()
    for job_id in farm.manager.running_here():
        farm.manager.wait(job_id, timeout=30)
    farm.repository.close()


def monitor_of(farm: Farm) -> Monitor:
    """The monitor's own manager over the farm's store (it runs what the page resumes), with the CLI's actions."""
    manager = farm.another_process()
    context = Context(home=farm.home, out=Console(), err=Console(stderr=True))
    return Monitor(manager, PageActions(context, Local(farm.home), manager), interval=0.05)


@pytest.fixture
def monitor(farm):
    monitor = monitor_of(farm)
    yield monitor
    for job_id in monitor.manager.running_here():
        monitor.manager.wait(job_id, timeout=30)


@pytest.fixture
def client(monitor):
    return TestClient(create_app(monitor), base_url="http://127.0.0.1:8765")
