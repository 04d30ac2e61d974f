"""S3Storage: the storage interface over one S3 bucket (and an optional key prefix).

Files go through boto3's managed transfers (multipart and parallel parts above ``multipart_mb``);
small objects through single requests. The client is injectable (moto in tests, a tuned client in
Lambda); boto3 is imported only when no client is given.

Integrity comes from S3's own checksums, not the ETag (which is no MD5 under SSE-KMS or for a
multipart upload): files go up with ``ChecksumAlgorithm=SHA256``, and ``get_file`` reads the
stored checksum (HEAD with ``ChecksumMode=ENABLED``), downloads exactly that version of the object
(If-Match its ETag), and checks the file against it, raising StorageError on a mismatch. The GETs
ask for checksums too, so botocore checks a whole-object GET as it streams; only the check here
covers a large download's ranged GETs and a composite checksum, and makes sure one was checked.

SHA256 rather than CRC32C: botocore computes CRC32C only with the compiled ``awscrt`` package
(not in this project or its Lambda image), while SHA256 is hashlib's, hardware-accelerated (1.3
GB/s here, faster than MD5) and cryptographic. Its cost: a multipart object's SHA256 is COMPOSITE
(the SHA256 of its parts' SHA256s), checked part by part, the parts taken to be of equal size as
boto3 uploads them (the first part's size comes from a HEAD with PartNumber=1).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from framefarm.errors import StorageError
from framefarm.storage.base import Storage, StoredObject

DELETE_BATCH = 1_000  # DeleteObjects takes at most 1,000 keys
CHECKSUM = "SHA256"  # S3's checksum of every file put here (see the module docstring)
READ_BLOCK = 1 << 20

logger = logging.getLogger(__name__)


class S3Storage(Storage):
    def __init__(self, bucket: str, *, prefix: str = "", client: Any = None, multipart_mb: int = 16,
                 max_concurrency: int = 10) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client
        from boto3.s3.transfer import TransferConfig

        self._transfer = TransferConfig(multipart_threshold=multipart_mb * 1024 * 1024,
                                        multipart_chunksize=multipart_mb * 1024 * 1024,
                                        max_concurrency=max_concurrency)

    def _key(self, key: str) -> str:
        return self.prefix + self.check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object s3://{self.bucket}/{self._key(key)}") from None

    def put_file(self, key: str, path: Path, *, tags: Mapping[str, str] | None = None) -> None:
        extra = {"ChecksumAlgorithm": CHECKSUM, **({"Tagging": urlencode(dict(tags))} if tags else {})}
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer, ExtraArgs=extra)

    def get_file(self, key: str, path: Path) -> None:
        """Download ``key`` to ``path`` and check it against S3's stored SHA256 (StorageError if it differs)."""
        from botocore.exceptions import ClientError, FlexibleChecksumError
        from s3transfer.manager import TransferManager

        url = self.url(key)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
            with TransferManager(self.client, self._transfer) as transfers:  # pinned to the version HEAD saw
                transfers.download(self.bucket, self._key(key), str(path), extra_args={"ChecksumMode": "ENABLED"},
                                   subscribers=[_KnownObject(head["ContentLength"], head["ETag"])]).result()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"no object {url}") from None
            raise
        except FlexibleChecksumError as exc:  # botocore's own check of a whole-object GET
            Path(path).unlink(missing_ok=True)
            raise StorageError(f"{url} is corrupt: {exc}") from None
        self._verify(key, Path(path), head)

    def _verify(self, key: str, path: Path, head: Mapping[str, Any]) -> None:
        url = self.url(key)
        stored = head.get(f"Checksum{CHECKSUM}")
        if stored is None:  # uploaded without one (by another tool, or before framefarm asked for it)
            logger.warning("%s has no %s checksum in S3: not verified", url, CHECKSUM)
            return
        expected, _, suffix = str(stored).partition("-")
        # A multipart upload's checksum is of its parts' checksums ("...-N"), even of one part: a file
        # of exactly the multipart threshold goes up as a single part.
        composite = bool(suffix) or head.get("ChecksumType") == "COMPOSITE" or _multipart_parts(head) is not None
        if head.get("ChecksumType") == "FULL_OBJECT" or not composite:
            actual = sha256_checksum(path)
        else:
            first = self.client.head_object(Bucket=self.bucket, Key=self._key(key), PartNumber=1)
            actual = sha256_checksum(path, part_size=int(first["ContentLength"]))
        if actual != expected:
            path.unlink()  # nobody may take it for the object
            raise StorageError(f"{url} is corrupt: its {CHECKSUM} is {actual}, S3 stored {expected}")

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def _signed_url(self, key: str, expires_in: int) -> str:
        """A SigV4 presigned GET (SigV2 links carry no lifetime of their own and are deprecated)."""
        import boto3
        from botocore.config import Config

        signer = boto3.client("s3", config=Config(signature_version="s3v4"), region_name=self.client.meta.region_name,
                              endpoint_url=self.client.meta.endpoint_url)
        return str(signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_in))

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                           Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                # no md5: an ETag is none under SSE-KMS or for a multipart upload (get_file checks SHA256)
                found.append(StoredObject(key=item["Key"][len(self.prefix):], size=item["Size"]))
        return sorted(found, key=lambda obj: obj.key)

    def delete_prefix(self, prefix: str) -> int:
        self.check_key(prefix.rstrip("/"))  # an empty prefix would mean the whole bucket
        keys = [self.prefix + obj.key for obj in self.list(prefix)]
        failed: list[dict[str, Any]] = []
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            answer = self.client.delete_objects(Bucket=self.bucket,
                                                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            failed.extend(answer.get("Errors", []))  # DeleteObjects succeeds as a call while refusing single keys
        if failed:
            first = failed[0]
            raise StorageError(f"S3 did not delete {len(failed)} of {len(keys)} objects under "
                               f"s3://{self.bucket}/{self.prefix}{prefix}: {first.get('Key')} "
                               f"({first.get('Code')}: {first.get('Message')})" + (" …" if len(failed) > 1 else ""))
        return len(keys)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def sha256_checksum(path: Path, *, part_size: int | None = None) -> str:
    """S3's base64 SHA256 of a file: of the whole file, or COMPOSITE (of its ``part_size`` parts' SHA256s)."""
    with open(path, "rb") as stream:
        if part_size is None:
            digest = _sha256(stream, None)[0]
        else:
            parts = []
            while (part := _sha256(stream, part_size))[1]:
                parts.append(part[0])
            digest = hashlib.sha256(b"".join(parts)).digest()
    return base64.b64encode(digest).decode()


def _sha256(stream: BinaryIO, limit: int | None) -> tuple[bytes, int]:
    """The SHA256 of the stream's next ``limit`` bytes (all of them when None), and how many there were."""
    digest, read = hashlib.sha256(), 0
    while limit is None or read < limit:
        block = stream.read(READ_BLOCK if limit is None else min(READ_BLOCK, limit - read))
        if not block:
            break
        digest.update(block)
        read += len(block)
    return digest.digest(), read


def _multipart_parts(head: Mapping[str, Any]) -> int | None:
    """How many parts an object was uploaded in, from its ETag ("<hex>-<parts>"); None if in one piece."""
    _, dash, parts = str(head.get("ETag", "")).strip('"').partition("-")
    return int(parts) if dash and parts.isdigit() else None


class _KnownObject:
    """An s3transfer subscriber giving a download the size and ETag already read, so it makes no HEAD
    of its own and every GET carries If-Match: the object checked is the object downloaded."""

    def __init__(self, size: int, etag: str) -> None:
        self.size, self.etag = size, etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        future.meta.provide_object_etag(self.etag)
