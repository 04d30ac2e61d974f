"""bench/merge.py measures the merge against its floors: the direct join's own work is a phase of its
own (and the join's methods are put back after), a chunk is timed once whether downloaded or read
in place, the scratch directory's removal is timed, the fetch floor fetches exactly the stored objects,
and the bench runs end to end from a local store, with ffmpeg's concat, and from moto with --upload."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from bench.merge import Phases, fetch_floor, timed_cleanup, timed_join, timed_storage

from framefarm import FfmpegStitcher
from framefarm.stitch.mp4.join import Mp4Join
from framefarm.stitch.mp4.source import Mp4Source
from framefarm.stitch.records import write_record
from framefarm.storage.local import LocalStorage

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_direct_join_is_timed_as_its_own_phases_and_put_back(tmp_path, encode_chunk):
    # GIVEN two chunks with their media records, as a local render leaves them
    chunks = [encode_chunk(tmp_path / f"{index}.mp4", index * 10) for index in range(2)]
    for chunk in chunks:
        write_record(chunk)
    add, opened = Mp4Join.add, Mp4Source.__dict__["open"]
    phases = Phases()

    # WHEN they are stitched while the join is timed
    with timed_join(phases):
        FfmpegStitcher().stitch(chunks, tmp_path / "out.mp4")

    # THEN each chunk's index read and the join's start, two adds and finish are timed, apart
    assert len(phases.spans["index reads"]) == 2
    assert len(phases.spans["join"]) == 4
    assert 0 < phases.busy("join") and "concat" not in phases.spans
    # AND the join is itself again afterwards
    assert Mp4Join.add is add and Mp4Source.__dict__["open"] is opened


def test_the_fetch_floor_fetches_every_object_in_key_order(tmp_path, s3_client, bucket):
    # GIVEN five objects of different bytes
    keys = [f"jobs/j/chunks/{index}.mp4" for index in range(5)]
    for index, key in enumerate(keys):
        s3_client.put_object(Bucket=bucket, Key=key, Body=bytes([index]) * (1000 + index))

    # WHEN the floor fetches them on three threads
    files = fetch_floor(s3_client, bucket, keys, tmp_path / "fetched", 3)

    # THEN each file holds its object's bytes, in the keys' order
    assert [path.read_bytes() for path in files] == [bytes([index]) * (1000 + index) for index in range(5)]


def test_the_scratch_directory_removal_is_timed_and_rmtree_put_back(tmp_path):
    # GIVEN a scratch directory holding a file, as the merge's holds its downloaded chunks
    rmtree, phases = shutil.rmtree, Phases()

    # WHEN it is removed while removals are timed
    with timed_cleanup(phases), tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        (Path(scratch) / "chunk.mp4").write_bytes(b"chunk")

    # THEN its removal is one span of the cleanup phase, and shutil.rmtree is itself again
    assert len(phases.spans["cleanup"]) == 1 and not Path(scratch).exists()
    assert shutil.rmtree is rmtree


class InPlaceStorage(LocalStorage):
    """A local store whose files a merge reads where they are (``readable_file``), as framefarm 0.3's does."""

    def readable_file(self, key: str, path: Path) -> Path:
        return self.path(key)


@pytest.mark.parametrize("store", [LocalStorage, InPlaceStorage])
def test_a_chunk_is_timed_once_whether_downloaded_or_read_in_place(tmp_path, store):
    # GIVEN two chunks in a store (one that copies them out, one that hands out its own files)
    storage = store(tmp_path / "store")
    for name in ("a", "b"):
        storage.put_bytes(f"jobs/j/chunks/{name}.mp4", b"chunk")
    phases = Phases()
    timed = timed_storage(storage, phases)

    # WHEN the merge asks for each as a file, as it does
    for name in ("a", "b"):
        fetch = getattr(timed, "readable_file", None)
        if fetch is not None:
            fetch(f"jobs/j/chunks/{name}.mp4", tmp_path / name)
        else:
            timed.get_file(f"jobs/j/chunks/{name}.mp4", tmp_path / name)

    # THEN each chunk is one span of the download phase
    assert len(phases.spans["download+verify"]) == 2


@pytest.mark.parametrize(("options", "expected"), [
    (["--store", "local"], ["direct join", "merge / cat:", "FfmpegStitcher().stitch of local copies", "  join "]),
    (["--store", "local", "--direct", "off"], ["ffmpeg concat", "  concat "]),
    (["--upload"], ["fetch floor", "upload floor", "merge / fetch+upload floor:", "the records GETs take"]),
])
def test_the_bench_runs_and_names_its_floors(tmp_path, options, expected):
    # GIVEN two small chunks (WHEN the bench merges them)
    completed = subprocess.run([sys.executable, "bench/merge.py", "--chunks", "2", "--frames", "10",
                                "--dir", str(tmp_path), *options],
                               cwd=REPOSITORY, capture_output=True, text=True, timeout=300)

    # THEN it finishes and reports the join it used and the floors it held the merge against
    assert completed.returncode == 0, completed.stderr
    for text in expected:
        assert text in completed.stdout, completed.stdout
