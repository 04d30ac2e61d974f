"""LostEvents: the orchestrator's on-failure destination, an SQS queue its sweep reads.

Lambda retries a failed asynchronous call twice, then gives the event up. With this destination it
puts an invocation record (the event, why it was given up, the last error) in the queue instead,
and the orchestrator's scheduled sweep hands those jobs back (``framefarm.aws.lost_events``): a
job whose first event was lost is never left pending for good.

The queue is encrypted (SQS's KMS key), refuses plain HTTP, and keeps a record 14 days (SQS's
longest), so a record outlasts two weeks of sweeps that cannot run; like the table, it outlives the stack.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from framefarm.config import ENV_LOST_EVENTS_QUEUE

RETENTION = Duration.days(14)
ASYNC_RETRIES = 2  # Lambda's default, said here: the destination gets what fails all three attempts


class LostEvents(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, orchestrator: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(self, "Queue", encryption=sqs.QueueEncryption.KMS_MANAGED, enforce_ssl=True,
                               retention_period=RETENTION, removal_policy=RemovalPolicy.RETAIN)
        Validations.of(self.queue).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-SQS3",
            reason="this queue is itself where failed events are kept (the orchestrator's on-failure "
                   "destination); the sweep deletes a record only after acting on it"))
        orchestrator.configure_async_invoke(on_failure=destinations.SqsDestination(self.queue),
                                            retry_attempts=ASYNC_RETRIES)
        self.queue.grant_consume_messages(orchestrator)
        orchestrator.add_environment(ENV_LOST_EVENTS_QUEUE, self.queue.queue_url)
