"""GcsStorage: the storage interface over one Google Cloud Storage bucket.

The client is injectable (the tests give one pointed at a local GCS emulator); google-cloud-storage
is imported only when no client is given. Object tags become object metadata.

Downloads are checked as the bytes arrive, by the client, against the CRC32C GCS keeps for every
object (composite ones too, which have no MD5), never in a second pass over the file. CRC32C is
computed by google-crc32c, a dependency of the client: fast with its compiled extension (in its
wheels for the usual platforms), slow in the pure-Python fallback it takes without one.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framefarm.errors import FramefarmError, StorageError
from framefarm.storage.base import Storage, StoredObject

CHECKSUM = "crc32c"  # what downloads are checked against (see the module docstring)

logger = logging.getLogger(__name__)


class GcsStorage(Storage):
    def __init__(self, bucket: str, *, prefix: str = "", client: Any = None) -> None:
        if client is None:
            from google.cloud import storage  # type: ignore[attr-defined]

            client = storage.Client()
        self.client = client
        self.bucket_name = bucket
        self.bucket = client.bucket(bucket)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _blob(self, key: str) -> Any:
        return self.bucket.blob(self.prefix + self.check_key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._blob(key).upload_from_string(data)

    def get_bytes(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return bytes(self._blob(key).download_as_bytes())
        except NotFound:
            raise FileNotFoundError(f"no object {self.url(key)}") from None

    def put_file(self, key: str, path: Path, *, tags: Mapping[str, str] | None = None) -> None:
        blob = self._blob(key)
        if tags:
            blob.metadata = dict(tags)
        blob.upload_from_filename(str(path))

    def get_file(self, key: str, path: Path) -> None:
        """Download ``key`` to ``path``, checked against GCS's CRC32C of the object as the bytes arrive
        (StorageError if it differs, and no file is left)."""
        from google.api_core.exceptions import NotFound

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = self._blob(key)
        try:
            blob.download_to_filename(str(path), checksum=CHECKSUM)
        except NotFound:
            path.unlink(missing_ok=True)  # the client leaves an empty file behind
            raise FileNotFoundError(f"no object {self.url(key)}") from None
        except _data_corruption():
            path.unlink(missing_ok=True)
            raise StorageError(f"{self.url(key)} is corrupt: the bytes that came down do not match "
                               f"the {CHECKSUM.upper()} GCS holds for it") from None
        except BaseException:
            path.unlink(missing_ok=True)  # nobody may take a partial download for the object
            raise
        if blob.crc32c is None:  # the client checks only what the response's X-Goog-Hash names
            logger.warning("%s came down without its %s from GCS: not verified", self.url(key), CHECKSUM.upper())

    def exists(self, key: str) -> bool:
        return bool(self._blob(key).exists())

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        for blob in self.client.list_blobs(self.bucket_name, prefix=self.prefix + prefix):
            md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
            found.append(StoredObject(key=blob.name[len(self.prefix):], size=int(blob.size or 0), md5=md5))
        return sorted(found, key=lambda obj: obj.key)

    def delete_prefix(self, prefix: str) -> int:
        self.check_key(prefix.rstrip("/"))  # an empty prefix would mean the whole bucket
        objects = self.list(prefix)
        for obj in objects:
            self.bucket.blob(self.prefix + obj.key).delete()
        return len(objects)

    def _signed_url(self, key: str, expires_in: int) -> str:
        """A V4 signed URL; needs credentials that can sign (a service account key or IAM signBlob)."""
        import datetime

        try:
            return str(self._blob(key).generate_signed_url(
                version="v4", method="GET", expiration=datetime.timedelta(seconds=expires_in)))
        except (AttributeError, TypeError, ValueError) as exc:  # credentials without a signer
            raise FramefarmError(f"cannot sign a link to {self.url(key)}: {exc}") from None

    def url(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}{self.check_key(key)}"


def _data_corruption() -> type[Exception]:
    """The client's error for bytes that do not match the object's checksum (its module moved in 3.0)."""
    try:
        from google.cloud.storage.exceptions import DataCorruption  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # google-cloud-storage 2.x
        from google.resumable_media import DataCorruption  # type: ignore[import-untyped,unused-ignore,no-redef]
    return DataCorruption  # type: ignore[no-any-return,unused-ignore]
