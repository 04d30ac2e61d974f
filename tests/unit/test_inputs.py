"""Source media: ``inputs:`` in a job, stored once at submit, located as each command starts, kept out of logs."""

from __future__ import annotations

import sys
from urllib.parse import parse_qs, urlsplit

import pytest

import framefarm as ff
from framefarm import LocalStorage, LocalWorkerAdapter, WorkerJob, plan_job
from framefarm.errors import FramefarmError, JobSpecError
from framefarm.failures import FailureKind
from framefarm.inputs import fill_inputs, store_inputs, url_lifetime
from framefarm.protocol import ChunkRequest
from framefarm.redaction import REDACTED, url_secrets
from framefarm.repositories.base import put_spec
from framefarm.storage.base import MAX_PRESIGNED_SECONDS
from framefarm.worker.runtime import run_chunk

# A chunk command that prints what it was given for the input and writes it as its output.
ECHO_INPUT = [sys.executable, "-c", "import sys; print('reading', sys.argv[2]); open(sys.argv[1], 'w').write(sys.argv[2])",
              "{output}", "{input.source}"]


def job(command, inputs, **more):
    return {"id": "job-1", "width": 64, "height": 48, "fps": 10, "total_frames": 2, "chunks": 2,
            "command": command, "inputs": inputs, **more}


def test_input_placeholders_stay_for_the_worker_and_name_a_real_input():
    # GIVEN a job file whose command and audio read an input
    spec = plan_job(job(["{ffmpeg}", "-i", "{input.source}", "{output}"], {"source": "film.mov"},
                        audio=["{ffmpeg}", "-i", "{input.source}", "{output}"]))
    # THEN planning leaves {input.source} in place, like {ffmpeg}, and keeps the inputs
    assert spec.chunks[1].command == ["{ffmpeg}", "-i", "{input.source}", "chunks/00001.mp4"]
    assert spec.audio is not None and "{input.source}" in spec.audio.command
    assert spec.inputs == {"source": "film.mov"}
    # AND a name the job has no input for, a bad name, or an attribute of an input is refused in one line
    with pytest.raises(JobSpecError, match=r"chunks\[0\]\.command: \{input\.other\} names no input \(inputs: source\)"):
        plan_job(job(["cat", "{input.other}", "{output}"], {"source": "film.mov"}))
    with pytest.raises(JobSpecError, match="is not a name"):
        plan_job(job(["cat", "{input.1x}", "{output}"], {"1x": "film.mov"}))
    with pytest.raises(JobSpecError, match="unknown placeholder"):
        plan_job(job(["cat", "{input.source.__class__}", "{output}"], {"source": "film.mov"}))


def test_local_files_are_read_in_place_here_and_uploaded_once_for_remote_workers(tmp_path):
    # GIVEN a local file and a URL as inputs
    film = tmp_path / "film.mov"
    film.write_bytes(b"frames")
    inputs = {"source": str(film), "logo": "https://example.com/logo.png"}
    storage = LocalStorage(tmp_path / "store")
    # WHEN they are stored for chunks run on this machine, then for chunks run elsewhere
    here = store_inputs(inputs, job_id="job-1", storage=storage, upload=False)
    remote = store_inputs(inputs, job_id="job-1", storage=storage, upload=True)
    # THEN here the file is read where it is; elsewhere it went once under the job's prefix; URLs stay
    assert here == {"source": film.as_uri(), "logo": "https://example.com/logo.png"}
    assert remote["source"] == storage.url("jobs/job-1/inputs/source.mov")
    assert storage.get_bytes("jobs/job-1/inputs/source.mov") == b"frames"
    assert remote["logo"] == "https://example.com/logo.png"
    # AND a missing file is named before anything is stored
    with pytest.raises(JobSpecError, match=r"inputs\.source: no file at .*missing\.mov"):
        store_inputs({"source": str(tmp_path / "missing.mov")}, job_id="job-2", storage=storage, upload=True)
    assert storage.list("jobs/job-2/") == []


def test_an_s3_input_becomes_a_url_presigned_for_the_attempt(bucket, s3_client):
    # GIVEN an input in S3
    from framefarm.storage.s3 import S3Storage

    storage = S3Storage(bucket, client=s3_client)
    storage.put_bytes("jobs/job-1/inputs/source.mov", b"frames")
    # WHEN a command with a 600-s time limit has it filled
    argv, handed_out = fill_inputs(["ffmpeg", "-i", "{input.source}", "-i", "{input.source}"],
                                   {"source": f"s3://{bucket}/jobs/job-1/inputs/source.mov"},
                                   expires_in=url_lifetime(600), storage_for=lambda url: (storage, url.split("/", 3)[3]))
    # THEN it is one presigned GET of that key, valid for the time limit plus the margin
    url = argv[2]
    query = parse_qs(urlsplit(url).query)
    assert argv[4] == url and handed_out == [url]
    assert urlsplit(url).path.endswith(f"/{bucket}/jobs/job-1/inputs/source.mov")
    assert query["X-Amz-Expires"] == ["900"] and "X-Amz-Signature" in query
    # AND an attempt with no limit gets the long default, and the store refuses lifetimes it cannot sign
    assert url_lifetime(None) == 6 * 3600
    with pytest.raises(FramefarmError, match="1 to 604800 seconds"):
        storage.presigned_url("jobs/job-1/inputs/source.mov", MAX_PRESIGNED_SECONDS + 1)


