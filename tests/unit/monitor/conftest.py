from __future__ import annotations

import warnings

import pytest

from tests.monitor_jobs import farm_fixture, monitor_fixture  # noqa: F401 - fixtures

with warnings.catch_warnings():  # starlette's note about httpx's successor; the client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from framefarm.monitor.app import create_app


@pytest.fixture
def client(monitor):
    return TestClient(create_app(monitor), base_url="http://127.0.0.1:8765")
