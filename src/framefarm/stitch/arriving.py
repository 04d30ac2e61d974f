"""Arriving: the chunk videos a stitch joins, as they land (a merge's downloads) or already there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from framefarm.stitch.records import MediaRecord


class Arriving(Protocol):
    """Chunk videos still arriving: where each lands, its record from the store (None: probe it once
    it has landed), a source ffmpeg reads it from as soon as it has landed, a bounded wait for it
    (StitchError naming the chunk if it cannot be had), and word that the join is done with it."""

    @property
    def paths(self) -> Sequence[Path]: ...

    @property
    def records(self) -> Sequence[MediaRecord | None]: ...

    def source(self, index: int) -> str: ...

    def wait(self, index: int) -> Path: ...

    def release(self, index: int) -> None:
        """The join is done with chunk ``index`` (a download may be deleted; a given file is kept)."""


@dataclass(frozen=True)
class Present:
    """Chunk videos that are all there already, with the records beside them."""

    paths: Sequence[Path]
    records: Sequence[MediaRecord | None]

    def source(self, index: int) -> str:
        return str(self.paths[index])

    def wait(self, index: int) -> Path:
        return self.paths[index]

    def release(self, index: int) -> None:
        """The caller's files stay."""
