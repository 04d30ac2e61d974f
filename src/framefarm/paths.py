"""Path safety shared by the job model (``spec``) and storage keys, so neither imports the other.

A leaf module: no framefarm imports.
"""

from __future__ import annotations


def safe_relative_path(value: str) -> str:
    """Return ``value`` if it is a relative path that stays inside its base directory.

    Messages leave out the field name: the caller's location names it.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty relative path")
    if "\x00" in value or "\\" in value:
        raise ValueError(f"{value!r} contains a NUL byte or a backslash")
    # Plain string checks: this runs for every chunk of every spec loaded (PurePosixPath is 10x slower).
    if value.startswith(("/", "~")) or ".." in value.split("/"):
        raise ValueError(f"{value!r} escapes the job directory; use a path relative to it")
    if len(value) > 1024:
        raise ValueError("is longer than 1024 characters")
    return value
