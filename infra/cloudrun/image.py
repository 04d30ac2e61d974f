"""The Cloud Run worker with your own tools: a build context for a Dockerfile on top of the framefarm
Cloud Run image, or the service with an image you built.

    python -m infra.cloudrun.image --dockerfile examples/blender/cloudrun.Dockerfile --out build/blender-worker
    gcloud builds submit build/blender-worker --tag REGION-docker.pkg.dev/PROJECT/framefarm/blender-worker
    python -m infra.cloudrun.image --image REGION-docker.pkg.dev/PROJECT/framefarm/blender-worker > service.yaml
    gcloud run services replace service.yaml --region REGION --project PROJECT

The Dockerfile starts ``FROM framefarm-worker``, as for Lambda's ``-c workerDockerfile`` (the same
staging: ``infra/components/worker_image.py``), here on ``infra/cloudrun/Dockerfile`` (Debian).
Needs the ``infra`` extra (aws-cdk-lib copies the context as ``.dockerignore`` says).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.components.worker_image import stage_build_context  # noqa: E402

BASE = ROOT / "infra" / "cloudrun" / "Dockerfile"
SERVICE = ROOT / "infra" / "cloudrun" / "service.yaml"
IMAGE_LINE = re.compile(r"^(?P<indent>\s*- image:\s*)\S+\s*$", re.MULTILINE)


def service_with_image(image: str, service: str) -> str:
    """``service`` (service.yaml's text, comments kept) running ``image``."""
    if not image or any(ch.isspace() for ch in image):
        raise ValueError(f"--image: {image!r} is not an image reference; give REGISTRY/PATH[:TAG]")
    replaced, count = IMAGE_LINE.subn(lambda match: match["indent"] + image, service)
    if count != 1:
        raise ValueError(f"service.yaml: expected one container image line, found {count}")
    return replaced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cloudrun.image", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--dockerfile", type=Path, help="a Dockerfile starting FROM framefarm-worker")
    which.add_argument("--image", help="an image you built: print service.yaml running it")
    parser.add_argument("--out", type=Path, help="where to write the build context (with --dockerfile)")
    args = parser.parse_args(argv)
    try:
        if args.image is not None:
            sys.stdout.write(service_with_image(args.image, SERVICE.read_text(encoding="utf-8")))
            return 0
        if args.out is None:
            raise ValueError("--out: say where to write the build context")
        stage_build_context(args.dockerfile, base=BASE, into=args.out.resolve())
    except ValueError as exc:  # stage_build_context's are about the Dockerfile or --out, and say which
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stderr.write(f"build context in {args.out}: gcloud builds submit {args.out} --tag IMAGE\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
