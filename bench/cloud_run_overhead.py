"""Per-request overhead of CloudRunWorkerAdapter + the worker server vs running the chunk directly.

100 trivial chunks (``cp`` of a small file) one at a time: once through the adapter, HTTP and the
real waitress server (spec read from storage, fresh temp dir, upload), once as the bare command
through LocalWorkerAdapter in a temp dir. Prints per-chunk times and the ratio.

    python bench/cloud_run_overhead.py [--chunks 100]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from framefarm import LocalStorage, LocalWorkerAdapter, WorkerJob, plan_job
from framefarm.adapters.cloud_run import CloudRunWorkerAdapter
from framefarm.repositories.base import put_spec
from framefarm.worker.cloud_run_server import create_app, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        source = base / "frame.bin"
        source.write_bytes(b"x" * 4096)
        command = ["cp", str(source), "{output}"]
        spec = plan_job({"id": "overhead", "width": 64, "height": 48, "fps": 30, "total_frames": args.chunks,
                         "frames_per_chunk": 1, "command": command})
        storage = LocalStorage(base / "store")
        put_spec(storage, spec)

        server = serve(create_app(), host="127.0.0.1", port=0)
        threading.Thread(target=server.run, daemon=True).start()
        adapter = CloudRunWorkerAdapter(f"http://127.0.0.1:{server.effective_port}", storage)
        try:
            adapter.execute(WorkerJob(command="", meta={"job_id": spec.id, "chunk_id": 0}))  # warm up
            started = time.perf_counter()
            for chunk in spec.chunks:
                assert adapter.execute(WorkerJob(command="", meta={"job_id": spec.id, "chunk_id": chunk.id})).ok
            served = time.perf_counter() - started
        finally:
            server.close()

        local = LocalWorkerAdapter()
        started = time.perf_counter()
        for chunk in spec.chunks:
            with tempfile.TemporaryDirectory(dir=base) as work:
                (Path(work) / "chunks").mkdir()
                assert local.execute(WorkerJob(command=chunk.command, cwd=work)).ok
        direct = time.perf_counter() - started
    print(f"{args.chunks} trivial chunks (cp of 4 KB), one at a time")
    print(f"  adapter + HTTP + worker server + storage: {served / args.chunks * 1000:.1f} ms per chunk")
    print(f"  the command run directly:                 {direct / args.chunks * 1000:.1f} ms per chunk")
    print(f"  overhead {(served - direct) / args.chunks * 1000:.1f} ms per chunk; ratio {served / direct:.2f}x")


if __name__ == "__main__":
    main()
