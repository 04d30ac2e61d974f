"""The shared worker runtime, on local storage: requests, assets, outputs."""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile

import pytest

from framefarm import LocalStorage, plan_job
from framefarm.failures import FailureKind
from framefarm.protocol import ChunkRequest, ChunkResponse, parse_request
from framefarm.repositories.base import put_spec as store_spec
from framefarm.status import is_cut
from framefarm.storage.keys import log_key, spec_key
from framefarm.storage.logs import full_log
from framefarm.worker.runtime import run_chunk

WRITE_OUTPUT = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(open(sys.argv[2]).read())",
                "{output}", "assets/text.txt"]


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "store")


def put_spec(storage, command, *, assets_url=None, job_id="job-1"):
    spec = plan_job({"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": 2, "chunks": 2,
                     "command": command, "assets_url": assets_url})
    return store_spec(storage, spec)


def zip_bundle(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_runs_with_assets_and_uploads_the_output(storage):
    storage.put_bytes("jobs/job-1/assets.zip", zip_bundle({"assets/text.txt": b"from the bundle"}))
    url = put_spec(storage, WRITE_OUTPUT, assets_url=storage.url("jobs/job-1/assets.zip"))
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=1, spec_url=url))
    assert (response.exit_code, response.error, response.output_key) == (0, None, "jobs/job-1/chunks/00001.mp4")
    assert storage.get_bytes("jobs/job-1/chunks/00001.mp4") == b"from the bundle"


def test_tar_bundles_work_too(storage, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"tarred"
        info = tarfile.TarInfo("assets/text.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    storage.put_bytes("jobs/job-1/assets.tar.gz", buffer.getvalue())
    url = put_spec(storage, WRITE_OUTPUT, assets_url=storage.url("jobs/job-1/assets.tar.gz"))
    assert run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url)).exit_code == 0
    assert storage.get_bytes("jobs/job-1/chunks/00000.mp4") == b"tarred"


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/evil", "assets/../../x"])
def test_bundle_members_cannot_escape_the_work_dir(storage, tmp_path, member):
    storage.put_bytes("jobs/job-1/assets.zip", zip_bundle({member: b"x"}))
    url = put_spec(storage, WRITE_OUTPUT, assets_url=storage.url("jobs/job-1/assets.zip"))
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url), tmp_root=str(tmp_path))
    assert response.kind is FailureKind.FUNCTION_ERROR and "escapes the job directory" in response.error
    assert not (tmp_path / "escape.txt").exists()


def test_exit_zero_without_output_is_a_failure(storage):
    url = put_spec(storage, [sys.executable, "-c", "print('forgot to write')"])
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url))
    # (the command's exit code is kept: 0; the kind says why the chunk failed)
    assert (response.exit_code, response.kind) == (0, FailureKind.NO_OUTPUT)
    assert response.error == "exit code 0 but no output at chunks/00000.mp4"
    assert response.stdout == "forgot to write\n" and not storage.exists("jobs/job-1/chunks/00000.mp4")


def test_a_file_already_at_the_output_path_is_never_uploaded_as_the_chunk(storage):
    # GIVEN an asset bundle that carries an old render at the chunk's output path (a directory that held an
    # earlier run), and a command that, like ffmpeg without -y, leaves an existing output alone and exits 0
    storage.put_bytes("jobs/job-1/assets.zip", zip_bundle({"chunks/00000.mp4": b"an earlier render"}))
    url = put_spec(storage, [sys.executable, "-c", "import os, sys; os.path.exists(sys.argv[1]) or "
                                                   "open(sys.argv[1], 'w').write('this attempt')", "{output}"],
                   assets_url=storage.url("jobs/job-1/assets.zip"))
    # WHEN the worker runs the chunk
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url))
    # THEN what it uploaded is this attempt's render
    assert (response.exit_code, response.output_key) == (0, "jobs/job-1/chunks/00000.mp4")
    assert storage.get_bytes("jobs/job-1/chunks/00000.mp4") == b"this attempt"


def test_failing_command_keeps_its_output_and_uploads_nothing(storage):
    url = put_spec(storage, [sys.executable, "-c", "import sys; sys.stderr.write('bad frame'); sys.exit(5)"])
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url))
    assert (response.exit_code, response.kind, response.stderr, response.output_key) == (
        5, FailureKind.EXIT_CODE, "bad frame", None)


@pytest.mark.parametrize(("event", "message"), [
    ("not a dict", "bad request: expected a JSON object"),
    ({"job_id": "j", "chunk_id": -1, "spec_url": "s3://b/jobs/j/spec.json"}, "bad request: chunk_id: Input should be"),
    ({"job_id": "../x", "chunk_id": 0, "spec_url": "s3://b/k"}, "bad request: job_id: String should match"),
    ({"job_id": "j", "chunk_id": 0, "spec_url": "s3://b/jobs/j/spec.json", "shell": True}, "bad request: shell: unknown field"),
])
def test_bad_requests_are_answered_not_raised(event, message):
    response = parse_request(event)
    assert isinstance(response, ChunkResponse) and response.error.startswith(message)
    assert (response.kind, response.exit_code) == (FailureKind.BAD_REQUEST, None)


