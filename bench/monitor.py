"""How fast the monitor's job page comes up, and what a live update costs on the wire.

For a job of 100 and one of 10,000 chunks (recorded into a SQLite store with Lambda-like figures by
``tests.monitor_jobs.Farm.recorded_job``; every 17th chunk retried, so earlier attempts are read too):

- server side: the time to answer ``GET /jobs/<id>`` over HTTP from uvicorn (first request, then the
  median of ``--runs`` more), and the page's size;
- in the browser (headless Chromium): the time from navigation to first contentful paint and to the
  load event (median of ``--runs``);
- live: the bytes of each server-sent event while a 100-chunk job runs to its end, and the bytes of the
  charts a page fetches again when attempts finished (for both sizes).

    python bench/monitor.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests package

from tests.browser import chromium, serving
from tests.monitor_jobs import Farm

from framefarm.monitor.app import create_app

SIZES = (100, 10_000)


def fetch(url: str) -> tuple[float, int]:
    """Seconds to the whole answer, and its bytes."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        body = answer.read()
    return time.perf_counter() - started, len(body)


def server_side(url: str, runs: int) -> str:
    first, size = fetch(url)
    median = statistics.median(fetch(url)[0] for _ in range(runs))
    return f"first {first * 1000:7.0f} ms, then median {median * 1000:7.0f} ms; page {size / 1024:7.1f} KB"


def in_browser(browser: object, url: str, runs: int) -> str:
    paints, loads = [], []
    for _ in range(runs):
        browser.get("about:blank")  # type: ignore[attr-defined]
        browser.get(url)  # type: ignore[attr-defined]
        timing = browser.execute_async_script(  # type: ignore[attr-defined]  # once the paint is reported
            "const done = arguments[arguments.length - 1];"
            "new PerformanceObserver((list, seen) => {"
            "  const paint = list.getEntriesByName('first-contentful-paint')[0];"
            "  if (paint) { seen.disconnect();"
            "    done([paint.startTime, performance.getEntriesByType('navigation')[0].loadEventEnd]); }"
            "}).observe({type: 'paint', buffered: true});")
        paints.append(timing[0])
        loads.append(timing[1])
    return (f"first contentful paint median {statistics.median(paints):7.0f} ms, "
            f"load event median {statistics.median(loads):7.0f} ms")


def live_updates(farm: Farm, url: str) -> str:
    """Follow a 100-chunk job's events while its chunks end one by one; bytes per event."""
    job_id = farm.running_job("live", chunks=100)
    sizes: list[int] = []
    waiting = list(range(100))
    with urllib.request.urlopen(f"{url}/jobs/{job_id}/events", timeout=120) as stream:
        for raw in stream:
            line = raw.decode()
            if not line.startswith("data: "):
                continue
            sizes.append(len(raw) + 1)  # the blank line that ends an event
            if json.loads(line[len("data: "):])["settled"]:
                break
            if waiting:
                farm.release(waiting.pop(0))
    return (f"{len(sizes)} events for 100 chunks: median {statistics.median(sizes):.0f} B, "
            f"max {max(sizes)} B, total {sum(sizes) / 1024:.1f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description="the monitor's first render and live update sizes")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        farm = Farm(Path(home))
        for size in SIZES:
            farm.recorded_job(f"job-{size}", size, slots=min(size, 200))
        monitor = farm.monitor()
        with serving(create_app(monitor)) as url:
            print("job page, server side (HTTP GET from uvicorn, SQLite store):")
            for size in SIZES:
                print(f"  {size:6d} chunks: {server_side(f'{url}/jobs/job-{size}', args.runs)}")
            print("job page in headless Chromium:")
            with chromium() as browser:
                browser.set_script_timeout(60)  # type: ignore[attr-defined]
                for size in SIZES:
                    print(f"  {size:6d} chunks: {in_browser(browser, f'{url}/jobs/job-{size}', args.runs)}")
            print("live updates (server-sent events):")
            print(f"  {live_updates(farm, url)}")
            for size in SIZES:
                seconds, length = fetch(f"{url}/jobs/job-{size}/charts")
                print(f"  charts redrawn after attempts end, {size:6d} chunks: {length / 1024:.1f} KB "
                      f"in {seconds * 1000:.0f} ms")
        farm.close(monitor)


if __name__ == "__main__":
    main()
