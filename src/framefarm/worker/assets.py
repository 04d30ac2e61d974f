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


def bundle_directory(source: Path, bundle: Path) -> int:
    """Zip ``source`` into ``bundle`` (paths relative to ``source``); returns the number of files.

    Entries are sorted and timestamps fixed, so the same directory always makes the same bundle.
    """
    source = Path(source)
    if not source.is_dir():
        raise ValueError(f"--assets: {source} is not a directory")
    files = sorted(path for path in source.rglob("*") if path.is_file())
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return len(files)


def upload_assets(source: Path, storage: Storage, job_id: str) -> str:
    """Bundle ``source`` and store it as ``jobs/<job>/assets.zip``; returns the URL for ``assets_url``."""
    from framefarm.storage.keys import assets_key

    with tempfile.TemporaryDirectory(prefix="framefarm-bundle-") as scratch:
        bundle = Path(scratch) / "assets.zip"
        bundle_directory(source, bundle)
        storage.put_file(assets_key(job_id), bundle)
    return storage.url(assets_key(job_id))
