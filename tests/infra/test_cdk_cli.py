"""`cdk synth` with the pinned CLI (aws-cdk@2 from npm, installed by `make test`), fully offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / ".cdk-cli" / "node_modules" / ".bin" / "cdk"


@pytest.mark.slow
def test_cdk_synth_succeeds_offline_and_only_stages_the_image(tmp_path):
    if not CDK.exists():
        pytest.fail(f"{CDK} is missing: `make test` installs the pinned CDK CLI (npm install aws-cdk@2)")
    out = tmp_path / "cdk.out"
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",  # cdk.json runs `python3 infra/app.py`
        "CDK_HOME": str(ROOT / ".cdk-home"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        # Any network attempt goes to a closed local port and fails: synth must not need one.
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run([str(CDK), "synth", "--quiet", "--no-notices", "--output", str(out)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((out / "Framefarm.template.json").read_text())
    assert sum(r["Type"] == "AWS::Lambda::Function" for r in template["Resources"].values()) == 3
    # the container image is staged (its build context copied) for `cdk deploy` to build, not built
    assets = json.loads((out / "Framefarm.assets.json").read_text())
    images = assets["dockerImages"]
    assert len(images) == 1
    source = next(iter(images.values()))["source"]
    staged = out / source["directory"]
    assert source["dockerFile"] == "infra/docker/Dockerfile" and (staged / "infra/docker/Dockerfile").is_file()
    assert (staged / "src" / "framefarm" / "worker" / "runtime.py").is_file()
    assert not (staged / ".venv").exists() and not (staged / "tests").exists()
    assert shutil.which("docker") is None or "docker build" not in result.stderr
