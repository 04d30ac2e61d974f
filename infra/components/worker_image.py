"""WorkerImage: the image render-chunk runs — framefarm's own, yours built on top of it, or yours as it is.

- default: ``infra/docker/Dockerfile`` (the framefarm worker image: the handlers and ffmpeg), the
  image submit and orchestrate run too;
- ``-c workerDockerfile=PATH``: a Dockerfile whose first instruction is ``FROM framefarm-worker``
  (``WORKER_STAGE``), adding what your commands need (Blender, fonts, a renderer). It is built as the
  last stage of one Dockerfile whose first stage is the framefarm worker image, so `cdk deploy` builds
  both and nothing needs publishing first. COPY paths are relative to the repository root, as in the
  framefarm image; the build context is the repository as infra/docker/Dockerfile sees it (``.dockerignore``)
  plus the directory holding your Dockerfile, which must be inside the repository;
- ``-c workerImage=URI``: an image you built and pushed to ECR (``ACCOUNT.dkr.ecr.REGION.amazonaws.com/
  REPO:TAG`` or ``...@sha256:...``), used as it is. It must keep framefarm's handler
  (``lambda_handlers.render_chunk.handler``) importable.

Submit and orchestrate always run the framefarm image: only chunk commands need the extra tools.
The same staging serves the Cloud Run worker (``infra/cloudrun/image.py``): there the base is
``infra/cloudrun/Dockerfile``. A wrong FROM line, a missing file, a URI that is not ECR's, or both
knobs at once fail at synth with one line saying what to do.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from aws_cdk import CopyOptions, FileSystem, IgnoreMode, Stage
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
WORKER_DOCKERFILE = "infra/docker/Dockerfile"
WORKER_STAGE = "framefarm-worker"  # what a custom Dockerfile names in its FROM line
STAGED_DOCKERFILE = "Dockerfile"  # the combined file, at the top of the staged build context
STAGED_MARK = ".framefarm-build-context"  # says a directory is a staged context, which staging may replace
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                       r"(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[\w][\w.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))$")


class WorkerImage(Construct):
    """Reads ``workerDockerfile`` / ``workerImage`` from context; ``code`` gives each function its image."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        dockerfile, image = self.node.try_get_context("workerDockerfile"), self.node.try_get_context("workerImage")
        if dockerfile and image:
            raise ValueError("workerDockerfile and workerImage: give one (a Dockerfile to build, or an image built)")
        self._context: Path | None = None
        self._repository: ecr.IRepository | None = None
        self._reference = ""
        if dockerfile:
            into = Path(Stage.of(self).outdir) / "framefarm-worker-image"  # type: ignore[union-attr]
            try:
                self._context = stage_build_context(Path(dockerfile), base=ROOT / WORKER_DOCKERFILE, into=into)
            except ValueError as exc:
                raise ValueError(f"workerDockerfile: {exc}") from None
        elif image:
            match = ECR_IMAGE.match(str(image))
            if match is None:
                raise ValueError(f"workerImage: {image!r} is not an ECR image URI; Lambda runs images from ECR: "
                                 "ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG (or @sha256:DIGEST)")
            self._repository = ecr.Repository.from_repository_attributes(
                self, "Repository", repository_name=match["repository"],
                repository_arn=f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{match['repository']}")
            self._reference = match["tag"] or match["digest"]

    def code(self, kind: str, handler: str, platform: ecr_assets.Platform) -> lambda_.DockerImageCode:
        """The image for function ``kind`` running ``handler``: a custom one for render-chunk only."""
        if kind == "render-chunk" and self._repository is not None:
            return lambda_.DockerImageCode.from_ecr(self._repository, tag_or_digest=self._reference, cmd=[handler])
        if kind == "render-chunk" and self._context is not None:
            return lambda_.DockerImageCode.from_image_asset(str(self._context), file=STAGED_DOCKERFILE,
                                                            cmd=[handler], platform=platform)
        return lambda_.DockerImageCode.from_image_asset(str(ROOT), file=WORKER_DOCKERFILE, cmd=[handler],
                                                        platform=platform)


def stage_build_context(dockerfile: Path, *, base: Path, into: Path, root: Path = ROOT) -> Path:
    """Write into ``into`` the build context of ``dockerfile`` on top of ``base``: the repository as
    ``.dockerignore`` lets it in, the directory holding ``dockerfile``, and one ``Dockerfile`` whose first
    stage is ``base`` (named ``WORKER_STAGE``) and whose last is ``dockerfile``. Returns ``into``."""
    dockerfile, custom = _read_custom(dockerfile, root)
    if into.exists() and any(into.iterdir()):
        if not (into / STAGED_MARK).is_file():  # never clear a directory this did not write
            raise ValueError(f"{into} is not empty and not a build context written here; give a new directory")
        shutil.rmtree(into)
    ignore = (root / ".dockerignore").read_text(encoding="utf-8").splitlines()
    FileSystem.copy_directory(str(root), str(into), CopyOptions(exclude=ignore, ignore_mode=IgnoreMode.DOCKER))
    own = dockerfile.parent.relative_to(root.resolve())
    if own != Path("."):
        shutil.copytree(root / own, into / own, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (into / STAGED_DOCKERFILE).write_text(combined_dockerfile(base.read_text(encoding="utf-8"), custom,
                                                              source=str(dockerfile)), encoding="utf-8")
    (into / STAGED_MARK).write_text("written by infra/components/worker_image.py; safe to remove\n")
    return into


def combined_dockerfile(base: str, custom: str, *, source: str) -> str:
    """``base`` as the stage ``WORKER_STAGE``, then ``custom``, whose first instruction must be FROM it."""
    image = _from_image(custom)
    if image != WORKER_STAGE:
        raise ValueError(f"{source} starts FROM {image or 'nothing'}; start it with "
                         f"FROM {WORKER_STAGE} (the framefarm worker image, with its handlers and ffmpeg) and add "
                         "your tools on top")
    lines = base.splitlines()
    froms = [index for index, line in enumerate(lines) if line.split()[:1] == ["FROM"]]
    if len(froms) != 1 or " AS " in lines[froms[0]].upper():
        raise ValueError("the framefarm worker Dockerfile must have one unnamed FROM line to build on")
    lines[froms[0]] += f" AS {WORKER_STAGE}"
    return "\n".join([*lines, "", f"# ---- {source}, on top of the framefarm worker image ----", custom.rstrip(), ""])


def _read_custom(dockerfile: Path, root: Path) -> tuple[Path, str]:
    """The Dockerfile's resolved path (relative ones are from the repository root) and its text."""
    path = (dockerfile if dockerfile.is_absolute() else root / dockerfile).resolve()
    if not path.is_file():
        raise ValueError(f"no file at {path}; give the path of a Dockerfile in this repository")
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"{path} is outside the repository {root}; put it (and what it copies) "
                         "inside, since the build context is the repository")
    return path, path.read_text(encoding="utf-8")


def _from_image(dockerfile: str) -> str | None:
    """The image the first FROM names, after comments and ARGs (the only things allowed before it)."""
    for line in dockerfile.splitlines():
        words = line.split()
        if not words or words[0].startswith("#") or words[0].upper() == "ARG":
            continue
        if words[0].upper() != "FROM":
            return None
        names = [word for word in words[1:] if not word.startswith("--")]
        return names[0] if names else None
    return None
