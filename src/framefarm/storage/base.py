"""The storage contract: a flat namespace of keys holding bytes, like S3 and GCS."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from framefarm.errors import FramefarmError
from framefarm.paths import safe_relative_path
from framefarm.storage.growing import UploadWhenWritten

DEFAULT_SHARE_SECONDS = 15 * 60
MAX_SHARE_SECONDS = 60 * 60  # links handed out are short-lived: an hour at most
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600  # the longest a SigV4 (S3) or V4 (GCS) signature may last
CLIENT_CONNECTIONS = 10  # the connections an HTTP client keeps by default (requests', botocore's)
MAX_PARALLEL_REQUESTS = 64  # small requests worth having in flight at once (a merge's record reads)


@dataclass(frozen=True)
class StoredObject:
    """A stored object. ``md5`` is the content's MD5 hex digest when the store knows it."""

    key: str
    size: int
    md5: str | None = None


class Storage(ABC):
    """Keys are relative POSIX paths (see ``storage.keys``); a key may never escape the store."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, tags: Mapping[str, str] | None = None) -> None:
        """Store a file; ``tags`` label the object where the store supports it (S3 lifecycle rules)."""

    @abstractmethod
    def get_file(self, key: str, path: Path) -> None: ...

    def readable_file(self, key: str, path: Path) -> Path:
        """The object as a file to read: downloaded to ``path``, or a local store's own file, read in
        place (the caller only reads it: never writes to it, moves or deletes it). FileNotFoundError
        when there is none."""
        self.get_file(key, path)
        return path

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[StoredObject]:
        """Objects under ``prefix``, sorted by key."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""

    @abstractmethod
    def url(self, key: str) -> str: ...

    def upload_as_written(self, key: str) -> UploadWhenWritten:
        """An upload of a file another process is writing (see ``storage.growing``): here, at the end."""
        return UploadWhenWritten(self, key)

    def local_path(self, key: str) -> Path | None:
        """The directory or file ``key`` maps to on this machine, for stores that are local; else None."""
        return None

    @property
    def parallel_requests(self) -> int:
        """How many requests to this store are worth having in flight at once: as many as its client
        keeps connections for (beyond, each extra one is opened and dropped again, with a warning)."""
        return CLIENT_CONNECTIONS

    def share_url(self, key: str, expires_in: int = DEFAULT_SHARE_SECONDS) -> str:
        """A signed GET link to ``key`` that stops working after ``expires_in`` seconds (at most an hour)."""
        if not 0 < expires_in <= MAX_SHARE_SECONDS:
            raise FramefarmError(f"--expires: links last 1 to {MAX_SHARE_SECONDS} seconds (got {expires_in})")
        if not self.exists(key):
            raise FramefarmError(f"nothing at {self.url(key)} to share")
        return self._signed_url(key, expires_in)

    def presigned_url(self, key: str, expires_in: int) -> str:
        """A signed GET URL to ``key``, valid ``expires_in`` seconds: what a worker's command reads a job's
        input through, by byte ranges. It is a credential: keep it out of logs (``redaction.url_secrets``).
        Unlike ``share_url`` it makes no request (a worker signs one per chunk) and has no one-hour cap."""
        if not 0 < expires_in <= MAX_PRESIGNED_SECONDS:
            raise FramefarmError(f"a presigned URL lasts 1 to {MAX_PRESIGNED_SECONDS} seconds (asked {expires_in})")
        return self._signed_url(key, expires_in)

    def _signed_url(self, key: str, expires_in: int) -> str:
        raise FramefarmError(f"{type(self).__name__} cannot sign links; the file is at {self.url(key)}")

    def put_text(self, key: str, text: str) -> None:
        self.put_bytes(key, text.encode("utf-8"))

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode("utf-8", errors="replace")

    @staticmethod
    def check_key(key: str) -> str:
        try:
            return safe_relative_path(key)
        except ValueError as exc:
            raise ValueError(f"storage key {exc}") from None
