"""Why a worker call failed, as one typed value: ``FailureKind``.

Each adapter sets the kind once, where it meets its backend (as HTTPX maps a transport's errors to
its own exception types in one place); everything downstream (retries, the job store, the CLI)
reads the kind and never parses ``error`` text or exit codes. A leaf module, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class FailureKind(str, Enum):
    """What went wrong with one call. Transient kinds draw on ``transient_retries``, the others on ``retries``."""

    EXIT_CODE = "exit_code"  # the command ran and exited non-zero (or could not be started: 126/127)
    FUNCTION_ERROR = "function_error"  # the worker itself failed: Lambda FunctionError, a handler/server crash
    THROTTLED_OUT = "throttled_out"  # the platform kept refusing the call until the adapter's retries ran out
    TIMEOUT = "timeout"  # a time limit ended the call: the command's, the function's, or the watchdog's
    CONNECTION_LOST = "connection_lost"  # the call lost its worker midway (reset, refused, read error, dead sandbox)
    NO_OUTPUT = "no_output"  # the command exited 0 but left no (or an empty) output file
    CANCELLED = "cancelled"  # the job's cancel stopped the call
    BAD_REQUEST = "bad_request"  # the worker or the platform refused the request as sent (a 4xx, bad fields)
    RESPONSE_TOO_LARGE = "response_too_large"  # the reply was over the platform's payload limit and is lost

    @property
    def transient(self) -> bool:
        """A failure of the platform rather than of the render: worth a retry under ``transient_retries``."""
        return self in TRANSIENT_KINDS


TRANSIENT_KINDS = frozenset({FailureKind.THROTTLED_OUT, FailureKind.TIMEOUT, FailureKind.CONNECTION_LOST})


def settle_kind(exit_code: int | None, kind: FailureKind | str | None, error: str | None) -> FailureKind | None:
    """The kind of a result or reply with these fields; raises ValueError when they contradict each other.

    A non-zero exit code without a kind is the command's own failure (``EXIT_CODE``); no exit code and
    no kind, or an error text on a success, say nothing true about the call and are refused.
    """
    if kind is not None:
        return FailureKind(kind)
    if exit_code is None:
        raise ValueError("a result without an exit code needs a failure kind")
    if exit_code != 0:
        return FailureKind.EXIT_CODE
    if error is not None:
        raise ValueError(f"a result with exit code 0 and an error ({error!r}) needs a failure kind")
    return None


def with_settled_kind(data: Any) -> Any:
    """A model's raw input (a WorkerResult's or a worker reply's) with its ``kind`` settled by ``settle_kind``."""
    if not isinstance(data, Mapping):
        return data
    return {**data, "kind": settle_kind(data.get("exit_code"), data.get("kind"), data.get("error"))}
