from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    """The default app, synthesized once: (stack, template, cloud assembly directory)."""
    from aws_cdk.assertions import Template
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(outdir=str(outdir))
    app.synth()
    return stack, Template.from_stack(stack), outdir
