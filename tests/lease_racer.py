"""One of several runners racing for the same job: ``python -m tests.lease_racer DB JOB_ID ACTION GO [TOKEN]``.

Says it is ready (GO.ready-PID), waits (bounded) until the file GO exists, so racers start together, then ``continue``s the job with
the hand-over TOKEN or ``resume``s it, on the SQLite store DB with local workers. Prints ``ran STATE``
or ``refused REASON``: a runner that finds the job held by another is refused, not an error.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from framefarm import ExecutionOptions, JobExecutor, JobManager, LocalWorkerAdapter, SqliteJobRepository
from framefarm.errors import JobStateError


def main(db: str, job_id: str, action: str, go: str, token: str | None = None) -> int:
    manager = JobManager(SqliteJobRepository(db), JobExecutor(LocalWorkerAdapter()))
    options = ExecutionOptions(concurrency=4, merge=False, job_dir=str(Path(db).parent / job_id))
    Path(f"{go}.ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            print("refused the start signal never came")
            return 1
        time.sleep(0.005)
    try:
        if action == "continue":
            final = manager.continue_job(job_id, options, handed_by=token)
        else:
            final = manager.resume_job(job_id, options, background=False)
    except JobStateError as exc:
        print(f"refused {exc}")
        return 0
    print(f"ran {final.state.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
