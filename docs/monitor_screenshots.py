"""Make docs/img/monitor-finished.png (a finished job with retried chunks) and docs/img/monitor-running.png
(a job mid-run): the monitor's job page in headless Chromium, over a throwaway store.

The jobs are recorded straight into the store with Lambda-like figures (``tests.monitor_jobs.Farm.recorded_job``:
seconds-long attempts, cold starts, throttled calls, a timed-out attempt retried), so the pictures show
what a real run's page shows without a cloud account.

    python docs/monitor_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests package

from tests.browser import chromium, serving
from tests.monitor_jobs import Farm

from framefarm.monitor.app import create_app

SHOTS = {"monitor-finished.png": dict(job_id="finished-job", chunks=24, slots=8),
         "monitor-running.png": dict(job_id="running-job", chunks=40, slots=8, running_at=12.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        farm = Farm(Path(home))
        jobs = {name: farm.recorded_job(**shot) for name, shot in SHOTS.items()}  # type: ignore[arg-type]
        monitor = farm.monitor()
        with serving(create_app(monitor)) as url, chromium(1000, 980) as browser:
            for name, job_id in jobs.items():
                browser.get(f"{url}/jobs/{job_id}")
                browser.save_screenshot(str(args.out / name))
                print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} KB")
        farm.close(monitor)


if __name__ == "__main__":
    main()