def test_a_presigned_input_url_never_reaches_the_output_kept_or_streamed(bucket, s3_client, tmp_path):
    # GIVEN a command that prints the URL of its input, which is in S3
    from framefarm.storage.s3 import S3Storage

    storage = S3Storage(bucket, client=s3_client)
    storage.put_bytes("jobs/job-1/inputs/source.mov", b"frames")
    streamed: list[str] = []
    adapter = LocalWorkerAdapter(storage_for=lambda url: (storage, url.split("/", 3)[3]))
    # WHEN it runs
    result = adapter.execute(WorkerJob(command=[*ECHO_INPUT[:-2], "out.txt", "{input.source}"], cwd=tmp_path,
                                       meta={"inputs": {"source": f"s3://{bucket}/jobs/job-1/inputs/source.mov"}},
                                       on_stdout=streamed.append))
    # THEN the command got a presigned URL, and what was kept and streamed shows it without its query string
    assert result.ok, result.stderr
    printed = result.stdout.strip().removeprefix("reading ")
    assert printed.startswith("http") and printed.endswith(f"/jobs/job-1/inputs/source.mov?{REDACTED}")
    assert "".join(streamed) == result.stdout
    assert "Signature" not in result.stdout and "Credential" not in result.stdout


def test_url_secrets_cover_the_query_and_each_long_value():
    # GIVEN a presigned URL  WHEN its secrets are listed  THEN the query comes first, then its long values
    secrets = url_secrets(["https://h/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Expires=900&X-Amz-Signature=abcdef0123"])
    assert secrets[0] == "X-Amz-Credential=AKIA%2F2026&X-Amz-Expires=900&X-Amz-Signature=abcdef0123"
    assert {"AKIA%2F2026", "AKIA/2026", "abcdef0123"} <= set(secrets) and "900" not in secrets
    assert url_secrets(["file:///tmp/film.mov", "https://example.com/logo.png"]) == ()


def test_a_worker_reads_local_inputs_by_path_and_refuses_another_jobs_files(tmp_path):
    # GIVEN a job on local storage whose input is a file, and one whose input is another job's file
    storage = LocalStorage(tmp_path / "store")
    film = tmp_path / "film.mov"
    film.write_bytes(b"frames")
    url = put_spec(storage, plan_job(job(ECHO_INPUT, {"source": film.as_uri()})))
    storage.put_bytes("jobs/other/inputs/source.mov", b"not yours")
    spy = put_spec(storage, plan_job(job(ECHO_INPUT, {"source": storage.url("jobs/other/inputs/source.mov")},
                                         id="job-2")))
    # WHEN a chunk of each runs on a worker
    ran = run_chunk(ChunkRequest(job_id="job-1", chunk_id=0, spec_url=url))
    refused = run_chunk(ChunkRequest(job_id="job-2", chunk_id=0, spec_url=spy))
    # THEN the first read its input by path; the second is refused before anything runs
    assert ran.exit_code == 0, ran.stderr
    assert storage.get_text("jobs/job-1/chunks/00000.mp4") == str(film)
    assert refused.kind is FailureKind.BAD_REQUEST
    assert refused.error == "bad request: inputs.source is in this store but outside job job-2's prefix"


def test_render_reads_a_local_input_in_place(tmp_path):
    # GIVEN a job file whose input is a local file
    film = tmp_path / "film.txt"
    film.write_text("frames")
    # WHEN it renders locally
    result = ff.render(job(ECHO_INPUT, {"source": str(film)}), backend=ff.Local(home=tmp_path / "home"))
    # THEN each chunk read the file where it is (nothing copied under the job)
    assert result.state is ff.JobState.RENDERED
    chunks = sorted((tmp_path / "home" / "jobs" / "job-1" / "chunks").iterdir())
    assert [path.read_text() for path in chunks] == [str(film), str(film)]
    assert not (tmp_path / "home" / "jobs" / "job-1" / "inputs").exists()


def test_each_step_of_a_chunk_reads_its_inputs_and_a_step_naming_none_is_refused(tmp_path):
    # GIVEN a job of two steps per chunk: the first copies nothing, the second reads the input
    film = tmp_path / "film.txt"
    film.write_text("frames")
    steps = {"steps": [[sys.executable, "-c", "print('first step')"], ECHO_INPUT]}
    # WHEN it renders locally
    result = ff.render(job(steps, {"source": str(film)}), backend=ff.Local(home=tmp_path / "home"))
    # THEN the second step got the input's path
    assert result.state is ff.JobState.RENDERED
    chunks = sorted((tmp_path / "home" / "jobs" / "job-1" / "chunks").iterdir())
    assert [path.read_text() for path in chunks] == [str(film), str(film)]
    # AND a step naming an input the job lacks is refused at planning, in one line
    with pytest.raises(JobSpecError, match=r"\{input\.other\} names no input"):
        plan_job(job({"steps": [["cat", "{input.other}"], ["cp", "a", "{output}"]]}, {"source": "film.mov"}))
