"""S3Storage: the storage interface over one S3 bucket (and an optional key prefix).

Files go up through boto3's managed transfers (multipart and parallel parts above ``multipart_mb``)
and come down as one streamed GET each (a merge downloads many at once); small objects through
single requests. The client is injectable (moto in tests, a tuned client in
Lambda); boto3 is imported only when no client is given.

Integrity comes from S3's own checksums, not the ETag (which is no MD5 under SSE-KMS or for a
multipart upload): files go up with ``ChecksumAlgorithm=SHA256``, and ``get_file`` downloads with
one GET (``ChecksumMode=ENABLED``: one version of the object, and its stored checksum with it) and
checks the bytes as they arrive, never in a second pass over the file, raising StorageError on a
mismatch. botocore checks a whole-object checksum as it streams (the check here makes sure it
did); a composite one (a multipart upload's) is computed here, part by part, as the bytes pass.

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
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from framefarm.errors import StorageError
from framefarm.storage.base import MAX_PARALLEL_REQUESTS, Storage, StoredObject
from framefarm.storage.growing import UploadWhenWritten

DELETE_BATCH = 1_000  # DeleteObjects takes at most 1,000 keys
CHECKSUM = "SHA256"  # S3's checksum of every file put here (see the module docstring)
READ_BLOCK = 1 << 20
GROWING_POLL = 0.1  # seconds between looks at a file being written, for parts to send

logger = logging.getLogger(__name__)


class S3Storage(Storage):
    def __init__(self, bucket: str, *, prefix: str = "", client: Any = None, multipart_mb: int = 16,
                 max_concurrency: int = 10) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if client is None:
            import boto3

            client = boto3.client("s3", config=client_config())
        self.client = client
        from boto3.s3.transfer import TransferConfig

        self._transfer = TransferConfig(multipart_threshold=multipart_mb * 1024 * 1024,
                                        multipart_chunksize=multipart_mb * 1024 * 1024,
                                        max_concurrency=max_concurrency)

    def _key(self, key: str) -> str:
        return self.prefix + self.check_key(key)

    @property
    def parallel_requests(self) -> int:
        return int(self.client.meta.config.max_pool_connections)

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
        """Download ``key`` to ``path``, checked against S3's stored SHA256 as the bytes arrive
        (StorageError if it differs, and no file is left)."""
        from botocore.exceptions import ClientError, FlexibleChecksumError

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"no object {self.url(key)}") from None
            raise
        body = answer["Body"]
        try:
            digest, expected = self._digest_for(key, answer)
            with open(path, "wb") as sink:
                while block := body.read(READ_BLOCK):
                    sink.write(block)
                    if digest is not None:
                        digest.update(block)
        except FlexibleChecksumError as exc:  # botocore's own check of a whole-object checksum
            path.unlink(missing_ok=True)
            raise StorageError(f"{self.url(key)} is corrupt: {exc}") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            body.close()
        if digest is not None and (actual := digest.b64digest()) != expected:
            path.unlink()  # nobody may take it for the object
            raise StorageError(f"{self.url(key)} is corrupt: its {CHECKSUM} is {actual}, S3 stored {expected}")

    def _digest_for(self, key: str, answer: Mapping[str, Any]) -> tuple[S3Sha256 | None, str]:
        """What to hash a GET's body with as it streams, and the checksum it must give; no hash when
        botocore checks this body itself, or when S3 holds no checksum to check against."""
        from botocore.httpchecksum import StreamingChecksumBody

        stored = answer.get(f"Checksum{CHECKSUM}")
        if stored is None:  # uploaded without one (by another tool, or before framefarm asked for it)
            logger.warning("%s has no %s checksum in S3: not verified", self.url(key), CHECKSUM)
            return None, ""
        expected, _, suffix = str(stored).partition("-")
        # A multipart upload's checksum is of its parts' checksums ("...-N"), even of one part: a file
        # of exactly the multipart threshold goes up as a single part.
        composite = bool(suffix) or answer.get("ChecksumType") == "COMPOSITE" or _multipart_parts(answer) is not None
        if answer.get("ChecksumType") == "FULL_OBJECT" or not composite:
            return (None if isinstance(answer["Body"], StreamingChecksumBody) else S3Sha256()), expected
        # The part size (parts are of equal size as boto3 uploads them). Were the object replaced since
        # the GET, a different size could only make the check fail, never pass bytes S3 did not hash.
        first = self.client.head_object(Bucket=self.bucket, Key=self._key(key), PartNumber=1)
        return S3Sha256(part_size=int(first["ContentLength"])), expected

    def upload_as_written(self, key: str) -> UploadWhenWritten:
        """A multipart upload that sends each part of a growing file once it is settled (``storage.growing``)."""
        return _MultipartAsWritten(self, key, self._transfer.multipart_chunksize)

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


def client_config() -> Any:
    """The botocore Config of the S3 clients framefarm makes: connections kept for a merge's record
    reads, all at once (botocore keeps 10 by default)."""
    from botocore.config import Config

    return Config(max_pool_connections=MAX_PARALLEL_REQUESTS)


def sha256_checksum(path: Path, *, part_size: int | None = None) -> str:
    """S3's base64 SHA256 of a file: of the whole file, or COMPOSITE (of its ``part_size`` parts' SHA256s)."""
    digest = S3Sha256(part_size=part_size)
    with open(path, "rb") as stream:
        while block := stream.read(READ_BLOCK):
            digest.update(block)
    return digest.b64digest()


class S3Sha256:
    """S3's SHA256 of bytes fed in order: of them all, or COMPOSITE (the SHA256 of the SHA256s of
    consecutive ``part_size`` parts, the last one shorter), as a multipart upload's is."""

    def __init__(self, *, part_size: int | None = None) -> None:
        self._part_size = part_size
        self._parts: list[bytes] = []
        self._current = hashlib.sha256()
        self._in_part = 0

    def update(self, data: bytes) -> None:
        if self._part_size is None:
            self._current.update(data)
            return
        view = memoryview(data)
        while view:
            taken = view[:self._part_size - self._in_part]
            self._current.update(taken)
            self._in_part += len(taken)
            view = view[len(taken):]
            if self._in_part == self._part_size:
                self._parts.append(self._current.digest())
                self._current, self._in_part = hashlib.sha256(), 0

    def b64digest(self) -> str:
        if self._part_size is None:
            digest = self._current.digest()
        else:
            last = [self._current.digest()] if self._in_part else []
            digest = hashlib.sha256(b"".join(self._parts + last)).digest()
        return base64.b64encode(digest).decode()


