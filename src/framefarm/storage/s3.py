"""S3Storage: the storage interface over one S3 bucket (and an optional key prefix).

Files go through boto3's managed transfers (multipart and parallel parts above ``multipart_mb``);
small objects through single requests. The client is injectable (moto in tests, a tuned client in
Lambda); boto3 is imported only when no client is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from framefarm.errors import StorageError
from framefarm.storage.base import Storage, StoredObject

DELETE_BATCH = 1_000  # DeleteObjects takes at most 1,000 keys


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
        extra = {"Tagging": urlencode(dict(tags))} if tags else None
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer, ExtraArgs=extra)

    def get_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self._transfer)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"no object s3://{self.bucket}/{self._key(key)}") from None
            raise

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
                etag = item.get("ETag", "").strip('"')
                md5 = etag if etag and "-" not in etag else None  # a multipart upload's ETag is not an MD5
                found.append(StoredObject(key=item["Key"][len(self.prefix):], size=item["Size"], md5=md5))
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
