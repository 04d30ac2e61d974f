"""Asset bundles: a .zip or .tar(.gz) a job's commands read, unpacked into each chunk's work dir.

Unpacking refuses any member that would land outside the directory (absolute paths, ``..``, links
pointing out): a bundle is data, never a way to write elsewhere on the worker. For tar bundles that is
``safe_tar_members``, on every Python: ``tarfile``'s own "data" filter (3.10.12 / 3.11.4 and later)
is applied on top where it exists, never relied on.
"""

from __future__ import annotations

import copy
import posixpath
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
            members = safe_tar_members(archive.getmembers())
            if hasattr(tarfile, "data_filter"):
                archive.extractall(target, members=members, numeric_owner=True, filter="data")
            else:  # Python before 3.10.12 / 3.11.4: safe_tar_members alone
                archive.extractall(target, members=members, numeric_owner=True)
            return [member.name for member in members]
    raise ValueError(f"asset bundle {bundle.name!r} is not a .zip, .tar, .tar.gz or .tgz")


def safe_tar_members(members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    """The members as they may be extracted, or ValueError naming the first unsafe one.

    Only files, directories and links; no path through a link; links that resolve inside the bundle
    (checked by name, over the whole archive, so the order of members cannot matter); no setuid,
    setgid or sticky bits, no write access for group or others, owned by whoever unpacks.
    """
    links = {posixpath.normpath(member.name) for member in members if member.issym() or member.islnk()}
    safe = []
    for member in members:
        name = member.name
        _check_member(name)
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise ValueError(f"asset bundle member {name!r} is a device or special file; "
                             "a bundle holds only files, directories and links")
        through = _through_link(posixpath.normpath(name).split("/")[:-1], links)
        if through:
            raise ValueError(f"asset bundle member {name!r} is inside {through!r}, a link; "
                             "a bundle may not write through its links")
        if member.issym() or member.islnk():
            # a symlink's target is relative to its directory, a hard link's to the bundle's root
            start = posixpath.dirname(name) if member.issym() else ""
            parts = [part for part in f"{start}/{member.linkname}".split("/") if part not in ("", ".")]
            if member.linkname.startswith("/") or _escapes(parts) or _through_link(parts[:-1], links):
                raise ValueError(f"asset bundle member {name!r} links to {member.linkname!r}, "
                                 "outside the bundle or through another link")
        safe.append(_plain_copy(member))
    return safe


def _through_link(parts: list[str], links: set[str]) -> str | None:
    """The first link among the directories the path ``parts`` walks through (``..`` walks back)."""
    walked: list[str] = []
    for part in parts:
        walked = walked[:-1] if part == ".." else [*walked, part]
        if walked and "/".join(walked) in links:
            return "/".join(walked)
    return None


def _escapes(parts: list[str]) -> bool:
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return True
    return False


def _plain_copy(member: tarfile.TarInfo) -> tarfile.TarInfo:
    plain = copy.copy(member)
    mode = member.mode & 0o755  # no setuid, setgid, sticky, group or other write
    if member.isdir():
        mode |= 0o700
    elif not member.issym():
        mode |= 0o600
        if not mode & 0o100:
            mode &= ~0o011  # executable by group or others only when by the owner
    plain.mode = mode
    # tarfile changes owners only when run as root (with numeric_owner: to these ids, root's own)
    plain.uid, plain.gid, plain.uname, plain.gname = 0, 0, "", ""
    return plain


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
