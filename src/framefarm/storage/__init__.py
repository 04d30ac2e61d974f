"""Object storage for specs, assets, chunk outputs and logs (local directory, S3, GCS)."""

from __future__ import annotations

from typing import Any

from framefarm.storage.base import Storage, StoredObject
from framefarm.storage.local import LocalStorage

__all__ = ["GcsStorage", "LocalStorage", "S3Storage", "Storage", "StoredObject", "storage_for_url"]


def __getattr__(name: str) -> Any:
    if name == "S3Storage":  # cloud SDKs stay unimported until their store is used
        from framefarm.storage.s3 import S3Storage

        return S3Storage
    if name == "GcsStorage":
        from framefarm.storage.gcs import GcsStorage

        return GcsStorage
    raise AttributeError(name)


def storage_for_url(url: str, *, s3_client: Any = None, gcs_client: Any = None) -> tuple[Storage, str]:
    """The store and key an object URL points at: ``s3://bucket/key``, ``gs://bucket/key`` or
    ``file:///dir/key``.

    For ``file://`` URLs the store is rooted at the URL's ``jobs/`` directory's parent, so keys keep
    the same layout as in S3.
    """
    if url.startswith("s3://"):
        from framefarm.storage.s3 import S3Storage

        bucket, _, key = url[5:].partition("/")
        if not bucket or not key:
            raise ValueError(f"not an s3://bucket/key URL: {url!r}")
        return S3Storage(bucket, client=s3_client), key
    if url.startswith("gs://"):
        from framefarm.storage.gcs import GcsStorage

        bucket, _, key = url[5:].partition("/")
        if not bucket or not key:
            raise ValueError(f"not a gs://bucket/key URL: {url!r}")
        return GcsStorage(bucket, client=gcs_client), key
    if url.startswith("file://"):
        path = url[7:]
        root, marker, rest = path.rpartition("/jobs/")
        if not marker:
            raise ValueError(f"file URL outside a jobs/ layout: {url!r}")
        return LocalStorage(root or "/"), "jobs/" + rest
    raise ValueError(f"unsupported storage URL {url!r}; use s3://bucket/key, gs://bucket/key or file:///path")
