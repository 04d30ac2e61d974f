"""Where a job item finds its spec: in storage (a full URL and a digest, so the item stays the same
size whatever the number of chunks), or, with no storage, inline and zlib-compressed. Parsed specs
are kept in a SpecCache by digest."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

from framefarm.errors import FramefarmError, JobNotFoundError
from framefarm.repositories.base import SpecCache, put_spec
from framefarm.repositories.dynamodb.items import ItemCodec
from framefarm.repositories.dynamodb.table import META, item_key
from framefarm.spec import JobSpec
from framefarm.storage.base import Storage
from framefarm.storage.keys import spec_key

INLINE_SPEC_LIMIT = 300_000  # bytes of compressed spec kept in the job item (the item limit is 400 KB)


class ItemSpecs:
    """The specs of one table's job items; ``storage`` (if any) is where they are kept."""

    def __init__(self, client: Any, table: str, codec: ItemCodec, storage: Storage | None) -> None:
        self._client, self._table, self._codec, self._storage = client, table, codec, storage
        self._cache = SpecCache()

    def attributes(self, job_id: str, spec: JobSpec, text: bytes) -> dict[str, Any]:
        """Where the job item finds its spec: in storage (``put`` writes it there), else inline."""
        digest = hashlib.sha256(text).hexdigest()
        self._cache.remember(digest, digest, spec)
        if self._storage is not None:  # keeps the job item the same size whatever the number of chunks
            # A full URL, so a reader given only the table (framefarm status --table) finds it.
            return {"spec_url": self._storage.url(spec_key(job_id)), "spec_sha256": digest}
        packed = zlib.compress(text, 6)
        if len(packed) > INLINE_SPEC_LIMIT:
            raise FramefarmError(f"job {job_id}: spec is {len(packed):,} bytes compressed, too large for a "
                                 "DynamoDB item; give the repository a storage to keep it in")
        return {"spec": packed, "spec_sha256": digest}

    def put(self, spec: JobSpec, text: bytes) -> None:
        if self._storage is not None:
            put_spec(self._storage, spec, text)

    def get(self, meta: dict[str, Any]) -> JobSpec:
        """The spec of the job item (or index entry) ``meta``."""
        digest = meta.get("spec_sha256", "")
        return self._cache.get(digest, digest, lambda: JobSpec.model_validate_json(self._stored(meta)))

    def _stored(self, meta: dict[str, Any]) -> bytes:
        """A job item's spec JSON: inline (compressed), or from storage: this store's own when the
        ``spec_url`` is in it, else the store the URL names (a reader given only the table)."""
        if "spec" in meta:
            return zlib.decompress(bytes(meta["spec"]))
        if "spec_url" not in meta:  # an index entry: the inline spec stays in the table
            found = self._client.get_item(TableName=self._table, Key=item_key(meta["job_id"], META),
                                          ProjectionExpression="#spec", ExpressionAttributeNames={"#spec": "spec"})
            if "spec" not in found.get("Item", {}):
                raise JobNotFoundError(meta["job_id"])
            return zlib.decompress(bytes(self._codec.decode(found["Item"])["spec"]))
        key = spec_key(meta["job_id"])
        if self._storage is not None and self._storage.url(key) == meta["spec_url"]:
            return self._storage.get_bytes(key)
        from framefarm.storage import storage_for_url

        storage, key = storage_for_url(meta["spec_url"])
        return storage.get_bytes(key)
