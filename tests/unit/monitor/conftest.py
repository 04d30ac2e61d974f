from __future__ import annotations

import warnings

import pytest

from tests.monitor_jobs import Farm

with warnings.catch_warnings():  # starlette's note about httpx's successor; the client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from framefarm.monitor.app import create_app


@pytest.fixture
def farm(tmp_path):
    farm = Farm(tmp_path)
    yield farm
    farm.close()


@pytest.fixture
def monitor(farm):
    monitor = farm.monitor()
    yield monitor
    farm.close(monitor)


@pytest.fixture
def client(monitor):
    return TestClient(create_app(monitor), base_url="http://127.0.0.1:8765")
