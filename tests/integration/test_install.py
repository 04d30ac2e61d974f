"""What a user installs: the package alone renders locally, `make demo` installs nothing more, and every command
line in the README's top section is run by a test."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from framefarm.stitch.probe import packets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on 3.10
    import tomli as tomllib

CHECKOUT = Path(__file__).resolve().parents[2]
CLOUD_LIBRARIES = ("boto3", "botocore", "moto", "google", "flask", "awslambdaric")
# What the package alone must not load: a local render needs none of the cloud libraries.
LOADED = f"import sys, framefarm; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({CLOUD_LIBRARIES})))"
INSTALLED = ("import importlib.util; "
             f"print(sorted(name for name in {CLOUD_LIBRARIES} if importlib.util.find_spec(name)))")


def top_section() -> str:
    return (CHECKOUT / "README.md").read_text().split("\n## ", 1)[0]


def shown_commands() -> list[str]:
    """Every command line in the top section's shell blocks, without its comment."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", top_section(), re.S | re.M)
    shell = [block for language, block in blocks if language in ("", "sh", "shell", "bash")]
    lines = (line.split("#", 1)[0].strip() for block in shell for line in block.splitlines())
    return [line for line in lines if line]


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


def test_every_command_in_the_readme_top_section_is_run_by_a_test():
    # GIVEN the commands each run by a test here, and `make test`, which .ci/run runs on every change
    run_by = {"make demo": test_make_demo_installs_the_package_alone_and_renders,
              "make test": test_ci_runs_make_test,
              'pip install "framefarm[aws]"': test_the_readme_install_line_installs_the_aws_extra}
    # WHEN the README's top section is read / THEN it shows those commands and no other
    assert shown_commands() == list(run_by)


def test_ci_runs_make_test():
    # GIVEN .ci/run, the CI entry point / THEN its one command is the README's `make test`, from a clean clone
    script = (CHECKOUT / ".ci" / "run").read_text().splitlines()
    assert script[-1] == "make test"


def test_the_readme_names_every_extra_and_the_prerequisites():
    # GIVEN the extras pyproject.toml offers
    extras = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # WHEN the README's top section is read
    section = top_section()
    # THEN it names each one, what it needs to run, and what "30 s" is
    assert [extra for extra in extras if f"`{extra}`" not in section] == []
    assert "Python 3.10+" in section and "Node" in section and "30 s of video" in section


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
def test_the_readme_install_line_installs_the_aws_extra(framefarm_wheel, fresh_venv):
    # GIVEN the README's install line, its requirement taken from the wheel built here instead of the index
    line, = (command for command in shown_commands() if command.startswith("pip install "))
    requirements = [f"{requirement} @ {framefarm_wheel.as_uri()}" for requirement in shlex.split(line)[2:]]
    # WHEN pip installs it into a fresh venv
    installed = fresh_venv(*requirements)
    # THEN boto3 came with it, devcloud's and the tests' libraries did not, and framefarm still loads no boto3
    assert python_says(installed, INSTALLED) == "['boto3', 'botocore']"
    assert python_says(installed, LOADED) == "[]"


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
    # WHEN `make demo` runs there, as the README says
    done = subprocess.run(["make", "demo"], cwd=clone, capture_output=True, text=True, timeout=580,
                          env=user_environment(tmp_path / "home"))
    # THEN it rendered the example, into a .venv holding the package and none of the extras
    assert done.returncode == 0, done.stderr
    assert len(packets(clone / "out" / "testsrc.mp4")) == 30
    assert python_says(clone / ".venv" / "bin", INSTALLED) == "[]"
    # AND `make test` would install the rest on top of it, not the package again
    planned = subprocess.run(["make", "-n", "test"], cwd=clone, capture_output=True, text=True, timeout=60,
                             check=True).stdout.splitlines()
    installs = [line for line in planned if " install " in line and line.startswith(".venv/bin/pip")]
    assert installs == [".venv/bin/pip install --quiet -e '.[dev,aws,gcp,devcloud,infra,monitor]'"], planned
