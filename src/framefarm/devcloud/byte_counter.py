"""A TCP relay on 127.0.0.1 that counts what each connection downloads: put it in front of moto's S3 to
measure what a reader (ffmpeg on a presigned URL) really fetched, as the storage server sent it.

Each connection is recorded with when it opened and closed, its first request line (``GET /bucket/key?…``,
with the query string cut: a presigned URL's is a credential) and the bytes sent back to the client. A
reader that stops early (ffmpeg closing an open-ended ``Range: bytes=N-`` request after a seek) is
charged what crossed the relay before it closed, buffers in flight included: an upper bound.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

BUFFER = 256 * 1024
ACCEPT_POLL = 0.2  # how often the accept loop looks at its stop flag


@dataclass
class RelayedConnection:
    opened_at: float
    request_line: str = ""
    bytes_down: int = 0
    closed_at: float | None = None


class CountingRelay:
    """``with CountingRelay(upstream_port) as relay``: ``relay.port`` forwards to 127.0.0.1:upstream_port."""

    def __init__(self, upstream_port: int, *, clock: Callable[[], float] = time.time) -> None:
        self.upstream_port = upstream_port
        self._clock = clock
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._connections: list[RelayedConnection] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="counting-relay", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connections(self) -> list[RelayedConnection]:
        with self._lock:
            return list(self._connections)

    def __enter__(self) -> CountingRelay:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=10)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = RelayedConnection(opened_at=self._clock())
            with self._lock:
                self._connections.append(record)
            thread = threading.Thread(target=self._relay, args=(client, record), name="counting-relay-conn",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket, record: RelayedConnection) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()
            return
        client.settimeout(300)
        upstream.settimeout(300)
        up = threading.Thread(target=self._pump, args=(client, upstream, record, False), daemon=True)
        up.start()
        self._pump(upstream, client, record, True)
        up.join(timeout=300)
        record.closed_at = self._clock()

    def _pump(self, source: socket.socket, target: socket.socket, record: RelayedConnection, down: bool) -> None:
        try:
            while data := source.recv(BUFFER):
                if down:
                    record.bytes_down += len(data)
                elif not record.request_line:
                    record.request_line = data.split(b"\r\n", 1)[0].decode("latin-1").split("?", 1)[0]
                target.sendall(data)
        except OSError:  # either side went away: the connection is over
            return
        finally:
            for side in (source, target):  # one side is done: so is the other
                with contextlib.suppress(OSError):
                    side.shutdown(socket.SHUT_RDWR)
            source.close()
