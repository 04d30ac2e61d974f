"""WorkerFunctions: submit, orchestrate and render-chunk, from one container image, least privilege.

One image (Dockerfile in infra/docker/, ffmpeg inside via imageio-ffmpeg) serves all three handlers;
`cdk deploy` builds it, `cdk synth` only stages it; render-chunk may run your own instead
(``worker_image.WorkerImage``: -c workerDockerfile / -c workerImage). Names are fixed so that each function's
environment and IAM policy can name the others (and the orchestrator itself) without a cycle.

Each function has its own role with inline statements only:
- render-chunk reads specs and asset bundles, writes chunk outputs (with their tag) and the full
  logs of the chunks it runs (its reply carries only tails: Lambda caps a reply at 6 MB);
- orchestrate invokes render-chunk and itself, reads and writes the job table, reads specs,
  writes full logs;
- submit writes the job table and spec keys (and can undo them) and invokes the orchestrator.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.aws_dynamodb import ITable
from constructs import Construct

from framefarm.aws.functions import FIXED_LIMITS, HANDLERS
from framefarm.config import (
    ENV_BUCKET,
    ENV_CONCURRENCY,
    ENV_MAX_CONCURRENCY,
    ENV_ORCHESTRATOR_FUNCTION,
    ENV_TABLE,
    ENV_WORKER_ARCHITECTURE,
    ENV_WORKER_FUNCTION,
    ENV_WORKER_TIMEOUT,
)
from framefarm.repositories.dynamodb import GSI_NAME
from framefarm.repositories.dynamodb.slots import SLOTS_PARTITION
from framefarm.storage.keys import (
    assets_key,
    attempts_prefix,
    cancel_key,
    chunks_prefix,
    inputs_prefix,
    job_prefix,
    logs_prefix,
    media_prefix,
    spec_key,
)
from infra.components.checkov import acknowledge
from infra.components.worker_image import WorkerImage
from infra.settings import InfraSettings

# The key layout's own functions with a wildcard job id, so the policies follow it (jobs/*/spec.json, ...).
SPEC_KEYS, ASSET_KEYS, CANCEL_KEYS = spec_key("*"), assets_key("*"), cancel_key("*")
CHUNK_KEYS, LOG_KEYS = chunks_prefix("*") + "*", logs_prefix("*") + "*"
INPUT_KEYS = inputs_prefix("*") + "*"  # a job's source media: the worker presigns them for its command
ATTEMPT_KEYS = attempts_prefix("*") + "*"  # an attempt a retry replaced, kept for the monitor (attempt_history)
MEDIA_KEYS = media_prefix("*") + "*"  # what each chunk video holds, stored by the worker beside it (stitch.records)
LISTED_KEYS = {"StringLike": {"s3:prefix": [job_prefix("*").rstrip("/")]}}  # ListBucket under jobs/* only


class WorkerFunctions(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: InfraSettings, bucket: s3.IBucket,
                 table: ITable) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.names = {kind: f"{stack.stack_name}-{kind}" for kind in HANDLERS}
        arm = settings.worker_architecture == "arm64"
        environment = {
            ENV_TABLE: table.table_name, ENV_BUCKET: bucket.bucket_name,
            ENV_WORKER_FUNCTION: self.names["render-chunk"], ENV_ORCHESTRATOR_FUNCTION: self.names["orchestrate"],
            ENV_WORKER_TIMEOUT: str(settings.worker_timeout), ENV_WORKER_ARCHITECTURE: settings.worker_architecture,
            ENV_CONCURRENCY: str(settings.max_concurrency),
        }
        limits = {**FIXED_LIMITS, "render-chunk": (settings.worker_memory_mb, settings.worker_timeout)}
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        image = WorkerImage(self, "Image")  # render-chunk's may be your own (-c workerDockerfile / workerImage)
        for kind, handler in HANDLERS.items():
            memory, timeout = limits[kind]
            log_group = logs.LogGroup(self, f"{kind}-logs", log_group_name=f"/aws/lambda/{self.names[kind]}",
                                      retention=_retention(settings.log_retention_days),
                                      removal_policy=RemovalPolicy.DESTROY)
            role = iam.Role(self, f"{kind}-role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=f"framefarm {kind}: only what this function needs")
            log_group.grant_write(role)
            self.roles[kind] = role
            self.functions[kind] = lambda_.DockerImageFunction(
                self, kind, function_name=self.names[kind], role=role, memory_size=memory,
                timeout=Duration.seconds(timeout), log_group=log_group, environment=environment,
                architecture=lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64,
                ephemeral_storage_size=Size.gibibytes(4) if kind == "render-chunk" else None,
                # renders get maxConcurrency guaranteed and can take no more of the account
                reserved_concurrent_executions=settings.max_concurrency if kind == "render-chunk" else None,
                code=image.code(kind, handler,
                                platform=ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64),
            )
            acknowledge(self.functions[kind], CHECKOV_FINDINGS[kind])
            acknowledge(log_group, {"CKV_AWS_158": "CloudWatch Logs encrypts every log group at rest, and what "
                                                   "the functions log is blanked of secret values"})
        # the orchestrator dispatches: its jobs share the reserved capacity (framefarm's concurrency budget)
        self.functions["orchestrate"].add_environment(ENV_MAX_CONCURRENCY, str(settings.max_concurrency))
        self._grant(settings, bucket, table)
        # The watchdog for jobs: a run that died unseen (Lambda's retries spent) is handed back.
        self.sweeper = events.Rule(
            self, "sweep", description="framefarm: resume running jobs whose orchestrator died",
            schedule=events.Schedule.rate(Duration.minutes(settings.sweep_minutes)),
            targets=[targets.LambdaFunction(self.functions["orchestrate"], retry_attempts=0,
                                            event=events.RuleTargetInput.from_object({"sweep": True}))])

    def arn(self, kind: str) -> str:
        stack = Stack.of(self)
        return f"arn:{stack.partition}:lambda:{stack.region}:{stack.account}:function:{self.names[kind]}"

    def _grant(self, settings: InfraSettings, bucket: s3.IBucket, table: ITable) -> None:
        worker, orchestrator, submit = self.roles["render-chunk"], self.roles["orchestrate"], self.roles["submit"]
        objects = bucket.arn_for_objects
        worker.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[
            objects(SPEC_KEYS), objects(ASSET_KEYS), objects(CANCEL_KEYS), objects(INPUT_KEYS)]))
        worker.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:PutObjectTagging"],
                                                 resources=[objects(CHUNK_KEYS)]))
        worker.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:PutObjectTagging"],
                                                 resources=[objects(MEDIA_KEYS)]))
        worker.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[objects(LOG_KEYS)]))
        orchestrator.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                                       resources=[self.arn("render-chunk"), self.arn("orchestrate")]))
        orchestrator.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
                     "dynamodb:ConditionCheckItem"], resources=[table.table_arn]))
        orchestrator.add_to_policy(iam.PolicyStatement(  # a holder of the shared budget leaves or is reclaimed
            actions=["dynamodb:DeleteItem"], resources=[table.table_arn],  # (in a transaction: IAM checks the Delete)
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [SLOTS_PARTITION]}}))
        orchestrator.add_to_policy(iam.PolicyStatement(  # the sweep lists recent jobs through the index
            actions=["dynamodb:Query"], resources=[f"{table.table_arn}/index/{GSI_NAME}"]))
        orchestrator.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects(SPEC_KEYS)]))
        orchestrator.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"],
                                                       resources=[objects(LOG_KEYS), objects(ATTEMPT_KEYS)]))
        orchestrator.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:DeleteObject"],
                                                       resources=[objects(CANCEL_KEYS)]))
        for role in (worker, orchestrator):  # without ListBucket, HEAD of a missing marker is 403, not 404
            role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                                   conditions=LISTED_KEYS))
        submit.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                                 resources=[self.arn("orchestrate")]))
        submit.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem",
                     "dynamodb:BatchWriteItem"], resources=[table.table_arn]))
        submit.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:DeleteObject"],
                                                 resources=[objects(SPEC_KEYS)]))
        submit.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                                 conditions=LISTED_KEYS))
        self._acknowledge_key_patterns(bucket, {
            "render-chunk": {SPEC_KEYS: "reads the spec of whichever job it is given",
                             ASSET_KEYS: "reads that job's asset bundle",
                             INPUT_KEYS: "presigns reads of that job's source media for its command",
                             CHUNK_KEYS: "writes that job's chunk output",
                             MEDIA_KEYS: "writes the media record of that job's chunk output",
                             LOG_KEYS: "writes the full logs of that job's chunk",
                             CANCEL_KEYS: "checks that job's cancel marker between stages"},
            "orchestrate": {SPEC_KEYS: "reads the spec of the job it runs",
                            LOG_KEYS: "writes full logs of that job's chunks",
                            ATTEMPT_KEYS: "keeps the record of an attempt of that job's chunks a retry replaced",
                            CANCEL_KEYS: "sets and clears that job's cancel marker"},
            "submit": {SPEC_KEYS: "writes (and on failure removes) the spec of the job it accepts"},
        })

    def _acknowledge_key_patterns(self, bucket: s3.IBucket, reasons: dict[str, dict[str, str]]) -> None:
        """Each object-key wildcard is acknowledged on its own, with why it cannot be narrower."""
        stack = Stack.of(self)
        bucket_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))  # type: ignore[arg-type]
        for kind, patterns in reasons.items():
            for pattern, purpose in patterns.items():
                Validations.of(self.roles[kind]).acknowledge(Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{pattern}]",
                    reason=f"{kind} {purpose}; job ids are made at submit time, so the key is a pattern inside "
                           "this stack's own bucket, with named actions only"))


_EVERY_FUNCTION = {
    "CKV_AWS_117": "the functions reach only S3, DynamoDB, SQS and Lambda, over HTTPS with IAM: a VPC would need NAT "
                   "or interface endpoints (a charge per zone) and has nothing of ours inside to protect",
    "CKV_AWS_173": "the environment holds resource names and numbers, no secret; Lambda encrypts it at rest",
}
_UNRESERVED = ("draws on the account's unreserved concurrency: a reservation would cap how many jobs are submitted "
               "or run at once; render-chunk, the function that fans out, is the one reserved (maxConcurrency)")
_SYNCHRONOUS = "invoked synchronously only: its caller sees every failure and retries it; no event can be lost"
# What checkov finds on each function, and why it stands.
CHECKOV_FINDINGS = {
    "submit": {**_EVERY_FUNCTION, "CKV_AWS_115": _UNRESERVED, "CKV_AWS_116": _SYNCHRONOUS},
    "orchestrate": {**_EVERY_FUNCTION, "CKV_AWS_115": _UNRESERVED,
                    "CKV_AWS_116": "its asynchronous events have an on-failure destination instead of a DLQ "
                                   "(LostEvents: the record keeps the error with the event); checkov reads only "
                                   "DeadLetterConfig"},
    "render-chunk": {**_EVERY_FUNCTION, "CKV_AWS_116": _SYNCHRONOUS},
}

RETENTION = {1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS, 5: logs.RetentionDays.FIVE_DAYS,
             7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
             60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
             180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR}


def _retention(days: int) -> logs.RetentionDays:
    if days not in RETENTION:
        raise ValueError(f"logRetentionDays: {days}; use one of {', '.join(map(str, RETENTION))}")
    return RETENTION[days]
