"""What a damaged chunk and a failing upload do to the direct join (``stitch.direct``, ``stitch.mp4``):
a table that lies about its length is a one-line Mp4Error (the worker then writes a record without a
join key) and never a huge allocation; an upload that fails at the end leaves no partial file."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from framefarm import FfmpegStitcher, StitchError
from framefarm.errors import StorageError
from framefarm.stitch import direct
from framefarm.stitch.arriving import Present
from framefarm.stitch.mp4.boxes import Mp4Error
from framefarm.stitch.mp4.source import Mp4Source, join_key
from framefarm.stitch.records import measure
from framefarm.storage.growing import UploadWhenWritten
from tests.helpers import atoms, media_data, todays_stitch
from tests.unit.stitch.test_mp4_join import Encoding, chunks_of, header_times, packet_listing

MEMORY_LIMIT = 1 << 30  # address space for the child that reads a damaged chunk: a lying table must not need more


def _patch(path: Path, kind: bytes, at: int, value: bytes) -> Path:
    """Overwrite ``value`` at ``at`` bytes past the (only) ``kind`` box's type field."""
    data = bytearray(path.read_bytes())
    where = data.index(kind) + at
    data[where:where + len(value)] = value
    path.write_bytes(bytes(data))
    return path


DAMAGES: dict[str, tuple[int, Callable[[Path], Path]]] = {
    # stts: version/flags, entry count, then (count, delta) runs: the first run's count made 4 billion
    "stts run of 4 billion samples": (10, lambda path: _patch(path, b"stts", 12, b"\xff\xff\xff\xf0")),
    # stsz of a one-frame chunk: one size for all, then the count
    "stsz of one size, 4 billion samples": (1, lambda path: _patch(path, b"stsz", 12, b"\xff\xff\xff\xf0")),
    "stss listing more than it holds": (10, lambda path: _patch(path, b"stss", 8, b"\x00\x00\x10\x00")),
    "no movie header": (10, lambda path: _patch(path, b"mvhd", 0, b"mvhX")),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_chunk_whose_tables_lie_is_no_join_key_and_a_one_line_error(tmp_path, encode_chunk, damage):
    # GIVEN a chunk (x264 with B-frames: stss, ctts) with one table field damaged
    frames, damaged = DAMAGES[damage]
    chunk = damaged(encode_chunk(tmp_path / "0.mp4", 0, frames, options=("-preset", "medium")))
    # WHEN its join key is read (as a worker does for its media record) and it is opened for a join,
    # in a process that may take 1 GB of memory at most
    script = ("import resource, sys\n"
              f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
              "from pathlib import Path\n"
              "from framefarm.stitch.mp4.boxes import Mp4Error\n"
              "from framefarm.stitch.mp4.source import Mp4Source, join_key\n"
              "print(join_key(sys.argv[1]))\n"
              "try:\n"
              "    Mp4Source.open(Path(sys.argv[1]), b'vide')\n"
              "except Mp4Error as exc:\n"
              "    print('Mp4Error:', exc)\n")
    done = subprocess.run([sys.executable, "-c", script, str(chunk)], capture_output=True, text=True, timeout=120)
    # THEN the chunk has no join key, and opening it is an Mp4Error of one line (the stitch names the
    # chunk or leaves it to ffmpeg's concat), with nothing else raised and no memory to speak of taken
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    key, error = done.stdout.splitlines()
    assert key == "None"
    assert error.startswith("Mp4Error: ")


def test_the_damaged_tables_are_found_in_process_too(tmp_path, encode_chunk):
    # GIVEN a chunk whose stss lists more entries than it holds
    chunk = DAMAGES["stss listing more than it holds"][1](encode_chunk(tmp_path / "0.mp4", 0, 10,
                                                                          options=("-preset", "medium")))
    # WHEN it is read here THEN it is no join key and an Mp4Error saying which table
    assert join_key(chunk) is None
    with pytest.raises(Mp4Error, match="stss lists more entries than it holds"):
        Mp4Source.open(chunk, b"vide")


class FailingUpload(UploadWhenWritten):
    """An upload whose completion fails (the store refused the last part, the network went)."""

    def __init__(self) -> None:
        super().__init__(None, "jobs/j/final.mp4")  # type: ignore[arg-type]
        self.finished: list[bool] = []

    def start(self, path: Path, settled_from: int | None) -> None:
        pass

    def finish(self, written: bool) -> None:
        self.finished.append(written)
        raise StorageError("cannot complete the upload of jobs/j/final.mp4: connection reset")


def test_an_upload_that_fails_at_the_end_leaves_no_partial_file(tmp_path, encode_chunk):
    # GIVEN three chunks the direct join takes, and an upload that fails when it is completed
    chunks = [encode_chunk(tmp_path / f"{index}.mp4", index * 10, 10) for index in range(3)]
    upload = FailingUpload()
    # WHEN they are stitched, uploaded as written
    with pytest.raises(StorageError, match="cannot complete the upload"):
        FfmpegStitcher().stitch_arriving(Present(chunks, [None] * len(chunks)), tmp_path / "out" / "final.mp4",
                                         upload=upload)
    # THEN the join was whole when the upload was finished, and the upload's error is the stitch's,
    # with neither the output nor a partial file of it left behind (as when ffmpeg's concat joins)
    assert upload.finished == [True]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == []



def test_a_one_frame_chunk_cut_short_is_named_as_truncated(tmp_path, encode_chunk):
    # GIVEN two chunks, the last of one frame (its stsz one size for all) cut in its media data and its
    # media data box's size made that of what is left, with records of an older worker (no join key:
    # the join reads the chunks themselves)
    chunks = [encode_chunk(tmp_path / "0.mp4", 0, 10, options=("-movflags", "+faststart")),
              encode_chunk(tmp_path / "1.mp4", 10, 1, options=("-movflags", "+faststart"))]
    records = [dataclasses.replace(measure(chunk), join_key=None) for chunk in chunks]
    os.truncate(chunks[1], chunks[1].stat().st_size // 2)
    (_, offset, _, _), = [atom for atom in atoms(chunks[1]) if atom[0] == "mdat"]
    with open(chunks[1], "r+b") as stream:
        stream.seek(offset)
        stream.write((chunks[1].stat().st_size - offset).to_bytes(4, "big"))
    records[1] = dataclasses.replace(records[1], size=chunks[1].stat().st_size)
    # WHEN they are stitched
    # THEN the stitch stops naming the chunk as truncated (not ffmpeg's concat failing on it)
    with pytest.raises(StitchError, match=r"^chunk 1\.mp4 cannot be joined: the file is truncated"):
        FfmpegStitcher().stitch_arriving(Present(chunks, records), tmp_path / "final.mp4")


@pytest.mark.parametrize(("keys", "first_refused"), [
    (["mp4:avc1:aa:1024", "mp4:avc1:aa:1024", "mp4:avc1:aa:0"], None),  # a tail too short for B-frames
    (["mp4:avc1:aa:0", "mp4:avc1:aa:0"], None),
    (["mp4:avc1:aa:1024", "mp4:avc1:aa:0", "mp4:avc1:aa:1024"], 2),  # its media would start before the last ends
    (["mp4:avc1:aa:0", "mp4:avc1:bb:0"], 1),  # another sample description
    (["mp4:avc1:aa:0", "mp4:hvc1:aa:0"], 1),
    (["mp4:avc1:aa:0", "mp4:avc1:aa"], 1),  # a key of another form (another version's record)
    (["mp4:avc1:aa", "mp4:avc1:aa"], 0),
])
def test_chunks_join_when_their_keys_agree_and_their_delay_never_grows(keys, first_refused):
    # GIVEN chunks' join keys, WHEN the join decides, THEN the first it cannot take is the one expected
    assert direct._first_unjoinable(keys) == first_refused


@pytest.mark.parametrize("without_edits", [(2,), (0, 1, 2)], ids=["the last chunk", "every chunk"])
def test_chunks_whose_b_frame_delay_is_in_no_edit_list_are_joined_as_concat_joins_them(
        tmp_path, encode_chunk, ffmpeg, without_edits):
    # GIVEN chunks with B-frames (their delay in an edit list), some of them muxed without one
    # (`-use_editlist 0`: their delay is only in their composition offsets, their first frame shown late)
    medium = ("-preset", "medium")
    chunks = chunks_of(encode_chunk, tmp_path, Encoding(options=medium, frames=(10, 10, 10)))
    for index in without_edits:
        encode_chunk(chunks[index], 10 * index, 10, options=(*medium, "-use_editlist", "0"))
    records = [measure(chunk) for chunk in chunks]
    # WHEN they are stitched as they arrive
    output = FfmpegStitcher().stitch_arriving(Present(chunks, records), tmp_path / "final.mp4")
    # THEN the video is what ffmpeg's concat writes: no frame lengthened by a delay taken for none,
    # and shown from its first frame on
    concat = todays_stitch(ffmpeg, chunks, tmp_path / "concat.mp4")
    assert packet_listing(ffmpeg, output) == packet_listing(ffmpeg, concat)
    assert media_data(output) == media_data(concat)
    assert header_times(output) == header_times(concat)
