"""The signature of a webhook delivery, and its check on the receiving end.

    Framefarm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The timestamp is signed with the body, so a captured delivery cannot be replayed outside the
receiver's tolerance window, and the body cannot be changed without the signature failing. A
header may carry several ``v1=`` values (one per secret, while a secret is being rotated).

    from framefarm.webhooks import verify
    verify(request.body, request.headers["Framefarm-Signature"], secret)   # SignatureError if not genuine
"""

from __future__ import annotations

import hashlib
import hmac
import time

from framefarm.errors import FramefarmError

SIGNATURE_HEADER = "Framefarm-Signature"
EVENT_HEADER = "Framefarm-Event"
DELIVERY_HEADER = "Framefarm-Delivery"
DEFAULT_TOLERANCE = 300.0  # seconds a receiver accepts between the signature's time and its own clock


class SignatureError(FramefarmError):
    """A webhook delivery whose signature is missing, malformed, stale or does not match its body."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, timestamp: int) -> str:
    """The ``Framefarm-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(body: bytes | str, header: str | None, secret: str, tolerance: float = DEFAULT_TOLERANCE, *,
           now: float | None = None) -> int:
    """Check a delivery: ``body`` as received (raw bytes), its ``Framefarm-Signature`` header and the
    shared secret. Returns the signed timestamp; SignatureError (one line) when the header is missing
    or malformed, its time is more than ``tolerance`` seconds from now (either way), or no signature
    matches. Signatures are compared in constant time."""
    raw = body.encode() if isinstance(body, str) else body
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header: not a signed framefarm delivery")
    timestamps, signatures = [], []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex>, got {header[:80]!r}")
    timestamp = int(timestamps[0])
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance:
        when = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s in the future"
        raise SignatureError(f"{SIGNATURE_HEADER}: signed {when}, outside the {tolerance:g} s tolerance "
                             "(a replayed delivery, or a clock off)")
    expected = signature(secret, timestamp, raw)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError(f"{SIGNATURE_HEADER}: no signature matches the body (changed in transit, "
                             "or signed with another secret)")
    return timestamp
