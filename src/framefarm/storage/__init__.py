"""Object storage for specs, assets, chunk outputs and logs (local directory, S3, GCS)."""

from framefarm.storage.base import Storage, StoredObject
from framefarm.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StoredObject"]
