"""`framefarm monitor` and `framefarm report` as commands: their flags, errors and files."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request

from framefarm.cli import main
from tests.helpers import eventually, free_port
from tests.monitor_jobs import Farm


def test_report_writes_one_self_contained_file_with_the_job_s_timeline(tmp_path, capsys):
    # GIVEN a rendered job whose chunk 2 failed once, in a --home store
    farm = Farm(tmp_path / "home")
    job_id = farm.finished_job_with_a_retry(chunks=5, retried=2)
    farm.repository.close()
    # WHEN `framefarm report JOB -o FILE` runs
    code = main(["report", job_id, "-o", str(tmp_path / "r.html"), "--home", str(tmp_path / "home")])
    # THEN the file holds the summary, a row per chunk and a bar per attempt (two for chunk 2)
    html = (tmp_path / "r.html").read_text()
    assert code == 0 and f"report of job {job_id} (rendered)" in capsys.readouterr().err
    assert html.count('<g class="row"') == 5 and html.count('class="bar ') == 6
    assert re.findall(r'class="bar (\w+)" data-chunk="2"', html) == ["failed", "completed"]
    assert "100% (5/5 chunks)" in html and "Cost per chunk" in html
    # AND nothing in it reaches out: no script, no link, no external resource
    assert "<script" not in html and "href=" not in html and "src=" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html


def test_report_of_a_job_that_is_not_there_is_one_line(tmp_path, capsys):
    # GIVEN an empty store  WHEN a report of a missing job is asked  THEN exit 2 and one line, no file
    code = main(["report", "nope", "-o", str(tmp_path / "r.html"), "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: No job 'nope' in ") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_monitor_beyond_loopback_without_a_token_is_refused_in_one_line(tmp_path, capsys):
    # GIVEN no token  WHEN the monitor is asked to listen on every address  THEN exit 2, one line
    code = main(["monitor", "--host", "0.0.0.0", "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--host 0.0.0.0 lets other machines in: give --token TOKEN too" in err
    assert err.count("\n") == 1


def test_monitor_on_a_port_in_use_says_so_in_one_line(tmp_path, capsys):
    # GIVEN a port something already listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        # WHEN the monitor is asked to listen there  THEN exit 2 and a line that says what to do
        code = main(["monitor", "--port", str(port), "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and f"--port {port}: cannot listen there" in err and "give another --port" in err


def test_the_monitor_command_serves_the_jobs_page_of_its_home(tmp_path):
    # GIVEN a store with a rendered job
    farm = Farm(tmp_path / "home")
    farm.finished_job_with_a_retry()
    farm.repository.close()
    port = free_port()
    # WHEN `framefarm monitor` runs in its own process
    server = subprocess.Popen([sys.executable, "-m", "framefarm", "monitor", "--port", str(port), "--home",
                               str(tmp_path / "home")], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        def page():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    return answer.read().decode()
            except OSError:
                return None
        # THEN it serves the jobs page on 127.0.0.1 with the job in it
        assert 'data-job="finished"' in eventually(page, what="the monitor serving")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"framefarm monitor on http://127.0.0.1:{port}/ over the local job store" in err


def test_report_needs_no_web_server_installed(tmp_path):
    from tests.integration.test_cli_extras import without

    # GIVEN a rendered job, and a framefarm without the monitor extra (no starlette, no uvicorn, no anyio)
    farm = Farm(tmp_path / "home")
    job_id = farm.finished_job_with_a_retry()
    farm.repository.close()
    env = without(tmp_path / "a", "starlette")
    for module in ("uvicorn", "anyio"):
        env["PYTHONPATH"] = without(tmp_path / module, module)["PYTHONPATH"] + os.pathsep + env["PYTHONPATH"]
    env["PYTHONPATH"] += os.pathsep + os.pathsep.join(sys.path)
    # WHEN `framefarm report` runs  THEN it writes the report all the same
    done = subprocess.run([sys.executable, "-m", "framefarm", "report", job_id, "-o", str(tmp_path / "r.html"),
                           "--home", str(tmp_path / "home")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.html").read_text().count('<g class="row"') == 6


def test_a_job_the_page_resumed_is_paused_when_the_monitor_stops(tmp_path, capsys):
    import threading

    from rich.console import Console

    from framefarm.cli.context import Context
    from framefarm.cli.monitor import pause_runs_here
    from framefarm.status import JobState
    from tests.helpers import make_spec

    # GIVEN a paused job of 3 chunks, resumed from the page so that the monitor's process runs it
    farm = Farm(tmp_path / "home")
    farm.manager.create_job(make_spec(3, job_id="p"))
    farm.manager.pause_job("p")
    monitor = farm.monitor()
    context = Context(home=farm.home, out=Console(), err=Console(stderr=True))
    stopping = threading.Thread(target=pause_runs_here, args=(monitor.manager, context))

    chunk_1_started = threading.Event()

    def server_stops_during_chunks_0_and_1(job):  # the monitor stops while chunks 0 and 1 are in flight
        assert chunk_1_started.wait(30), "chunk 1 never started"
        stopping.start()
        assert job.cancel.wait(30), "the run was never asked to stop"

    def chunk_1(job):
        chunk_1_started.set()
        job.cancel.wait(30)  # in flight until asked to stop

    farm.worker.hooks[0] = server_stops_during_chunks_0_and_1
    farm.worker.hooks[1] = chunk_1
    farm.worker.hooks[2] = lambda job: job.cancel.wait(30)
    monitor.actions.resume("p")
    # WHEN the server has stopped
    eventually(lambda: stopping.ident, what="the server stopping")
    stopping.join(timeout=60)
    # THEN the job is paused with the two chunks in flight then (two at a time) kept, and it said how to continue
    final = farm.manager.summary("p")
    assert final.state is JobState.PAUSED and final.completed_chunks == 2 and not monitor.manager.running_here()
    assert "pausing job p, which this monitor was running; continue with `framefarm resume p`" in capsys.readouterr().err
    farm.close(monitor)
