"""GcsStorage: the storage interface over one Google Cloud Storage bucket.

The client is injectable (the tests give one pointed at a local GCS emulator); google-cloud-storage
is imported only when no client is given. Object tags become object metadata.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framefarm.errors import FramefarmError
from framefarm.storage.base import Storage, StoredObject


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
        from google.api_core.exceptions import NotFound

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._blob(key).download_to_filename(str(path))
        except NotFound:
            Path(path).unlink(missing_ok=True)  # the client leaves an empty file behind
            raise FileNotFoundError(f"no object {self.url(key)}") from None

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
