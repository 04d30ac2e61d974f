"""Notifications: what lets the orchestrator tell the operator's systems that a job ended.

- a Secrets Manager secret that signs webhook deliveries, generated at deploy time, readable by the
  orchestrator's role only; the function's environment holds its ARN, never its value (read at run
  time by ``framefarm.webhooks.secret``). Read it to configure receivers:
  ``aws secretsmanager get-secret-value --secret-id <WebhookSecretArn>``;
- ``events:PutEvents`` on one event bus (``default``, or ``-c eventBus=NAME``), named to the
  orchestrator in ``FRAMEFARM_EVENT_BUS`` (``framefarm.events``).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from framefarm.config import ENV_EVENT_BUS, ENV_WEBHOOK_SECRET_ARN
from infra.components.checkov import acknowledge


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, orchestrator: lambda_.Function, role: iam.IRole,
                 event_bus: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.secret = secretsmanager.Secret(
            self, "WebhookSecret", description="framefarm: signs webhook deliveries (Framefarm-Signature)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48,
                                                                        exclude_punctuation=True))
        self.secret.grant_read(role)
        acknowledge(self.secret, {"CKV_AWS_149": "Secrets Manager's AWS-managed key encrypts it; a key of our own "
                                                 "would add a key policy to keep in step and protect nothing more: "
                                                 "only the orchestrator's role may read the secret"})
        self.bus_arn = f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/{event_bus}"
        role.add_to_principal_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[self.bus_arn]))
        orchestrator.add_environment(ENV_EVENT_BUS, event_bus)
        orchestrator.add_environment(ENV_WEBHOOK_SECRET_ARN, self.secret.secret_arn)
        Validations.of(self.secret).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-SMG4",
            reason="a shared webhook signing secret: rotating it means updating every receiver at once, so it "
                   "is rotated by hand (put a new value; receivers accept both while they switch)"))
