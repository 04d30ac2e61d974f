"""The CDK app: `cdk synth` / `cdk deploy` run this (see cdk.json).

Context knobs (cdk deploy -c name=value): region, workerMemory, workerArchitecture (x86_64|arm64),
workerTimeout (s), maxConcurrency, chunkExpiryDays, logRetentionDays, stackName, eventBus (where job
events go; default: the account's default bus).
cdk-nag's AwsSolutions checks run on every synth.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aws_cdk import App, Environment, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.settings import InfraSettings  # noqa: E402
from infra.stacks.framefarm_stack import FramefarmStack  # noqa: E402


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> tuple[App, FramefarmStack]:
    app = App(context=context, outdir=outdir)
    settings = InfraSettings.from_context(app.node.try_get_context)
    env = Environment(region=settings.region) if settings.region else None
    stack = FramefarmStack(app, app.node.try_get_context("stackName") or "Framefarm", settings=settings, env=env)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
