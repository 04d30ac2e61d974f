"""What a user installs: the wheel built from this checkout (once a session) and fresh virtualenvs holding it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stderr}"


@pytest.fixture(scope="session")
def framefarm_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from this checkout (hatchling, fetched into an isolated build env)."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(CHECKOUT)])
    wheel, = dist.glob("framefarm-*.whl")
    return wheel


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``fresh_venv(*requirements)``: the bin/ of a new venv holding what ``pip install *requirements`` installs.

    pip installs from outside the new venv (``--python``): the venv itself needs no pip, and no .pyc is compiled
    ahead of use."""

    def create(*requirements: str) -> Path:
        root = tmp_path_factory.mktemp("venv")
        run([sys.executable, "-m", "venv", "--without-pip", str(root)])
        run([sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "-q", "--no-compile",
             *requirements])
        return root / "bin"

    return create
