"""checkov's findings acknowledged in code: each one on its resource, with the reason it stands.

checkov reads ``Metadata.checkov.skip`` on a CloudFormation resource; ``acknowledge`` adds entries
there, beside the cdk-nag acknowledgements, so a reason lives next to what it excuses and a finding
nobody explained fails ``make test`` (tests/infra/test_checkov.py).
"""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnResource
from constructs import IConstruct


def acknowledge(construct: IConstruct, findings: dict[str, str]) -> None:
    """Mark each checkov check id in ``findings`` as acknowledged on ``construct``'s CloudFormation
    resource (its ``default_child``, or itself), with its reason."""
    resource = cast(CfnResource, construct.node.default_child or construct)
    skips = list((resource.get_metadata("checkov") or {}).get("skip", []))
    skips += [{"id": check, "comment": reason} for check, reason in findings.items()]
    resource.add_metadata("checkov", {"skip": skips})
