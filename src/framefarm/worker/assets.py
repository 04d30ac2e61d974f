"""Asset bundles: a .zip or .tar(.gz) a job's commands read, unpacked into each chunk's work dir.

Unpacking refuses any member that would land outside the directory (absolute paths, ``..``, links
pointing out): a bundle is data, never a way to write elsewhere on the worker.
"""

from __future__ import annotations

import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from framefarm.spec import safe_relative_path
from framefarm.storage.base import Storage


def unpack_assets(url: str, target: Path, *, storage_for: Callable[[str], tuple[Storage, str]]) -> list[str]:
    """Download the bundle at ``url`` and unpack it into ``target``; returns the member names."""
    storage, key = storage_for(url)
    with tempfile.TemporaryDirectory(prefix="framefarm-assets-") as scratch:
        bundle = Path(scratch) / Path(key).name
        storage.get_file(key, bundle)
        return unpack_bundle(bundle, target)


def unpack_bundle(bundle: Path, target: Path) -> list[str]:
    name = bundle.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(bundle) as archive:
            names = archive.namelist()
            for member in names:
                _check_member(member)
            archive.extractall(target)
            return names
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        with tarfile.open(bundle) as archive:
            names = archive.getnames()
            for member in names:
                _check_member(member)
            archive.extractall(target, filter="data")  # also refuses links that point outside
            return names
    raise ValueError(f"asset bundle {bundle.name!r} is not a .zip, .tar, .tar.gz or .tgz")


def _check_member(name: str) -> None:
    try:
        safe_relative_path(name.rstrip("/") or ".")
    except ValueError as exc:
        raise ValueError(f"asset bundle member {exc}") from None
