"""LocalStorage: keys are files under a root directory (the embedded default, ``.framefarm/``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from framefarm.storage.base import MAX_PARALLEL_REQUESTS, Storage, StoredObject


class LocalStorage(Storage):
    """A directory as an object store. Writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        """Where ``key`` lives on disk (local runs use this as a job's working directory)."""
        return self.root / self.check_key(key)

    def local_path(self, key: str) -> Path | None:
        return self.root / self.check_key(key.rstrip("/"))

    @property
    def parallel_requests(self) -> int:
        return MAX_PARALLEL_REQUESTS  # files: no connections to run out of

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put_file(self, key: str, path: Path, *, tags: Mapping[str, str] | None = None) -> None:
        target = self.path(key)
        if target == Path(path).resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # A temp name of its own: two uploads of one key at once (a chunk attempt given up on, still
        # running, and its retry) must not write into the same file; the last rename wins, whole.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise

    def get_file(self, key: str, path: Path) -> None:
        source = self._stored(key)
        if source != Path(path).resolve():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)

    def readable_file(self, key: str, path: Path) -> Path:
        """The object's own file (``path`` is not written): a merge joins the chunks where they are."""
        return self._stored(key)

    def _stored(self, key: str) -> Path:
        source = self.path(key)
        if not source.is_file():
            raise FileNotFoundError(f"no object {key!r} in {self.root}")
        return source

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[StoredObject]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.exists():
            return []
        found = []
        for path in base.rglob("*") if base.is_dir() else [base]:
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(StoredObject(key=key, size=path.stat().st_size))
        return sorted(found, key=lambda obj: obj.key)

    def delete_prefix(self, prefix: str) -> int:
        self.check_key(prefix.rstrip("/"))  # an empty prefix would mean the whole store
        objects = self.list(prefix)
        base = self.root / prefix.rstrip("/")
        if prefix.endswith("/") and base.is_dir():
            shutil.rmtree(base)
        else:
            for obj in objects:
                self.path(obj.key).unlink(missing_ok=True)
        return len(objects)

    def url(self, key: str) -> str:
        return self.path(key).as_uri()
