"""LocalWorkerAdapter: runs a chunk's command as a subprocess on this machine.

No shell is ever involved: the command is an argv list (strings are split with shlex), or several
(``Steps``) run one after another in the same directory; the first that fails ends the attempt (its
exit code, and the error names the step), one timeout covers them all. Both pipes
are read by the calling thread through one selector, so a chunk costs one thread however chatty it
is, and text reaches ``on_stdout``/``on_stderr`` as it arrives. A timeout or a cancel kills the
whole process group (ffmpeg's children included); the output read so far stays in the result.
A chunk (``meta`` names its ``output_file``) writes a file of the attempt's own, put in place only
when it succeeded: see ``chunk_output``. A video put in place is measured once, here, and its media
record written beside it for the stitcher (``stitch.records``).

A command dies with the process that runs it, even one killed by SIGKILL: on Linux each command gets
SIGKILL as its parent-death signal (elsewhere it outlives a killed runner). The kernel sends it when
the *thread* that started the command exits, which never comes early here: ``execute`` waits for
its command on the thread that started it, and the executor's pool threads leave only between tasks
(a retired one once its stuck call returns, which the watchdog's cancel ends by killing the command).
What a command starts itself dies with its group on a timeout or a cancel, but outlives a SIGKILL of
the runner: the parent-death signal reaches direct children only.

A job's source media (``meta["inputs"]``, from the spec's ``inputs``) are located here, as the command
starts: each ``{input.NAME}`` becomes a path or a URL presigned for this attempt (``framefarm.inputs``
says why here), and those URLs' secrets are blanked out of the output, streamed and kept.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import functools
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import IO

from framefarm.adapters.base import CANCELLED, TextCallback, WorkerJob, WorkerResult
from framefarm.adapters.chunk_output import ChunkOutput
from framefarm.config import ffmpeg_path
from framefarm.failures import FailureKind
from framefarm.inputs import StorageFor, fill_inputs, url_lifetime
from framefarm.redaction import redact, redact_result, url_secrets
from framefarm.spec import command_steps
from framefarm.stitch.records import write_record
from framefarm.storage import storage_for_url
from framefarm.storage.keys import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_TIMEOUT = 124  # the convention of coreutils' timeout(1)
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
EXIT_SIGNAL_BASE = 128  # a command killed by signal N exits 128 + N, as a shell reports it
READ_SIZE = 65_536


class LocalWorkerAdapter:
    """Runs WorkerJobs as local subprocesses, streaming output live.

    ``tools`` maps placeholder names to programs: a ``{ffmpeg}`` in a command becomes the ffmpeg
    binary (``FRAMEFARM_FFMPEG`` or the bundled one) unless ``tools`` names another.
    Commands see ``base_env`` (default: this process's environment) plus ``env`` and the job's own.
    ``storage_for`` finds the store of an ``s3://``/``gs://`` input, to presign it.
    """

    def __init__(self, *, tools: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
                 base_env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 storage_for: StorageFor = storage_for_url) -> None:
        self._tools = dict(tools or {})
        self._env = dict(env or {})
        self._base_env = base_env
        self._clock = clock
        self._storage_for = storage_for

    def execute(self, job: WorkerJob) -> WorkerResult:
        steps = command_steps(job.command)
        steps[-1] = [*steps[-1], *job.args]
        steps = [self._resolve_tools(argv) for argv in steps]
        started = self._clock()
        try:
            steps, handed_out = _fill_inputs(steps, job, self._storage_for)
        except Exception as exc:  # a bad name, a URL it cannot sign: this attempt fails, saying which
            message = f"inputs: {exc}"
            return WorkerResult(stderr=message + "\n", error=message, kind=FailureKind.FUNCTION_ERROR,
                                duration_ms=(self._clock() - started) * 1000.0)
        secrets = url_secrets(handed_out)
        if secrets:
            job = replace(job, on_stdout=_redacting(job.on_stdout, secrets),
                          on_stderr=_redacting(job.on_stderr, secrets))
        output = _chunk_output(job, steps)
        try:
            return redact_result(self._run(job, steps if output is None else output.steps, output), secrets)
        finally:
            if output is not None:
                output.discard()

    def _run(self, job: WorkerJob, steps: list[list[str]], output: ChunkOutput | None) -> WorkerResult:
        """Run the steps in order until one fails; one deadline and one cancel cover them all."""
        env = {**(os.environ if self._base_env is None else self._base_env), **self._env, **(job.env or {})}
        if job.cwd is not None:  # as a shell sets it: Blender, for one, finds relative paths from $PWD
            env["PWD"] = os.path.abspath(job.cwd)
        started = self._clock()
        deadline = None if job.timeout is None else started + job.timeout
        run = _StepRun(job, env, deadline, self._clock)
        unregister = (job.cancel.on_cancel(lambda: run.kill(FailureKind.CANCELLED, CANCELLED)) if job.cancel
                      else (lambda: None))
        exit_code: int | None = None
        error: str | None = None
        failed_step = ""  # which step ended the attempt, when there are several
        try:
            for number, argv in enumerate(steps, 1):
                if run.stopped:
                    break
                exit_code, error = run.step(argv)
                if exit_code != 0 or run.stopped:
                    if len(steps) > 1:
                        failed_step = f"step {number} of {len(steps)} ({os.path.basename(argv[0])})"
                    break
        finally:
            unregister()
        kind = FailureKind.EXIT_CODE if exit_code else None
        if run.stopped:
            kind, error = run.stopped[0]
            if kind is FailureKind.TIMEOUT:
                exit_code = EXIT_TIMEOUT
                error = f"{error} in {failed_step}" if failed_step else error
        elif kind is not None and failed_step:
            error = f"{failed_step}: {error}" if error else f"{failed_step} exited {exit_code}"
        elif exit_code == 0 and output is not None:
            error = output.commit()
            kind = FailureKind.NO_OUTPUT if error else None
            if error is None and PurePosixPath(output.output_file).suffix.lower() in VIDEO_SUFFIXES:
                write_record(output.final, ffmpeg=self._tools.get("ffmpeg"))  # measured here, once (stitch.records)
        return WorkerResult(exit_code=exit_code, stdout="".join(run.stdout), stderr="".join(run.stderr),
                            error=error, kind=kind, duration_ms=(self._clock() - started) * 1000.0)

    def _resolve_tools(self, argv: list[str]) -> list[str]:
        resolved = []
        for argument in argv:
            if "{ffmpeg}" in argument and "ffmpeg" not in self._tools:
                self._tools["ffmpeg"] = ffmpeg_path()
            for name, program in self._tools.items():
                argument = argument.replace("{" + name + "}", program)
            resolved.append(argument)
        return resolved


class _StepRun:
    """The commands of one attempt, run one at a time: what they printed, and why they were stopped.

    A cancel or the deadline kills the command running then (its whole group) and stops the rest."""

    def __init__(self, job: WorkerJob, env: Mapping[str, str], deadline: float | None,
                 clock: Callable[[], float]) -> None:
        self.job, self.env, self.deadline, self.clock = job, env, deadline, clock
        self.stopped: list[tuple[FailureKind, str]] = []
        self.running: subprocess.Popen[bytes] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def kill(self, kind: FailureKind, why: str) -> None:
        if not self.stopped:
            self.stopped.append((kind, why))
        if self.running is not None:
            _kill_group(self.running)

    def step(self, argv: list[str]) -> tuple[int, str | None]:
        """Run one command to its end: its exit status, and why it could not start (else None)."""
        job = self.job
        try:
            process = subprocess.Popen(argv, cwd=job.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True, preexec_fn=_die_with(os.getpid()))
        except FileNotFoundError:
            return self._not_started(EXIT_NOT_FOUND, f"command not found: {argv[0]}")
        except PermissionError:
            return self._not_started(EXIT_NOT_EXECUTABLE, f"command not executable: {argv[0]}")
        except NotADirectoryError as exc:
            return self._not_started(EXIT_NOT_FOUND, f"cannot start {argv[0]}: {exc}")
        self.running = process
        try:
            if self.stopped:  # a cancel that came while it started found nothing to kill
                _kill_group(process)
            out, err = _pump(process, job.on_stdout, job.on_stderr, self.deadline, self.clock,
                             on_deadline=lambda: self.kill(FailureKind.TIMEOUT, f"timed out after {job.timeout:g} s"))
            self.stdout.append(out)
            self.stderr.append(err)
            return _shell_status(process.wait()), None
        finally:
            if process.poll() is None:
                _kill_group(process)
                process.wait()
            self.running = None

    def _not_started(self, exit_code: int, message: str) -> tuple[int, str]:
        self.stderr.append(message + "\n")
        return exit_code, message


def _redacting(callback: TextCallback | None, secrets: Sequence[str]) -> TextCallback | None:
    """``callback`` given text with ``secrets`` blanked (ffmpeg prints each URL it opens in one write)."""
    if callback is None:
        return None
    forward = callback
    return lambda text: forward(redact(text, secrets))


def _shell_status(returncode: int) -> int:
    """A process's exit status as a shell reports it: Popen's -N for "killed by signal N" is 128 + N."""
    return EXIT_SIGNAL_BASE - returncode if returncode < 0 else returncode


def _chunk_output(job: WorkerJob, steps: list[list[str]]) -> ChunkOutput | None:
    """A chunk's output for this attempt (see ``chunk_output``); None for a merge or audio step."""
    output_file = job.meta.get("output_file")
    if not output_file or job.cwd is None:
        return None  # not a chunk (a merge or audio step), or nothing to check against
    return ChunkOutput(job.cwd, output_file, steps)


def _die_with(parent: int) -> Callable[[], None] | None:
    """What the child runs before exec so that it gets SIGKILL when its parent goes; None where the
    platform has no such thing (the command then outlives a killed runner)."""
    prctl = _prctl()
    if prctl is None:
        return None

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the runner died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError) as exc:
        logger.warning("no prctl (%s): commands will outlive a runner that is killed", exc)
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def _pump(process: subprocess.Popen[bytes], on_stdout: TextCallback | None, on_stderr: TextCallback | None,
          deadline: float | None, clock: Callable[[], float], on_deadline: Callable[[], None]
          ) -> tuple[str, str]:
    """Read both pipes until EOF, forwarding decoded text; call ``on_deadline`` once when time is up."""
    assert process.stdout is not None and process.stderr is not None
    streams: dict[IO[bytes], tuple[list[str], TextCallback | None, codecs.IncrementalDecoder]] = {
        process.stdout: ([], on_stdout, codecs.getincrementaldecoder("utf-8")(errors="replace")),
        process.stderr: ([], on_stderr, codecs.getincrementaldecoder("utf-8")(errors="replace")),
    }
    deadline_passed = False
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            wait = None
            if deadline is not None and not deadline_passed:
                wait = max(0.0, deadline - clock())
            events = selector.select(wait)
            if not events and deadline is not None and not deadline_passed and clock() >= deadline:
                deadline_passed = True
                on_deadline()
                continue
            for key, _ in events:
                pipe: IO[bytes] = key.fileobj  # type: ignore[assignment]
                parts, callback, decoder = streams[pipe]
                try:
                    data = os.read(key.fd, READ_SIZE)
                except BlockingIOError:
                    continue
                final = not data
                text = decoder.decode(data, final=final)
                if text:
                    parts.append(text)
                    if callback is not None:
                        callback(text)
                if final:
                    selector.unregister(pipe)
                    pipe.close()
    return "".join(streams[process.stdout][0]), "".join(streams[process.stderr][0])


def _fill_inputs(steps: list[list[str]], job: WorkerJob, storage_for: StorageFor) -> tuple[list[list[str]], list[str]]:
    """Every step with its ``{input.NAME}`` filled (each input located once for the whole attempt), and
    what was handed out for them (kept out of the attempt's output)."""
    flat, handed_out = fill_inputs([argument for argv in steps for argument in argv], job.meta.get("inputs"),
                                   expires_in=url_lifetime(job.timeout), storage_for=storage_for)
    arguments = iter(flat)
    return [[next(arguments) for _ in argv] for argv in steps], handed_out