def _multipart_parts(head: Mapping[str, Any]) -> int | None:
    """How many parts an object was uploaded in, from its ETag ("<hex>-<parts>"); None if in one piece."""
    _, dash, parts = str(head.get("ETag", "")).strip('"').partition("-")
    return int(parts) if dash and parts.isdigit() else None


class _MultipartAsWritten(UploadWhenWritten):
    """Parts of ``part_size`` (the first one at least as large as the unsettled head), each with its
    SHA256: parts 2, 3, ... go up (``workers`` at a time, so at most that many parts are held in
    memory) as soon as the file has grown past their end; at the finish, the rest and then part 1.
    Parts of equal size but the last, as ``get_file`` checks them."""

    def __init__(self, storage: S3Storage, key: str, part_size: int, workers: int = 4) -> None:
        super().__init__(storage, key)
        self._s3, self._min_part, self._workers = storage, part_size, workers
        self._part = part_size
        self._upload_id: str | None = None
        self._next = 2
        self._done = threading.Event()
        self._follower: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(workers)
        self._sending: list[Future[dict[str, Any]]] = []

    def start(self, path: Path, settled_from: int | None) -> None:
        super().start(path, settled_from)
        if settled_from is None:
            return  # nothing is settled before the end: one upload then
        self._part = max(self._min_part, -(-settled_from // READ_BLOCK) * READ_BLOCK)
        self._upload_id = self._s3.client.create_multipart_upload(
            Bucket=self._s3.bucket, Key=self._s3._key(self.key), ChecksumAlgorithm=CHECKSUM)["UploadId"]
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="framefarm-upload-part")
        self._follower = threading.Thread(target=self._follow, name="framefarm-upload-as-written", daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        try:
            while not self._done.wait(GROWING_POLL):
                self._send_settled(final=False)
        except BaseException as exc:  # reported by finish
            self._failure = exc

    def _send_settled(self, *, final: bool) -> None:
        assert self._path is not None and self._pool is not None
        size = self._path.stat().st_size if self._path.exists() else 0
        while size >= self._next * self._part or (final and (self._next - 1) * self._part < size):
            self._submit(self._next)
            self._next += 1

    def _submit(self, number: int) -> None:
        assert self._pool is not None
        self._slots.acquire()  # a slot frees when a part has gone up, which the client's timeouts bound
        self._sending.append(self._pool.submit(self._send, number))

    def _send(self, number: int) -> dict[str, Any]:
        assert self._path is not None
        try:
            with open(self._path, "rb") as stream:
                stream.seek((number - 1) * self._part)
                data = stream.read(self._part)
            answer = self._s3.client.upload_part(Bucket=self._s3.bucket, Key=self._s3._key(self.key),
                                                 UploadId=self._upload_id, PartNumber=number, Body=data,
                                                 ChecksumAlgorithm=CHECKSUM)
        finally:
            self._slots.release()
        return {"PartNumber": number, "ETag": answer["ETag"], f"Checksum{CHECKSUM}": answer[f"Checksum{CHECKSUM}"]}

    def finish(self, written: bool) -> None:
        if self._upload_id is None:
            return super().finish(written)
        assert self._pool is not None
        self._done.set()
        if self._follower is not None:
            self._follower.join()  # ends after the part it is queueing, which the client's timeouts bound
        try:
            if self._failure is not None:
                raise self._failure
            if not written:
                raise _Dropped
            self._send_settled(final=True)
            self._submit(1)
            parts = [sending.result() for sending in self._sending]
            self._s3.client.complete_multipart_upload(
                Bucket=self._s3.bucket, Key=self._s3._key(self.key), UploadId=self._upload_id,
                MultipartUpload={"Parts": sorted(parts, key=lambda part: part["PartNumber"])})
        except _Dropped:
            self._abort()
        except Exception as exc:
            self._abort()
            raise StorageError(f"uploading {self._s3.url(self.key)} as it was written failed: {exc}") from exc
        except BaseException:
            self._abort()
            raise
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _abort(self) -> None:
        assert self._pool is not None
        self._pool.shutdown(wait=True, cancel_futures=True)  # no part may land after the abort
        self._s3.client.abort_multipart_upload(Bucket=self._s3.bucket, Key=self._s3._key(self.key),
                                               UploadId=self._upload_id)


class _Dropped(Exception):
    """The writer failed: the upload is aborted, and the writer's own error is the one reported."""

