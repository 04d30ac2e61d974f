"""CloudRunWorkerAdapter driving the real worker server (waitress) on 127.0.0.1, in its own process started
as the image starts it, behind a relay that records what reaches it."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from framefarm import (
    ExecutionOptions,
    FfmpegStitcher,
    InMemoryJobRepository,
    JobExecutor,
    JobManager,
    JobState,
    LocalStorage,
    WorkerJob,
    plan_job,
)
from framefarm.adapters.cloud_run import (
    CloudRunService,
    CloudRunWorkerAdapter,
    parse_cpu,
    parse_memory_gib,
    resolve_service,
)
from framefarm.billing import CLOUD_RUN_PRICES
from framefarm.failures import FailureKind
from framefarm.repositories.base import put_spec
from framefarm.stitch.probe import packets
from framefarm.storage.keys import spec_key
from tests.helpers import WorkerProcess
from tests.helpers import WorkerServer as Server

PY = sys.executable


@pytest.fixture(scope="module")
def worker_process():
    running = WorkerProcess(timeout=20)
    yield running
    running.close()


@pytest.fixture
def server(worker_process):
    relay = Server(process=worker_process)
    yield relay
    relay.close()


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "store")


def put_job(storage, command, *, chunks=3, job_id="job-1"):
    spec = plan_job({"id": job_id, "width": 64, "height": 48, "fps": 10, "total_frames": chunks,
                     "frames_per_chunk": 1, "command": command})
    put_spec(storage, spec)
    return spec


WRITE = [PY, "-c", "import sys; print('rendered', sys.argv[2]); open(sys.argv[1], 'w').write('x')",
         "{output}", "{chunk_id}"]
def busy_command(marker):
    """A chunk that marks that it started, runs 1.5 s, then writes its output."""
    return [PY, "-c", "import sys, time; open(sys.argv[2], 'w').close(); time.sleep(1.5); "
                      "open(sys.argv[1], 'w').write('x')", "{output}", str(marker)]


def wait_for(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def adapter(server, storage, **kwargs):
    kwargs.setdefault("token_provider", lambda audience: f"token-for-{audience}")
    worker = CloudRunWorkerAdapter(server.url, storage, vcpu=2, memory_gib=4, service_timeout=30, **kwargs)
    worker._loopback = False  # act as for a deployed service: send an ID token
    return worker


def job(chunk_id=0, job_id="job-1", **kwargs):
    return WorkerJob(command="ignored", meta={"job_id": job_id, "chunk_id": chunk_id, "attempt": 1}, **kwargs)


def test_the_worker_is_its_own_process_started_as_its_image_starts_it(server):
    # GIVEN the worker the adapter tests talk to
    pid = server.process.process.pid
    # THEN it is another process, running the image's CMD, listening on the PORT it was given
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    environ = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item)
    assert pid != os.getpid()
    assert [part.decode() for part in argv] == [PY, "-m", "framefarm.worker.cloud_run_server"]
    assert environ[b"PORT"] == str(server.process.port).encode()
    # AND requests through the relay reach it
    assert requests.get(server.url + "/").status_code == 405


def test_success_returns_buffered_output_billing_and_sends_the_token(server, storage):
    put_job(storage, WRITE)
    streamed = []
    result = adapter(server, storage).execute(job(1, on_stdout=streamed.append, on_stderr=streamed.append))
    assert (result.exit_code, result.stdout, result.output_location) == (0, "rendered 1\n", "jobs/job-1/chunks/00001.mp4")
    assert streamed == [] and storage.exists("jobs/job-1/chunks/00001.mp4")
    assert result.billed_duration_ms % 100 == 0 and result.billed_duration_ms >= 100
    assert result.cost_usd == pytest.approx(CLOUD_RUN_PRICES.cost(billed_duration_ms=result.billed_duration_ms,
                                                                  vcpu=2, memory_gib=4))
    assert server.authorizations == [f"Bearer token-for-{server.url}"]


def test_token_is_fetched_once_and_reused(server, storage):
    put_job(storage, WRITE)
    calls = []
    worker = adapter(server, storage, token_provider=lambda audience: calls.append(audience) or "t")
    for chunk_id in range(3):
        assert worker.execute(job(chunk_id)).ok
    assert calls == [server.url]


def test_non_zero_exit_is_a_failed_attempt_with_its_output(server, storage):
    put_job(storage, [PY, "-c", "import sys; sys.stderr.write('bad frame'); sys.exit(4)"])
    result = adapter(server, storage).execute(job())
    assert (result.exit_code, result.kind, result.stderr, result.output_location) == (4, FailureKind.EXIT_CODE, "bad frame", None)


def test_bad_bodies_get_400_with_a_message(server):
    garbage = requests.post(server.url + "/", data="{nope", headers={"Content-Type": "application/json"})
    missing = requests.post(server.url + "/", json={"job_id": "j"})
    assert garbage.status_code == 400 and "must be a JSON object" in garbage.json()["error"]
    assert missing.status_code == 400 and missing.json()["error"].startswith("bad request: chunk_id")
    assert requests.get(server.url + "/").status_code == 405


def test_a_second_concurrent_request_is_refused_with_429(server, storage, tmp_path):
    put_job(storage, busy_command(tmp_path / "started"))
    first = threading.Thread(target=lambda: requests.post(server.url + "/", json={
        "job_id": "job-1", "chunk_id": 0, "spec_url": storage.url(spec_key("job-1"))}))
    first.start()
    wait_for(tmp_path / "started")  # the first chunk is running
    second = requests.post(server.url + "/", json={"job_id": "job-1", "chunk_id": 1,
                                                   "spec_url": storage.url(spec_key("job-1"))})
    first.join()
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert "one chunk at a time" in second.json()["error"]


def test_429_is_retried_without_using_an_attempt(server, storage, tmp_path):
    # GIVEN the instance is busy with another chunk for about 1.5 s
    put_job(storage, busy_command(tmp_path / "started"))
    busy = threading.Thread(target=lambda: adapter(server, storage).execute(job(0)))
    busy.start()
    wait_for(tmp_path / "started")
    # WHEN the adapter sends another chunk
    result = adapter(server, storage, retry_delay=0.2).execute(job(1))
    busy.join()
    # THEN it was refused at least once, retried, and succeeded
    assert result.ok and result.throttles >= 1


def test_chunk_timeout_on_the_server(storage):
    slow = Server(timeout=0.5)
    try:
        put_job(storage, [PY, "-c", "import time; time.sleep(30)"])
        result = adapter(slow, storage).execute(job())
        assert result.exit_code == 124 and result.error == "timed out after 0.5 s" and result.kind is FailureKind.TIMEOUT
    finally:
        slow.close()


def test_client_timeout_is_above_the_service_timeout(server, storage):
    worker = adapter(server, storage)
    assert worker.service.timeout == 30
    seen = {}

    class Recording:
        def post(self, url, **kwargs):
            seen.update(kwargs)
            raise requests.ConnectionError("stop here")

    worker._session = Recording()
    result = worker.execute(job())
    assert seen["timeout"][1] > 30
    # AND a lost connection is a transient failure (retried under transient_retries), not an exception
    assert result.kind is FailureKind.CONNECTION_LOST and result.transient
    assert result.error == "connection lost: ConnectionError: stop here"


def test_other_4xx_is_a_failed_attempt_with_the_body(storage):
    class Forbidden:
        status_code, text = 403, "Your client does not have permission to get URL / from this server."

    class Session:
        def post(self, url, **kwargs):
            return Forbidden()

    worker = CloudRunWorkerAdapter("https://worker-abc.a.run.app", storage, session=Session(),
                                   token_provider=lambda audience: "t")
    result = worker.execute(job())
    assert (result.kind, result.exit_code) == (FailureKind.BAD_REQUEST, None) and not result.transient
    assert result.error.startswith("HTTP 403: Your client does not have")


def test_resolves_url_limits_and_timeout_with_google_cloud_run():
    from google.cloud import run_v2
    from google.protobuf import duration_pb2

    # GIVEN google-cloud-run's own Service message, as get_service returns it
    service = run_v2.Service(uri="https://framefarm-worker-abc.a.run.app", template=run_v2.RevisionTemplate(
        timeout=duration_pb2.Duration(seconds=900),
        containers=[run_v2.Container(resources=run_v2.ResourceRequirements(limits={"cpu": "2", "memory": "4Gi"}))]))
    asked = []

    class Client:
        def get_service(self, name):
            asked.append(name)
            return service

    resolved = resolve_service("projects/p/locations/europe-west1/services/framefarm-worker", client=Client())
    assert resolved == CloudRunService(url="https://framefarm-worker-abc.a.run.app", vcpu=2.0, memory_gib=4.0,
                                       timeout=900.0)
    assert asked == ["projects/p/locations/europe-west1/services/framefarm-worker"]
    worker = CloudRunWorkerAdapter("projects/p/locations/europe-west1/services/framefarm-worker",
                                   LocalStorage("/tmp"), services_client=Client(), token_provider=lambda a: "t")
    assert worker.service.url == "https://framefarm-worker-abc.a.run.app"


def test_quantities_and_cost_against_a_hand_calculation():
    assert (parse_cpu("2"), parse_cpu("1000m"), parse_cpu("500m")) == (2.0, 1.0, 0.5)
    assert (parse_memory_gib("4Gi"), parse_memory_gib("512Mi"), parse_memory_gib("2G")) == (
        4.0, 0.5, pytest.approx(1.862645, rel=1e-6))
    # 1,234 ms of request time bills as 1,300 ms. At 2 vCPU and 4 GiB:
    # 1.3 s x (2 x 0.000024 + 4 x 0.0000025) = 1.3 x 0.000058 = 0.0000754, + 0.0000004 per request = 0.0000758
    assert CLOUD_RUN_PRICES.billed_ms(1234) == 1300 and CLOUD_RUN_PRICES.billed_ms(1200) == 1200
    assert CLOUD_RUN_PRICES.cost(billed_duration_ms=1300, vcpu=2, memory_gib=4) == pytest.approx(0.0000758, rel=1e-9)


@pytest.mark.slow
def test_a_testsrc_job_end_to_end_through_the_server(server, storage, tmp_path):
    # GIVEN a small test-pattern job whose spec is in the worker's storage
    spec = plan_job({"id": "cr-e2e", "width": 160, "height": 120, "fps": 10, "total_frames": 30,
                     "frames_per_chunk": 10,
                     "command": "{ffmpeg} -hide_banner -loglevel error -y -f lavfi -i testsrc2=size={width}x{height}:rate={fps} "
                                "-vf trim=start_frame={start_frame}:end_frame={end_frame},setpts=PTS-STARTPTS "
                                "-an -c:v libx264 -pix_fmt yuv420p {output}"})
    put_spec(storage, spec)
    manager = JobManager(InMemoryJobRepository(), JobExecutor(adapter(server, storage)), storage)
    manager.create_job(spec)
    # WHEN it runs through the Cloud Run adapter, one chunk at a time per instance
    summary = manager.run_job(spec.id, ExecutionOptions(concurrency=1, merge=False))
    assert summary.state is JobState.RENDERED, summary.error
    assert all(record.billed_duration_ms > 0 and record.cost_usd > 0 for record in manager.get_job(spec.id).chunks)
    # THEN the chunks stitched from storage make exactly the planned frames
    from framefarm.stitch.merge import S3MergeAdapter

    output = S3MergeAdapter(storage, stitcher=FfmpegStitcher()).merge(spec, tmp_path / "cr.mp4")
    assert len(packets(output)) == 30


def test_a_worker_on_loopback_needs_no_google_credentials(server, storage):
    put_job(storage, WRITE)

    def no_credentials(audience):
        raise AssertionError("no token should be asked for")

    worker = CloudRunWorkerAdapter(server.url, storage, token_provider=no_credentials)
    assert worker.execute(job()).ok and server.authorizations == [None]


def test_resolution_through_the_real_services_client_over_rest():
    """google-cloud-run's ServicesClient, REST transport, answered by a local HTTP server."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import run_v2
    from google.cloud.run_v2.services.services.transports.rest import ServicesRestTransport

    paths = []

    class Api(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            paths.append(self.path.split("?")[0])
            body = json.dumps({"name": "projects/p/locations/us-central1/services/worker",
                               "uri": "https://worker-xyz-uc.a.run.app",
                               "template": {"timeout": "600s", "containers": [
                                   {"image": "img", "resources": {"limits": {"cpu": "4", "memory": "8Gi"}}}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        transport = ServicesRestTransport(host=f"127.0.0.1:{api.server_address[1]}",
                                          credentials=AnonymousCredentials(), url_scheme="http")
        client = run_v2.ServicesClient(transport=transport)
        resolved = resolve_service("projects/p/locations/us-central1/services/worker", client=client)
    finally:
        api.shutdown()
    assert paths == ["/v2/projects/p/locations/us-central1/services/worker"]
    assert resolved == CloudRunService(url="https://worker-xyz-uc.a.run.app", vcpu=4.0, memory_gib=8.0, timeout=600.0)


def test_the_bearer_token_never_reaches_a_result(storage):
    # GIVEN a service whose error page echoes the request's Authorization header
    token = "eyJhbGciOiJSUzI1NiJ9.secret-id-token.signature"

    class Echo:
        status_code = 401

        def __init__(self, headers):
            self.text = f"rejected credentials: {headers['Authorization']}"

    class Session:
        def post(self, url, **kwargs):
            return Echo(kwargs["headers"])

    worker = CloudRunWorkerAdapter("https://worker-abc.a.run.app", storage, session=Session(),
                                   token_provider=lambda audience: token)
    # WHEN a chunk is sent, THEN the failure is kept without the token
    result = worker.execute(job())
    assert result.error == "HTTP 401: rejected credentials: Bearer [redacted]"
    assert token not in result.model_dump_json()
