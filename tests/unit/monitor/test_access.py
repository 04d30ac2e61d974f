"""Loopback by default; any other address only with a token; no cross-site form posts."""

from __future__ import annotations

import pytest

from framefarm.errors import JobSpecError
from framefarm.monitor.access import check_binding, is_loopback
from framefarm.monitor.app import create_app
from tests.unit.monitor.conftest import TestClient


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_need_no_token(host):
    # GIVEN a loopback address  WHEN the monitor binds it without a token  THEN that is allowed
    assert is_loopback(host)
    check_binding(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "monitor.example.com"])
def test_any_other_address_needs_a_token(host):
    # GIVEN an address other machines can reach  WHEN bound without a token  THEN one line says to give one
    with pytest.raises(JobSpecError, match=rf"^--host {host} lets other machines in: give --token TOKEN too"):
        check_binding(host, None)
    check_binding(host, "s3cret")


def test_with_a_token_a_request_needs_the_bearer_header_or_a_session_from_the_link(farm, monitor):
    # GIVEN the monitor bound beyond loopback with a token
    farm.finished_job_with_a_retry()
    client = TestClient(create_app(monitor, token="s3cret", loopback=False), base_url="http://10.0.0.5:8765")
    # WHEN a request carries nothing, or the wrong token  THEN it is refused
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/?token=nope").status_code == 401
    # WHEN it carries the bearer token  THEN it is served
    assert client.get("/jobs/finished", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # WHEN the link with ?token= is opened  THEN it sets a session cookie and drops the token from the address
    login = client.get("/jobs/finished?token=s3cret&x=1", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/jobs/finished?x=1"
    assert "framefarm_session=" in login.headers["set-cookie"] and "s3cret" not in login.headers["set-cookie"]
    assert "httponly" in login.headers["set-cookie"].lower()
    # AND later requests with that cookie are served
    assert client.get("/jobs/finished").status_code == 200


def test_a_form_from_another_site_may_not_act_and_a_foreign_host_name_is_refused(farm, client):
    # GIVEN a running job and the monitor on loopback
    job_id = farm.running_job()
    # WHEN a page on another site posts Cancel from the operator's browser
    answer = client.post(f"/jobs/{job_id}/cancel", headers={"Origin": "https://evil.example"})
    # THEN it is refused and the job keeps running
    assert answer.status_code == 403
    assert farm.manager.summary(job_id).state.value == "running" and not farm.manager.summary(job_id).pending_action
    # AND a request naming another host (DNS rebinding) is refused
    assert client.get("/", headers={"Host": "evil.example:8765"}).status_code == 400
    # AND the page's own origin may post
    assert client.post(f"/jobs/{job_id}/pause", headers={"Origin": "http://127.0.0.1:8765"},
                       follow_redirects=False).status_code == 303


@pytest.mark.parametrize("address", ["127.0.0.2:8765", "[::1]:8765", "localhost:8765"])
def test_every_loopback_address_it_may_bind_is_served(farm, monitor, address):
    # GIVEN the monitor on a loopback address other than 127.0.0.1, which it may bind without a token
    farm.finished_job_with_a_retry()
    client = TestClient(create_app(monitor), base_url=f"http://{address}")
    # WHEN the browser asks for the jobs page by that address  THEN it is served, not refused as foreign
    assert client.get("/").status_code == 200
