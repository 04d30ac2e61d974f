"""The Cloud Run worker: an HTTP server that runs one chunk per request (``infra/cloudrun/``).

    POST /  {job_id, chunk_id, spec_url}
      200 {exit_code, kind, stdout, stderr, output_key, duration_ms, error}   the worker answered (framefarm.protocol)
      400 {error}   bad JSON or fields
      429 {error}   this instance is already running a chunk (Retry-After: 1)
    anything but POST: 405

A Flask app served by waitress (a production WSGI server). One chunk at a time per instance: a
second request is refused at once with 429 rather than queued, so the caller's backoff (not an
instance's queue) decides where it runs. Authentication is Cloud Run's: the service requires an
ID token from an identity with roles/run.invoker before a request reaches this code.

    python -m framefarm.worker.cloud_run_server      # listens on $PORT (8080), $HOST (0.0.0.0)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from framefarm.config import ENV_CHUNK_TIMEOUT
from framefarm.protocol import ChunkResponse, parse_request
from framefarm.worker.runtime import run_chunk

logger = logging.getLogger(__name__)


def create_app(*, runner: Callable[..., ChunkResponse] = run_chunk, timeout: float | None = None) -> Any:
    """The WSGI app. ``runner`` and ``timeout`` are injectable for tests."""
    from flask import Flask, jsonify, request

    app = Flask("framefarm-worker")
    busy = threading.Lock()
    chunk_timeout = timeout if timeout is not None else _env_float(ENV_CHUNK_TIMEOUT)

    @app.post("/")
    def run() -> Any:
        event = request.get_json(silent=True)
        if event is None:
            return jsonify(error="bad request: the body must be a JSON object with job_id, chunk_id, spec_url"), 400
        parsed = parse_request(event)
        if isinstance(parsed, ChunkResponse):
            return jsonify(error=parsed.error), 400
        if not busy.acquire(blocking=False):
            response = jsonify(error="busy: this instance runs one chunk at a time; retry")
            response.headers["Retry-After"] = "1"
            return response, 429
        try:
            result = runner(parsed, timeout=chunk_timeout)
        finally:
            busy.release()
        logger.info("job %s chunk %s: exit %s in %.0f ms", parsed.job_id, parsed.chunk_id, result.exit_code,
                    result.duration_ms)
        return jsonify(result.model_dump()), 200

    return app


def serve(app: Any, *, host: str, port: int) -> Any:
    """A waitress server for ``app`` (not started): ``server.run()`` serves, ``server.close()`` stops.

    Two threads: one runs the chunk, the other answers a concurrent request with 429.
    """
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=2, channel_timeout=3600)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = serve(create_app(), host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8080")))
    server.run()


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else None


if __name__ == "__main__":
    main()
