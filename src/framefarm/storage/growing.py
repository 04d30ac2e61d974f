"""Uploading a file while another process writes it (the stitched video, as ffmpeg writes it).

The writer appends, except within the file's first ``settled_from`` bytes, which it may rewrite
until it is done (ffmpeg fills in the index it reserved at the front, and the media data's size).
``start`` is called before the writer starts and ``finish`` once it has exited. A store that can
take a file in parts (S3's multipart upload, ``storage.s3``) sends every part past the unsettled
head as soon as it is written, and the head last; any other store takes the whole file at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framefarm.storage.base import Storage


class UploadWhenWritten:
    """The plain case: the finished file goes up in one ``put_file``."""

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage, self.key = storage, key
        self._path: Path | None = None

    def start(self, path: Path, settled_from: int | None) -> None:
        """The writer is about to write ``path``; bytes from ``settled_from`` on are only ever appended
        (None: the writer may rewrite anything, as a +faststart pass does)."""
        self._path = path

    def finish(self, written: bool) -> None:
        """The writer exited; ``written``: the file is whole (else the upload is dropped)."""
        if written and self._path is not None:
            self.storage.put_file(self.key, self._path)
