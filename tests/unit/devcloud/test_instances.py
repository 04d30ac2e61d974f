"""devcloud's function instances: processes under awslambdaric, behaving as Lambda's execution environments."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading

import boto3
import pytest
from botocore.exceptions import ClientError

from framefarm.adapters.aws_lambda import lambda_client
from framefarm.billing import parse_report
from framefarm.devcloud import DevCloud, DevFunction
from tests.helpers import eventually, process_alive

HANDLERS = "tests.lambda_functions"


@pytest.fixture
def cloud(aws_credentials, monkeypatch):
    functions = [DevFunction("slow", f"{HANDLERS}.slow_worker", timeout=30, reserved_concurrency=2),
                 DevFunction("brief", f"{HANDLERS}.slow_worker", timeout=0.8),
                 DevFunction("failing", f"{HANDLERS}.failing_worker"),
                 DevFunction("heavy", f"{HANDLERS}.allocate", memory_mb=1024),
                 DevFunction("light", f"{HANDLERS}.allocate", memory_mb=1024),
                 DevFunction("renders", f"{HANDLERS}.allocate_in_child", memory_mb=1024),
                 DevFunction("crashing", f"{HANDLERS}.exit_leaving_child"),
                 DevFunction("sandbox", f"{HANDLERS}.sandbox", memory_mb=768, timeout=20),
                 DevFunction("missing", "tests.no_such_module.handler")]
    with DevCloud(functions, event_retry_delays=(0.01, 0.01), idle_timeout=300) as devcloud:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", devcloud.endpoint)
        yield devcloud


def invoke(name: str, event: dict) -> tuple[dict, str, str | None]:
    """(reply, log tail, function error) of one synchronous call."""
    answer = lambda_client().invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    return (json.loads(answer["Payload"].read()), base64.b64decode(answer["LogResult"]).decode(),
            answer.get("FunctionError"))


def in_background(name: str, event: dict) -> tuple[threading.Thread, list]:
    replies: list = []
    thread = threading.Thread(target=lambda: replies.append(invoke(name, event)))
    thread.start()
    return thread, replies


def test_each_call_has_an_instance_of_its_own_up_to_the_reserved_concurrency_then_429(cloud):
    # GIVEN a function with reserved concurrency 2, busy with two calls
    calls = [in_background("slow", {"seconds": 2}) for _ in range(2)]
    eventually(lambda: len(cloud.instances("slow")) == 2, what="two instances")
    # WHEN a third synchronous call arrives
    with pytest.raises(ClientError) as refused:
        lambda_client().invoke(FunctionName="slow", Payload=b'{"seconds": 0}')
    # THEN it is throttled as Lambda does, and the two calls ran in two processes, one call each
    assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"
    for thread, _ in calls:
        thread.join(timeout=60)
    pids = {replies[0][0]["pid"] for _, replies in calls}
    assert len(pids) == 2 and all(error is None for _, replies in calls for _, _, error in replies)


def test_a_cold_start_reports_init_duration_and_a_warm_instance_is_reused_without_it(cloud):
    # GIVEN a function never called
    # WHEN it is called twice in a row
    first, first_log, _ = invoke("slow", {"seconds": 0})
    second, second_log, _ = invoke("slow", {"seconds": 0})
    # THEN the first call started a process (Init Duration: process start + init), the second reused it
    cold, warm = parse_report(first_log), parse_report(second_log)
    assert cold.init_duration_ms is not None and cold.init_duration_ms > 0
    assert warm.init_duration_ms is None and first["pid"] == second["pid"]


def test_idle_instances_are_reaped_after_the_idle_timeout(aws_credentials, monkeypatch):
    # GIVEN a devcloud that keeps idle instances for 0.3 s
    with DevCloud([DevFunction("slow", f"{HANDLERS}.slow_worker")], idle_timeout=0.3) as cloud:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", cloud.endpoint)
        # WHEN one call ran and the instance then sat idle
        reply, _, _ = invoke("slow", {"seconds": 0})
        # THEN its process is stopped and the next call is a cold start in a new process
        eventually(lambda: not process_alive(reply["pid"]), what="the idle instance reaped")
        again, log, _ = invoke("slow", {"seconds": 0})
        assert again["pid"] != reply["pid"] and parse_report(log).init_duration_ms is not None


def test_max_memory_used_is_each_instance_processs_own_peak(cloud):
    # GIVEN two functions, one of which allocates 300 MB
    # WHEN each runs once
    _, heavy_log, _ = invoke("heavy", {"mb": 300})
    _, light_log, _ = invoke("light", {"mb": 0})
    # THEN the heavy one reports at least 300 MB, the light one only its own (an interpreter's worth)
    heavy, light = parse_report(heavy_log), parse_report(light_log)
    assert heavy.max_memory_used_mb >= 300
    assert 10 < light.max_memory_used_mb < 200


def test_max_memory_used_counts_what_the_handler_started_as_lambdas_sandbox_does(cloud):
    # GIVEN a function whose handler runs a child process (a chunk's ffmpeg) that holds 300 MB
    # WHEN it runs once
    _, log, error = invoke("renders", {"mb": 300, "hold": 0.5})
    # THEN the instance reports the child's memory too
    assert error is None and parse_report(log).max_memory_used_mb >= 300


def test_a_timeout_kills_the_instance_and_the_next_call_starts_cold(cloud):
    # GIVEN a function with a 0.8 s timeout, called with work for 30 s
    thread, replies = in_background("brief", {"seconds": 30})
    eventually(lambda: cloud.instances("brief"), what="an instance")
    pid = cloud.instances("brief")[0].process.pid
    thread.join(timeout=60)
    # THEN the call failed as Lambda's timeouts do, and the instance's process is gone
    reply, log, error = replies[0]
    assert error == "Unhandled" and reply["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.80 seconds" in reply["errorMessage"] and "Status: timeout" in log
    assert not process_alive(pid) and cloud.instances("brief") == []
    # AND the next call starts a new instance
    again, log, error = invoke("brief", {"seconds": 0})
    assert error is None and again["pid"] != pid and parse_report(log).init_duration_ms is not None


def test_an_instance_gets_lambdas_environment_its_own_tmp_and_the_deadline_as_remaining_time(cloud):
    # WHEN the sandbox function reports what it sees
    seen, _, error = invoke("sandbox", {})
    # THEN it has the variables Lambda sets, a runtime API of its own and a TMPDIR of its own
    assert error is None
    env = seen["env"]
    assert (env["AWS_LAMBDA_FUNCTION_NAME"], env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == ("sandbox", "768")
    assert env["_HANDLER"] == f"{HANDLERS}.sandbox" and env["AWS_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:") and os.path.isdir(env["LAMBDA_TASK_ROOT"])
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert seen["tmp"] == env["TMPDIR"] != tempfile.gettempdir()
    # AND awslambdaric's context object carries the function, its limits and the deadline devcloud set
    assert (seen["function_name"], seen["memory_limit_in_mb"]) == ("sandbox", "768")  # a str, as on Lambda
    assert seen["arn"].endswith(":function:sandbox") and 0 < seen["remaining_ms"] <= 20_000
    # AND a second instance, busy at the same time, has another /tmp
    first = in_background("sandbox", {})
    second = in_background("sandbox", {})
    for thread, _ in (first, second):
        thread.join(timeout=60)
    tmps = {replies[0][0]["tmp"] for _, replies in (first, second)}
    pids = {replies[0][0]["pid"] for _, replies in (first, second)}
    assert len(tmps) == len(pids)


def test_an_event_call_that_fails_is_retried_twice(cloud):
    # WHEN a function that always raises is invoked asynchronously
    boto3.client("lambda", endpoint_url=cloud.endpoint).invoke(FunctionName="failing", InvocationType="Event",
                                                               Payload=b"{}")
    # THEN Lambda's two retries follow the first call, all three failing
    assert cloud.wait_idle(timeout=60)
    assert [(call.kind, call.function_error) for call in cloud.calls("failing")] == [("Event", "Unhandled")] * 3


def test_a_handler_that_cannot_be_imported_is_an_init_error(cloud):
    reply, _, error = invoke("missing", {})
    assert error == "Unhandled" and reply["errorType"] == "Runtime.ImportModuleError"
    assert "tests.no_such_module" in reply["errorMessage"]


def test_a_killed_instance_is_a_runtime_exit_error(cloud):
    # GIVEN a kill armed on the next call to "slow", due when "light" is called once
    cloud.kill("slow", after_calls_to="light", calls=1)
    thread, replies = in_background("slow", {"seconds": 30})
    eventually(lambda: cloud.kills_armed == 1, what="the call to kill under way")  # its cold start is over
    pid = cloud.instances("slow")[0].process.pid
    # WHEN "light" is called
    invoke("light", {"mb": 0})
    thread.join(timeout=60)
    # THEN the instance died by SIGKILL mid-call, as a sandbox does
    reply, _, error = replies[0]
    assert error == "Unhandled" and reply["errorType"] == "Runtime.ExitError"
    assert reply["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert not process_alive(pid) and cloud.kills_done == 1


def test_what_a_runtime_started_dies_with_it_when_it_exits_on_its_own(cloud, tmp_path):
    # GIVEN a handler that starts a long child process, then ends its runtime process (a crash)
    pid_file = tmp_path / "child.pid"
    _, _, error = invoke("crashing", {"pid_file": str(pid_file)})
    # THEN the call failed as an exited runtime does, and the child went with the sandbox
    assert error == "Unhandled"
    eventually(lambda: not process_alive(int(pid_file.read_text())), timeout=10, what="the child gone")


def test_stop_drops_a_pending_event_retry_instead_of_waiting_for_it(aws_credentials, monkeypatch):
    # GIVEN an Event call that fails, with Lambda's retry due a minute later
    with DevCloud([DevFunction("failing", f"{HANDLERS}.failing_worker")], event_retry_delays=(60.0, 60.0)) as cloud:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", cloud.endpoint)
        lambda_client().invoke(FunctionName="failing", InvocationType="Event", Payload=b"{}")
        eventually(lambda: cloud.calls("failing"), what="the first call")
        # WHEN devcloud stops
        stopping = threading.Thread(target=cloud.stop)
        stopping.start()
        stopping.join(timeout=20)
        # THEN it did not wait for the retry, and the retry never ran
        assert not stopping.is_alive()
        assert len(cloud.calls("failing")) == 1
        assert cloud.wait_idle(timeout=10)
