"""One formatter for pydantic's validation errors, used by job documents, submit options and chunk
requests alike: the first problem as one line, ``field.path: what is wrong (got 'value')``.

Keys and values come from outside (a job file, an event), so both are shown escaped, as ``repr``
does, when they hold a line break or another control character: a message is always one line.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import ValidationError

from framefarm.errors import JobSpecError, shown

VALUE_CHARS = 60  # a bad value is shown up to this many characters of its repr


class Problem(NamedTuple):
    """The first problem of a ValidationError: where (``chunks[1].command``, or "") and what."""

    field: str
    detail: str


def one_line(exc: ValidationError, *, prefix: str = "") -> str:
    """``exc`` as one line, its field path under ``prefix`` (``options`` gives ``options.retries: ...``)."""
    field, detail = first_problem(exc)
    count = exc.error_count()
    more = f" (and {count - 1} more problems)" if count > 1 else ""
    where = f"{prefix}.{field}" if prefix and field and not field.startswith("[") else prefix + field
    return f"{where}: {detail}{more}" if where else f"{detail}{more}"


def first_problem(exc: ValidationError) -> Problem:
    """Where the first problem is, and what it is, with the bad value when that helps."""
    first = exc.errors(include_url=False)[0]
    kind = first.get("type", "")
    # An unknown field's last location part is the caller's own key: always shown, whatever it holds.
    location = field_path(first.get("loc", ()), last_is_key=kind == "extra_forbidden")
    message = str(first.get("msg", "invalid"))
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, JobSpecError) and inner.field:
        # A nested model (pydantic calls its __init__) already named its own field.
        return Problem(f"{location}.{inner.field}" if location else inner.field, inner.detail)
    if kind == "extra_forbidden":
        message = "unknown field"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif "input" in first and kind != "missing":
        message = f"{message} (got {short_repr(first['input'])})"
    return Problem(location, message)


def field_path(loc: tuple[Any, ...], *, last_is_key: bool = False) -> str:
    """A pydantic error location as one line: ``chunks[1].command``; a key with a line break is quoted.

    Union branch and validator names (``str``, ``list[str]``) say nothing to a user and are left
    out, except in the last part when ``last_is_key``: that one is a key the input itself holds.
    """
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        is_key = last_is_key and index == len(loc) - 1
        if not is_key and isinstance(part, str) and ("[" in part or part in ("str", "int", "float")):
            continue
        text += f".{shown(str(part))}" if text else shown(str(part))
    return text


def short_repr(value: Any, limit: int = VALUE_CHARS) -> str:
    """``value``'s repr (escaped, so one line), cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
