"""The directory a devcloud function instance runs from, laid out as ``infra/docker/Dockerfile`` lays
out the image: the framefarm wheel installed with ``pip install --target`` plus ``lambda_handlers/``.

    TaskRoot.current()   the fast mode: this environment, PYTHONPATH = the checkout's src/ and root
    build_task_root()    the image's layout, built once per content hash of what goes into it and
                         cached (``FRAMEFARM_DEVCLOUD_CACHE``, else ~/.cache/framefarm/devcloud); its
                         instances run ``python -S``: only the standard library and the task root,
                         where awslambdaric is installed too (the base image ships it in its Python)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from framefarm.config import ENV_DEVCLOUD_CACHE

ROOT = Path(__file__).resolve().parents[3]  # the checkout: lambda_handlers/ lives here
RUNTIME_CLIENT = "awslambdaric>=3"  # AWS's runtime interface client, as the Python base image runs it
_SOURCES = ("pyproject.toml", "README.md", "src/framefarm", "lambda_handlers")
_SKIPPED = ("__pycache__", ".pyc")
BUILD_TIMEOUT = 600.0  # seconds for each pip step


@dataclass(frozen=True)
class TaskRoot:
    """Where an instance runs (``LAMBDA_TASK_ROOT``, its working directory) and what it imports."""

    directory: Path
    python_path: tuple[str, ...]
    isolated: bool  # ``python -S``: no site-packages, only the task root (the image's layout)

    @classmethod
    def current(cls) -> TaskRoot:
        """The fast mode: the current environment. In a checkout, its ``src/`` and root go first on the
        path; from an install, the handlers are where the wheel put them (site-packages)."""
        if (ROOT / "lambda_handlers").is_dir() and (ROOT / "src" / "framefarm").is_dir():
            return cls(ROOT, (str(ROOT / "src"), str(ROOT)), isolated=False)
        found = importlib.util.find_spec("lambda_handlers")
        if found is None or not found.submodule_search_locations:
            raise RuntimeError("devcloud finds no lambda_handlers: install framefarm[aws,devcloud], "
                               "or run it from a checkout")
        return cls(Path(next(iter(found.submodule_search_locations))).parent, (), isolated=False)

    def command(self, handler: str) -> list[str]:
        """How an instance starts: the base image's entry point with the function's handler string."""
        return [sys.executable, *(["-S"] if self.isolated else []), "-m", "awslambdaric", handler]


def _source_files(source: Path) -> Iterator[Path]:
    for name in _SOURCES:
        path = source / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for candidate in candidates:
            if candidate.is_file() and not any(part.endswith(_SKIPPED) for part in candidate.parts):
                yield candidate


def source_digest(source: Path = ROOT) -> str:
    """A hash of everything that goes into the task root, and of the interpreter it is built for."""
    digest = hashlib.sha256(f"{sys.version}\n{RUNTIME_CLIENT}\n".encode())
    for path in _source_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def default_cache_dir() -> Path:
    explicit = os.environ.get(ENV_DEVCLOUD_CACHE)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "framefarm" / "devcloud"


def build_task_root(source: Path = ROOT, cache_dir: Path | None = None) -> TaskRoot:
    """The image's task root for ``source``, built (wheel, ``pip install --target``, handlers) unless the
    cache already holds one for the same content."""
    cache = cache_dir or default_cache_dir()
    target = cache / f"task-root-{source_digest(source)}"
    if not target.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
        try:
            _build(source, staging)
            try:
                (staging / "root").rename(target)  # atomic: a concurrent build of the same content wins alike
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return TaskRoot(target, (str(target),), isolated=True)


def _build(source: Path, staging: Path) -> None:
    wheels, root = staging / "wheels", staging / "root"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)])
    wheel = next(wheels.glob("framefarm-*.whl"))
    _run([*pip, "install", "--no-compile", "--target", str(root), f"{wheel}[aws]", RUNTIME_CLIENT])
    if not (root / "lambda_handlers").is_dir():  # the wheel ships them, as the image's task root has them
        raise RuntimeError(f"building the devcloud task root failed: {wheel.name} carries no lambda_handlers/")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"building the devcloud task root failed: {' '.join(command[3:6])}...: {tail[0]}")
