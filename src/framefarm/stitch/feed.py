"""ChunkFeed: a merge's chunks, downloaded in order on a pool, each served to ffmpeg as it lands.

ffmpeg's concat demuxer opens its inputs one after the other, and an MP4 input must be seekable
(its index may be at the end), so it cannot read a pipe. The feed serves every chunk over HTTP on
127.0.0.1 (ranged reads are seeks); a request for a chunk still downloading waits for it, so
ffmpeg joins chunk k while the chunks after it download. A chunk whose download failed answers 502
at once, ffmpeg stops, and the merge reports the download's own error, which names the chunk.

Every wait is bounded: a request waits at most ``wait_timeout`` seconds, and closing the feed
cancels the downloads not yet started and wakes every waiting request.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from framefarm.errors import StitchError
from framefarm.stitch.records import MediaRecord

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")

logger = logging.getLogger(__name__)


class ChunkFeed:
    """``with ChunkFeed(download, paths) as feed``: ``download(index)`` fetches chunk ``index`` to
    ``paths[index]`` (raising StitchError naming it), from the moment the feed is entered; the feed
    is an ``Arriving`` for ``FfmpegStitcher.stitch_arriving``, with the chunks' ``records`` as the
    caller found them (none: each is probed once it has landed)."""

    def __init__(self, download: Callable[[int], Path], paths: Sequence[Path], *, workers: int = 8,
                 wait_timeout: float = 3600) -> None:
        self.paths = list(paths)
        self.records: list[MediaRecord | None] = [None] * len(self.paths)
        self._download, self._workers, self._wait_timeout = download, workers, wait_timeout
        self._pool: ThreadPoolExecutor | None = None
        self._landed: list[Future[Path]] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> ChunkFeed:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="framefarm-download")
        self._landed = [self._pool.submit(self._download, index) for index in range(len(self.paths))]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # a started download ends within its client's timeouts
            self._pool = None

    def wait(self, index: int) -> Path:
        """Chunk ``index`` once it has landed; the download's StitchError if it failed (bounded)."""
        try:
            return self._landed[index].result(timeout=self._wait_timeout)
        except FutureTimeout:
            raise StitchError(f"chunk {index}: not downloaded within {self._wait_timeout:g} s") from None
        except CancelledError:
            raise StitchError(f"chunk {index}: its download was cancelled") from None

    def release(self, index: int) -> None:
        """Chunk ``index`` has been joined: its download is deleted (the disk holds the chunks not yet
        joined, not all of them). A store's own file, read in place, is left alone."""
        path = self.wait(index)
        if path == self.paths[index]:
            path.unlink(missing_ok=True)

    def landed(self) -> list[Path]:
        """Every chunk, once all have landed (the first failure in chunk order otherwise)."""
        return [self.wait(index) for index in range(len(self.paths))]

    def failure(self) -> StitchError | None:
        """The first failed download in chunk order, among those that finished."""
        for future in self._landed:
            if future.done() and not future.cancelled() and isinstance(future.exception(), StitchError):
                return future.exception()  # type: ignore[return-value]
        return None

    def source(self, index: int) -> str:
        """Where ffmpeg reads chunk ``index``: a URL that answers once the chunk has landed."""
        if self._server is None:
            self._server = _FeedServer(self)
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="framefarm-chunk-feed", daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{index}{self.paths[index].suffix}"


class _FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feed: ChunkFeed) -> None:
        super().__init__(("127.0.0.1", 0), _ChunkRequest)
        self.feed = feed


class _ChunkRequest(BaseHTTPRequestHandler):
    """GET/HEAD /<index><suffix>, with one byte range (``bytes=a-`` or ``bytes=a-b``) or none."""

    protocol_version = "HTTP/1.1"
    server: _FeedServer

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        feed = self.server.feed
        name = self.path.lstrip("/").split(".", 1)[0]
        if not name.isdigit() or int(name) >= len(feed.paths):
            self._fail(404, "no such chunk")
            return
        try:
            path = feed.wait(int(name))
        except StitchError as exc:
            self._fail(502, str(exc))
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        wanted = _RANGE.match(self.headers.get("Range", "").strip())
        if wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(206 if wanted else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with open(path, "rb") as source, contextlib.suppress(ConnectionError):  # ffmpeg seeks by hanging up
                self.connection.sendfile(source, start, end - start + 1)

    def _fail(self, status: int, why: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        logger.debug("chunk feed answered %s to %s: %s", status, self.path, why)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("chunk feed: " + format, *args)
