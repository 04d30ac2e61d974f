"""The Cloud Run deployment files: the settings the worker relies on."""

from __future__ import annotations

from pathlib import Path

import yaml

CLOUDRUN = Path(__file__).resolve().parents[2] / "infra" / "cloudrun"


def test_service_requires_auth_runs_one_chunk_at_a_time_and_bounds_resources():
    service = yaml.safe_load((CLOUDRUN / "service.yaml").read_text())
    assert (service["apiVersion"], service["kind"]) == ("serving.knative.dev/v1", "Service")
    assert service["metadata"]["annotations"]["run.googleapis.com/invoker-iam-disabled"] == "false"
    template = service["spec"]["template"]
    assert template["spec"]["containerConcurrency"] == 1
    assert 0 < template["spec"]["timeoutSeconds"] <= 3600
    assert template["metadata"]["annotations"]["run.googleapis.com/cpu-throttling"] == "true"
    container = template["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert container["ports"][0]["containerPort"] == 8080


def test_image_runs_the_worker_server_as_a_non_root_user_on_port_8080():
    dockerfile = (CLOUDRUN / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "framefarm.worker.cloud_run_server"]' in dockerfile
    assert "USER framefarm" in dockerfile and "ENV PORT=8080" in dockerfile