def test_missing_spec_and_wrong_job(storage):
    url = put_spec(storage, WRITE_OUTPUT)
    assert "no spec at" in run_chunk(ChunkRequest(job_id="job-2", chunk_id=0,
                                                  spec_url=url.replace("job-1", "job-2"))).error
    other = put_spec(storage, WRITE_OUTPUT, job_id="job-3")
    moved = storage.url("jobs/job-4/spec.json")
    storage.put_bytes("jobs/job-4/spec.json", storage.get_bytes(spec_key("job-3")))
    assert "is job 'job-3', not 'job-4'" in run_chunk(ChunkRequest(job_id="job-4", chunk_id=0, spec_url=moved)).error
    assert other


def test_bundles_are_deterministic_and_round_trip(tmp_path):
    from framefarm.worker.assets import bundle_directory, unpack_bundle

    source = tmp_path / "assets"
    (source / "fonts").mkdir(parents=True)
    (source / "fonts" / "a.ttf").write_bytes(b"font")
    (source / "input.txt").write_text("hello")
    assert bundle_directory(source, tmp_path / "one.zip") == 2
    bundle_directory(source, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    assert sorted(unpack_bundle(tmp_path / "one.zip", tmp_path / "out")) == ["fonts/a.ttf", "input.txt"]
    assert (tmp_path / "out" / "fonts" / "a.ttf").read_bytes() == b"font"
    with pytest.raises(ValueError, match="is not a directory"):
        bundle_directory(tmp_path / "missing", tmp_path / "x.zip")


CHATTY = [sys.executable, "-c", "import sys; [print('line %07d' % i) for i in range(800_000)]; "
          "sys.stderr.write('warning\\n'); open(sys.argv[1], 'w').write('video')", "{output}"]


def test_a_chunk_printing_8_mb_replies_with_tails_and_keeps_its_whole_log_in_the_store(storage):
    # GIVEN a chunk whose command prints about 9.6 MB to stdout and a line to stderr
    url = put_spec(storage, CHATTY)
    # WHEN it runs as the store's attempt 2
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url, attempt=2))
    # THEN the reply is small (Lambda refuses one over 6 MB), with the end of stdout and all of stderr
    assert response.exit_code == 0 and response.output_key == "jobs/job-1/chunks/00000.mp4"
    assert len(response.model_dump_json()) < 20_000
    assert is_cut(response.stdout) and response.stdout.endswith("line 0799999\n") and response.stderr == "warning\n"
    # AND the whole stdout is in the store under the attempt's log key; stderr, being whole already, is not
    whole = storage.get_text(log_key("job-1", 0, 2, "stdout"))
    assert len(whole) == 800_000 * 13 and whole.startswith("line 0000000\n")
    assert full_log(storage, "job-1", 0, 2, "stdout", response.stdout) == whole
    assert [obj.key for obj in storage.list("jobs/job-1/logs/")] == [log_key("job-1", 0, 2, "stdout")]


def test_a_store_that_cannot_take_the_log_does_not_cost_the_chunk(tmp_path, caplog):
    # GIVEN a store that refuses log writes
    class NoLogs(LocalStorage):
        def put_bytes(self, key, data):
            if "/logs/" in key:
                raise PermissionError(f"no writes to {key}")
            super().put_bytes(key, data)

    storage = NoLogs(tmp_path / "store")
    url = put_spec(storage, CHATTY)
    # WHEN a chatty chunk runs
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url),
                         storage_for=lambda spec_url: (storage, spec_key("job-1")))
    # THEN its output is uploaded and its reply carries the tails; a warning says the whole log was lost
    assert response.exit_code == 0 and storage.exists("jobs/job-1/chunks/00000.mp4") and is_cut(response.stdout)
    assert "job job-1 chunk 0 attempt 1: could not keep the full stdout" in caplog.text


def test_a_chunk_of_a_cancelled_job_replies_cancelled_by_kind_without_an_exit_code(storage):
    # GIVEN a job whose cancel marker is already in the store
    from framefarm.storage.keys import cancel_key

    url = put_spec(storage, WRITE_OUTPUT)
    storage.put_bytes(cancel_key("job-1"), b"")
    # WHEN a worker is asked for one of its chunks
    response = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url))
    # THEN it replies cancelled: the kind says so, and no exit code is made up (130 was the CLI's)
    assert (response.kind, response.exit_code, response.error) == (FailureKind.CANCELLED, None, "cancelled")
    assert response.to_result().kind is FailureKind.CANCELLED
