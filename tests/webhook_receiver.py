"""A real webhook receiver on 127.0.0.1 for the tests: an http.server in a thread that answers with
scripted statuses and checks each delivery with its OWN implementation of the signature scheme
(not framefarm.webhooks.verify), so a mistake in framefarm's signing cannot hide behind itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int
    genuine: bool
    at: float = field(default_factory=time.time)

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


def genuine(body: bytes, header: str, secret: str, *, now: float, tolerance: float = 300) -> bool:
    """Stripe-style check written out here: t within tolerance, HMAC-SHA256 of "t.body" under secret."""
    match = SIGNATURE.match(header or "")
    if match is None or abs(now - int(match.group(1))) > tolerance:
        return False
    expected = hmac.new(secret.encode(), match.group(1).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(2))


class Receiver:
    """``with Receiver(secret, answers=[500, 500]) as hook:`` POSTs to ``hook.url`` get the scripted
    answers in turn, then 200; ``hook.received`` lists every request; ``hook.arrived`` is set on each."""

    def __init__(self, secret: str, answers: list[int] | None = None) -> None:
        self.secret = secret
        self.answers = list(answers or [])
        self.received: list[Received] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.received.append(Received(
                    dict(self.headers.items()), body, status,
                    genuine(body, self.headers.get("Framefarm-Signature", ""), receiver.secret, now=time.time())))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/framefarm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
