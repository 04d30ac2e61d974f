"""Tar asset bundles are unpacked as safely on a Python whose tarfile has no extraction filter
(before 3.10.12 / 3.11.4) as on one that has it: every test runs both ways."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from framefarm.worker.assets import unpack_bundle


@pytest.fixture(params=["stdlib filter", "no stdlib filter"])
def tar_python(request, monkeypatch) -> str:
    if request.param == "stdlib filter" and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no extraction filter")
    if request.param == "no stdlib filter":
        # as before 3.10.12 / 3.11.4: no tarfile.data_filter, and extractall() takes no filter argument
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        extractall = tarfile.TarFile.extractall

        def unfiltered(self, path=".", members=None, *, numeric_owner=False):
            return extractall(self, path, members, numeric_owner=numeric_owner, filter="fully_trusted")

        monkeypatch.setattr(tarfile.TarFile, "extractall", unfiltered)
    return request.param


def member(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = "",
           mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, link, mode, len(data)
    return info, data


def tar_bundle(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data else None)
    return path


REFUSED = {
    "absolute path": ([member("/tmp/evil", data=b"x")], "'/tmp/evil' escapes the job directory"),
    "dot-dot": ([member("assets/../../evil", data=b"x")], "escapes the job directory"),
    "symlink to an absolute path": ([member("passwd", tarfile.SYMTYPE, link="/etc/passwd")],
                                    "'passwd' links to '/etc/passwd', outside the bundle"),
    "symlink out by dot-dot": ([member("fonts/up", tarfile.SYMTYPE, link="../../outside")],
                               "'fonts/up' links to '../../outside', outside the bundle"),
    "symlink through a later symlink": ([member("a", tarfile.SYMTYPE, link="b/.."),
                                         member("b", tarfile.SYMTYPE, link=".")],
                                        "'a' links to 'b/..', outside the bundle or through another link"),
    "file through a symlink": ([member("d", tarfile.SYMTYPE, link="sub"), member("d/x", data=b"x")],
                               "'d/x' is inside 'd', a link"),
    "hard link out": ([member("h", tarfile.LNKTYPE, link="../outside")], "'h' links to '../outside'"),
    "hard link to an absolute path": ([member("h", tarfile.LNKTYPE, link="/etc/shadow")], "'h' links to"),
    "character device": ([member("null", tarfile.CHRTYPE)], "'null' is a device or special file"),
    "block device": ([member("sda", tarfile.BLKTYPE)], "'sda' is a device or special file"),
    "fifo": ([member("pipe", tarfile.FIFOTYPE)], "'pipe' is a device or special file"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unsafe_members_are_refused_and_nothing_is_unpacked(tmp_path, tar_python, case):
    # GIVEN a tar bundle with one unsafe member, after a harmless one
    members, message = REFUSED[case]
    bundle = tar_bundle(tmp_path / "assets.tar", member("ok.txt", data=b"fine"), *members)
    target = tmp_path / "work" / "job"
    # WHEN it is unpacked, THEN a one-line error names the member and why
    with pytest.raises(ValueError, match="asset bundle member ") as refused:
        unpack_bundle(bundle, target)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    # AND nothing was unpacked, inside the target or next to it
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["assets.tar"]


def test_setuid_setgid_sticky_and_shared_write_bits_are_dropped(tmp_path, tar_python):
    # GIVEN members with setuid, setgid and sticky bits and group/other write
    bundle = tar_bundle(tmp_path / "assets.tgz",
                        member("bin", tarfile.DIRTYPE, mode=0o1777),
                        member("bin/tool", data=b"#!/bin/sh\n", mode=0o6777),
                        member("bin/data", data=b"d", mode=0o2666),
                        member("bin/private", data=b"p", mode=0o4000))
    # WHEN it is unpacked
    unpack_bundle(bundle, tmp_path / "out")
    # THEN every file is plain: owner read/write (and execute where it had it), nobody else writes
    modes = {name: stat.S_IMODE((tmp_path / "out" / "bin" / name).stat().st_mode)
             for name in ("tool", "data", "private")}
    assert modes == {"tool": 0o755, "data": 0o644, "private": 0o600}
    assert stat.S_IMODE((tmp_path / "out" / "bin").stat().st_mode) == 0o755


def test_links_that_stay_inside_are_unpacked(tmp_path, tar_python):
    # GIVEN a bundle whose links point at its own files, one of them up and across
    bundle = tar_bundle(tmp_path / "assets.tar",
                        member("shared/font.ttf", data=b"font"),
                        member("fonts/current", tarfile.SYMTYPE, link="../shared/font.ttf"),
                        member("copy.ttf", tarfile.LNKTYPE, link="shared/font.ttf"))
    # WHEN it is unpacked, THEN both links read the file and the member names come back
    names = unpack_bundle(bundle, tmp_path / "out")
    assert names == ["shared/font.ttf", "fonts/current", "copy.ttf"]
    assert (tmp_path / "out" / "fonts" / "current").read_bytes() == b"font"
    assert (tmp_path / "out" / "copy.ttf").read_bytes() == b"font"
