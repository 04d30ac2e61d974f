"""Bounded tails of long text: what a chunk record keeps of a log (the whole log goes to storage).

A low module (it imports only ``config``), so the records (``status``) and storage (``storage.logs``)
share one rule without storage depending on the job model.
"""

from __future__ import annotations

from framefarm.config import TAIL_CHARS

TAIL_MARK = "…"  # starts a tail that was cut


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The last ``limit`` characters of ``text``, marked when cut."""
    if len(text) <= limit:
        return text
    return TAIL_MARK + text[-(limit - 1):]


def is_cut(text: str, limit: int = TAIL_CHARS) -> bool:
    """True when ``text`` looks like a tail ``tail`` cut: only then was the full text kept elsewhere."""
    return len(text) == limit and text.startswith(TAIL_MARK)
