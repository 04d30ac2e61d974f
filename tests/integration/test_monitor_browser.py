"""The monitor in a real browser (headless Chromium through Selenium) against the real server."""

from __future__ import annotations

import time

import pytest

from framefarm.attempt_history import earlier_attempts
from framefarm.monitor.app import create_app
from framefarm.monitor.report import report_html
from framefarm.status import ChunkState, JobState
from tests.browser import chromium, serving
from tests.helpers import eventually
from tests.monitor_jobs import farm_fixture, monitor_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture
def site(monitor):
    with serving(create_app(monitor)) as url:
        yield url


def bars(driver) -> list[tuple[int, int, str]]:
    """(chunk, attempt, outcome) of every bar of the timeline on the page."""
    found = driver.execute_script(
        "return [...document.querySelectorAll('svg.timeline rect.bar')]"
        ".map(b => [+b.dataset.chunk, +b.dataset.attempt, b.classList[1]])")
    return [tuple(bar) for bar in found]


def test_the_jobs_page_lists_a_finished_and_a_running_job(browser, farm, site):
    # GIVEN a rendered job and a running one
    farm.finished_job_with_a_retry()
    farm.running_job()
    # WHEN the jobs page opens
    browser.get(site + "/")
    # THEN both are listed with their state
    rows = {row.get_attribute("data-job"): row.find_element("css selector", ".state").text
            for row in browser.find_elements("css selector", "tr.job")}
    assert rows == {"finished": "rendered", "running": "running"}


def test_the_timeline_has_a_row_per_chunk_and_a_bar_per_attempt(browser, farm, site):
    # GIVEN a rendered job of 6 chunks whose chunk 2 failed once
    job_id = farm.finished_job_with_a_retry(chunks=6, retried=2)
    # WHEN its page opens
    browser.get(f"{site}/jobs/{job_id}")
    # THEN the timeline shows six rows and seven bars: two on chunk 2's row, failed then completed
    assert len(browser.find_elements("css selector", "svg.timeline g.row")) == 6
    shown = bars(browser)
    assert len(shown) == 7 and [bar for bar in shown if bar[0] == 2] == [(2, 1, "failed"), (2, 2, "completed")]
    # AND hovering a bar has its attempt's figures, and the row's label opens that chunk's logs
    title = browser.execute_script("return document.querySelector('rect.bar.failed title').textContent")
    assert title.startswith("chunk 2 attempt 1: failed · duration ") and "cost $" in title
    browser.find_element("css selector", 'a[href$="/chunks/2/logs"]').click()
    eventually(lambda: "attempt 2 of 2" in browser.page_source, what="the logs page")
    assert "boom in chunk 2 attempt 1" in browser.page_source


def test_progress_moves_without_a_reload_while_the_job_runs(browser, farm, site):
    # GIVEN a job whose chunks wait, and its page open with a mark a reload would wipe
    job_id = farm.running_job(chunks=3)
    browser.get(f"{site}/jobs/{job_id}")
    browser.execute_script("window.stillThisPage = true")
    assert browser.find_element("id", "progress").text.startswith("0% (0/3")

    def progress() -> str:
        return browser.find_element("id", "progress").text

    # WHEN the chunks end one by one
    for done, chunk_id in enumerate(range(3), start=1):
        farm.release(chunk_id)
        # THEN the progress on the page follows each, and the timeline grows its bars
        eventually(lambda done=done: progress().startswith(f"{int(100 * done / 3)}% ({done}/3"), timeout=30,
                   what=f"{done}/3 shown")
    eventually(lambda: browser.find_element("id", "state").text == "rendered", timeout=30, what="rendered shown")
    eventually(lambda: len(bars(browser)) == 3, timeout=30, what="three bars drawn")
    # AND it was the same page all along
    assert browser.execute_script("return window.stillThisPage") is True


def test_cancel_from_the_page_cancels_the_job(browser, farm, site):
    # GIVEN a running job with its first chunk in flight, and its page open
    job_id = farm.running_job()
    eventually(lambda: farm.manager.get_job(job_id).chunk(0).state is ChunkState.RUNNING, what="chunk 0 running")
    browser.get(f"{site}/jobs/{job_id}")
    # WHEN Cancel is clicked
    browser.find_element("id", "cancel").click()
    # THEN the job ends cancelled, and the page shows it
    assert farm.manager.wait(job_id, timeout=30).state is JobState.CANCELLED
    eventually(lambda: browser.find_element("id", "state").text == "cancelled", timeout=30, what="cancelled shown")


def test_the_report_file_renders_the_same_timeline_offline(browser, farm, site, tmp_path):
    # GIVEN a rendered job with a retried chunk, and the timeline its live page draws
    job_id = farm.finished_job_with_a_retry(chunks=5, retried=1)
    browser.get(f"{site}/jobs/{job_id}")
    live = bars(browser)
    # WHEN its report is written and opened from disk with the network cut off
    report = tmp_path / "report.html"
    report.write_text(report_html(farm.manager.get_job(job_id), earlier_attempts(farm.storage, job_id), time.time()))
    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    try:
        browser.get(report.as_uri())
        # THEN it draws the same rows and bars, and every resource it uses is inside the file
        assert bars(browser) == live and len(live) == 6
        assert len(browser.find_elements("css selector", "svg.timeline g.row")) == 5
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
        assert browser.find_element("tag name", "h1").text == f"job {job_id}"
    finally:
        browser.delete_network_conditions()
