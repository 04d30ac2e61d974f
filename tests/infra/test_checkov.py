"""checkov (pinned, in its own virtualenv: `make test` installs it) on the synthesized template: no finding
that is not acknowledged in code with a reason (``infra/components/checkov.py``), fully offline."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".checkov" / "bin" / "checkov"
FUNCTIONS = ("Functionssubmit", "Functionsorchestrate", "Functionsrenderchunk")
# Every acknowledged finding: (check, resource's logical id without its hash). A new one is reviewed here.
ACKNOWLEDGED = {
    ("CKV_AWS_18", "ArtifactsAccessLogs"), ("CKV_AWS_21", "ArtifactsAccessLogs"),  # the log bucket's own logs
    ("CKV_AWS_21", "ArtifactsBucket"),  # versioning of rewritten, expiring chunks
    ("CKV_AWS_119", "JobsTable"),  # DynamoDB's AWS-managed key
    ("CKV_AWS_149", "NotificationsWebhookSecret"),  # Secrets Manager's AWS-managed key
    *(("CKV_AWS_158", f"{name}logs") for name in FUNCTIONS),  # log groups: CloudWatch's own encryption
    *(("CKV_AWS_117", name) for name in FUNCTIONS),  # no VPC
    *(("CKV_AWS_173", name) for name in FUNCTIONS),  # environment of names, no secrets
    *(("CKV_AWS_116", name) for name in FUNCTIONS),  # synchronous only; the orchestrator: on-failure destination
    ("CKV_AWS_115", "Functionssubmit"), ("CKV_AWS_115", "Functionsorchestrate"),  # unreserved
}


def run_checkov(directory: Path) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: `make test` installs the pinned checkov into .checkov/")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE",  # no guideline download; any network attempt fails fast
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    result = subprocess.run([str(CHECKOV), "-d", str(directory), "--framework", "cloudformation", "--output", "json",
                             "--skip-download"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: findings, reported below
    return json.loads(result.stdout)


def named(check: dict) -> tuple[str, str]:
    """(check id, the resource's logical id without CDK's 8-character hash)."""
    return check["check_id"], check["resource"].split(".", 1)[1][:-8]


@pytest.mark.slow
def test_checkov_finds_nothing_unacknowledged_and_catches_what_is_not(synthesized, tmp_path):
    # GIVEN the synthesized template, and a copy where render-chunk lost its reserved concurrency and
    # the artifact bucket its acknowledgement
    _, _, outdir = synthesized
    template = json.loads((outdir / "Framefarm.template.json").read_text())
    (tmp_path / "Framefarm.template.json").write_text(json.dumps(template))
    broken = copy.deepcopy(template)
    for logical_id, resource in broken["Resources"].items():
        if logical_id.startswith("Functionsrenderchunk") and resource["Type"] == "AWS::Lambda::Function":
            del resource["Properties"]["ReservedConcurrentExecutions"]
        if logical_id.startswith("ArtifactsBucket") and resource["Type"] == "AWS::S3::Bucket":
            del resource["Metadata"]["checkov"]
    (tmp_path / "broken.template.json").write_text(json.dumps(broken))
    # WHEN checkov checks both
    report = run_checkov(tmp_path)
    assert report["summary"]["parsing_errors"] == 0
    failed = report["results"]["failed_checks"]
    skipped = report["results"]["skipped_checks"]
    # THEN the stack has no finding left, and every acknowledgement is the reviewed list, each with a reason
    assert [named(c) for c in failed if c["file_path"].endswith("/Framefarm.template.json")] == []
    ours = [c for c in skipped if c["file_path"].endswith("/Framefarm.template.json")]
    assert sorted(named(c) for c in ours) == sorted(ACKNOWLEDGED)
    assert all(len(c["check_result"]["suppress_comment"]) > 40 for c in ours)
    # render-chunk's reserved concurrency (maxConcurrency) is what passes CKV_AWS_115 for it
    passed = report["results"]["passed_checks"]
    assert ("CKV_AWS_115", "Functionsrenderchunk") in [named(c) for c in passed]
    # and a finding nobody acknowledged is caught: the copy fails exactly where it was broken
    assert sorted(named(c) for c in failed if c["file_path"].endswith("/broken.template.json")) == [
        ("CKV_AWS_115", "Functionsrenderchunk"), ("CKV_AWS_21", "ArtifactsBucket")]
