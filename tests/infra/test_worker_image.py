"""render-chunk's image: -c workerDockerfile (built on the framefarm worker image) or -c workerImage (ECR),
checked at synth; the same staging for the Cloud Run worker (infra/cloudrun/image.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

ROOT = Path(__file__).resolve().parents[2]
BLENDER = "examples/blender/Dockerfile"
ECR_URI = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/framefarm/blender-worker:3.6"


def synth(tmp_path: Path, **context: str) -> tuple[Template, dict]:
    from infra.app import build_app

    app, stack = build_app(context=context, outdir=str(tmp_path / "cdk.out"))
    app.synth()
    template = Template.from_stack(stack)
    functions = {name.rsplit("-", 1)[-1].replace("chunk", "render-chunk"): props["Properties"]
                 for props in template.find_resources("AWS::Lambda::Function").values()
                 for name in [props["Properties"]["FunctionName"]]}
    return template, functions


def nag(tmp_path: Path) -> dict:
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    return plugin


def test_a_dockerfile_on_the_worker_image_builds_render_chunk_alone(tmp_path):
    # GIVEN the Blender example's Dockerfile, FROM framefarm-worker
    # WHEN the stack is synthesized with it
    _, functions = synth(tmp_path, workerDockerfile=BLENDER)
    # THEN render-chunk runs an image of its own; submit and orchestrate keep the framefarm image
    worker, orchestrate, submit = functions["render-chunk"], functions["orchestrate"], functions["submit"]
    assert json.dumps(worker["Code"]) != json.dumps(orchestrate["Code"]) == json.dumps(submit["Code"])
    assert worker["ImageConfig"]["Command"] == ["lambda_handlers.render_chunk.handler"]
    # AND its asset is one Dockerfile: the worker image as stage framefarm-worker, then the example's
    assets = json.loads(next((tmp_path / "cdk.out").glob("*.assets.json")).read_text())["dockerImages"]
    (custom,) = [a["source"] for a in assets.values()
                 if (tmp_path / "cdk.out" / a["source"]["directory"] / "examples").is_dir()]
    assert len(assets) == 2  # the framefarm image (submit, orchestrate) and render-chunk's
    staged = tmp_path / "cdk.out" / custom["directory"]
    dockerfile = (staged / custom["dockerFile"]).read_text()
    assert dockerfile.startswith((ROOT / "infra/docker/Dockerfile").read_text().split("FROM ")[0])
    assert "FROM public.ecr.aws/lambda/python:3.12 AS framefarm-worker\n" in dockerfile
    assert dockerfile.rstrip().endswith((ROOT / BLENDER).read_text().rstrip())
    assert dockerfile.index("AS framefarm-worker") < dockerfile.index("\nFROM framefarm-worker")
    # AND the build context holds what both stages copy, and nothing the .dockerignore leaves out
    assert (staged / "src/framefarm/__init__.py").is_file() and (staged / "lambda_handlers").is_dir()
    assert (staged / "examples/blender/make_scene.py").is_file()
    assert not (staged / "tests").exists() and not (staged / ".git").exists()
    # AND cdk-nag still finds nothing unacknowledged
    assert nag(tmp_path)["violations"] == []


def test_an_ecr_image_is_used_as_it_is(tmp_path):
    # GIVEN an image already in ECR
    # WHEN the stack is synthesized with it
    template, functions = synth(tmp_path, workerImage=ECR_URI)
    # THEN render-chunk runs that image, by its tag; the others keep the framefarm image
    uri = json.dumps(functions["render-chunk"]["Code"]["ImageUri"])
    assert "123456789012.dkr.ecr.eu-west-1" in uri and "framefarm/blender-worker:3.6" in uri
    assert "blender-worker" not in json.dumps(functions["orchestrate"]["Code"])
    # AND pulling it needs no statement on any role ("*" or not): Lambda pulls with the repository's policy
    statements = [statement for policy in template.find_resources("AWS::IAM::Policy").values()
                  for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert not [s for s in statements if "ecr:" in json.dumps(s["Action"])]
    assert nag(tmp_path)["violations"] == []


@pytest.mark.parametrize(("context", "message"), [
    ({"workerDockerfile": "examples/blender/nope.Dockerfile"},
     r"^workerDockerfile: no file at .*examples/blender/nope.Dockerfile; give the path of a Dockerfile"),
    ({"workerDockerfile": "infra/docker/Dockerfile"},
     r"^workerDockerfile: .*infra/docker/Dockerfile starts FROM public.ecr.aws/lambda/python:3.12; start it with "
     r"FROM framefarm-worker \(the framefarm worker image"),
    ({"workerDockerfile": BLENDER, "workerImage": ECR_URI}, r"^workerDockerfile and workerImage: give one"),
    ({"workerImage": "docker.io/library/blender:latest"}, r"^workerImage: 'docker.io/library/blender:latest' is not an ECR"),
])
def test_a_wrong_image_knob_fails_at_synth_in_one_line(tmp_path, context, message):
    from infra.app import build_app

    with pytest.raises(ValueError, match=message):
        build_app(context=context, outdir=str(tmp_path))


def test_a_dockerfile_outside_the_repository_is_refused(tmp_path):
    # GIVEN a Dockerfile FROM the worker image, but outside the repository (the build context)
    outside = tmp_path / "Dockerfile"
    outside.write_text("FROM framefarm-worker\nRUN true\n")
    from infra.app import build_app

    # WHEN / THEN synth refuses it, saying why
    with pytest.raises(ValueError, match=r"^workerDockerfile: .* is outside the repository"):
        build_app(context={"workerDockerfile": str(outside)}, outdir=str(tmp_path / "out"))


def test_the_first_from_may_follow_comments_and_args_only():
    from infra.components.worker_image import combined_dockerfile

    base = "FROM python:3.12-slim\nRUN true\n"
    ok = combined_dockerfile(base, "# syntax=docker/dockerfile:1\nARG X=1\nFROM --platform=linux/amd64 framefarm-worker\n",
                             source="a")
    assert ok.startswith("FROM python:3.12-slim AS framefarm-worker\n")
    with pytest.raises(ValueError, match="starts FROM nothing"):
        combined_dockerfile(base, "RUN true\nFROM framefarm-worker\n", source="b")


def test_cloud_run_build_context_and_service_with_your_image(tmp_path):
    from infra.cloudrun.image import main, service_with_image

    # GIVEN the Blender example's Cloud Run Dockerfile
    out = tmp_path / "context"
    # WHEN its build context is staged (twice: a rerun replaces its own output)
    assert main(["--dockerfile", "examples/blender/cloudrun.Dockerfile", "--out", str(out)]) == 0
    assert main(["--dockerfile", "examples/blender/cloudrun.Dockerfile", "--out", str(out)]) == 0
    # THEN it is the Cloud Run worker image as stage framefarm-worker, then the example, at the top
    dockerfile = (out / "Dockerfile").read_text()
    assert "FROM python:3.12-slim AS framefarm-worker\n" in dockerfile and "apt-get install" in dockerfile
    assert (out / "src/framefarm/worker/cloud_run_server.py").is_file()
    # AND a directory it did not write is never cleared
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    assert main(["--dockerfile", "examples/blender/cloudrun.Dockerfile", "--out", str(mine)]) == 2
    assert (mine / "keep.txt").read_text() == "x"
    # AND service.yaml can run an image you built, its comments kept
    image = "europe-docker.pkg.dev/p/framefarm/blender-worker:1"
    service = service_with_image(image, (ROOT / "infra/cloudrun/service.yaml").read_text())
    assert f"- image: {image}\n" in service and "# Cloud Run service" in service
