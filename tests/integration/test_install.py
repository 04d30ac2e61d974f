"""What a user installs: the package alone renders locally, and `make demo` installs nothing more."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from framefarm.stitch.probe import packets

CHECKOUT = Path(__file__).resolve().parents[2]
CLOUD_LIBRARIES = ("boto3", "botocore", "moto", "google", "flask", "awslambdaric")
# What the package alone must not load: a local render needs none of the cloud libraries.
LOADED = f"import sys, framefarm; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({CLOUD_LIBRARIES})))"
INSTALLED = ("import importlib.util; "
             f"print(sorted(name for name in {CLOUD_LIBRARIES} if importlib.util.find_spec(name)))")


def user_environment(home: Path) -> dict[str, str]:
    """This environment without what points into the checkout or at a virtualenv."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "FRAMEFARM_HOME": str(home)}


def python_says(bin_dir: Path, code: str) -> str:
    done = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                          env=user_environment(bin_dir.parent / "home"))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def tiny_job(directory: Path) -> Path:
    """examples/testsrc.yaml at 64x48, 1 s in 2 chunks with its tone: the demo's own commands, quickly."""
    job = yaml.safe_load((CHECKOUT / "examples" / "testsrc.yaml").read_text())
    job.update({"width": 64, "height": 48, "total_frames": 30, "frames_per_chunk": 15})
    (directory / "examples").mkdir(parents=True)
    path = directory / "examples" / "testsrc.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


@pytest.mark.slow
def test_the_package_alone_renders_locally_without_any_cloud_library(framefarm_wheel, fresh_venv, tmp_path):
    # GIVEN the wheel installed with no extras, and a tiny job in a directory outside the checkout
    core = fresh_venv(str(framefarm_wheel))
    job = tiny_job(tmp_path)
    # WHEN `framefarm render` runs it
    done = subprocess.run([str(core / "framefarm"), "render", str(job)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=user_environment(tmp_path / "home"))
    # THEN the video has every frame, no cloud library is installed, and importing framefarm loads none
    assert done.returncode == 0, done.stderr
    assert len(packets(tmp_path / "out" / "testsrc.mp4")) == 30
    assert python_says(core, INSTALLED) == "[]"
    assert python_says(core, LOADED) == "[]"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_demo_installs_the_package_alone_and_renders(tmp_path):
    # GIVEN a fresh copy of the checkout with no .venv, its example shortened to a tiny job
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, clone / name)
    for name in ("src", "lambda_handlers"):
        shutil.copytree(CHECKOUT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    tiny_job(clone)
    # WHEN `make demo` runs there
    done = subprocess.run(["make", "demo"], cwd=clone, capture_output=True, text=True, timeout=580,
                          env=user_environment(tmp_path / "home"))
    # THEN it rendered the example, into a .venv holding the package and none of the extras
    assert done.returncode == 0, done.stderr
    assert len(packets(clone / "out" / "testsrc.mp4")) == 30
    assert python_says(clone / ".venv" / "bin", INSTALLED) == "[]"
    # AND `make test` would install the rest on top of it, not the package again
    planned = subprocess.run(["make", "-n", "test"], cwd=clone, capture_output=True, text=True, timeout=60,
                             check=True).stdout.splitlines()
    installs = [line for line in planned if " install " in line and "pip" in line]
    assert installs == [".venv/bin/pip install --quiet -e '.[dev,aws,gcp,infra]'"], planned
