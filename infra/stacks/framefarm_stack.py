"""FramefarmStack: bucket, table, the three functions, monitoring, and the names the CLI needs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.components.artifact_bucket import ArtifactBucket
from infra.components.functions import WorkerFunctions
from infra.components.job_table import JobTable
from infra.components.lost_events import LostEvents
from infra.components.monitoring import Monitoring
from infra.components.notifications import Notifications
from infra.settings import InfraSettings

# Output names `framefarm ... --stack NAME` reads (framefarm.cli.context).
OUTPUTS = ("BucketName", "TableName", "SubmitFunctionName", "OrchestratorFunctionName", "WorkerFunctionName",
           "WebhookSecretArn")


class FramefarmStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: InfraSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="framefarm: distributed rendering on Lambda", **kwargs)
        self.artifacts = ArtifactBucket(self, "Artifacts", chunk_expiry_days=settings.chunk_expiry_days)
        self.jobs = JobTable(self, "Jobs")
        self.functions = WorkerFunctions(self, "Functions", settings=settings, bucket=self.artifacts.bucket,
                                         table=self.jobs.table)
        self.lost_events = LostEvents(self, "LostEvents", orchestrator=self.functions.functions["orchestrate"])
        self.monitoring = Monitoring(self, "Monitoring", worker=self.functions.functions["render-chunk"],
                                     orchestrator=self.functions.functions["orchestrate"])
        self.notifications = Notifications(self, "Notifications", orchestrator=self.functions.functions["orchestrate"],
                                           role=self.functions.roles["orchestrate"], event_bus=settings.event_bus)
        values = {"BucketName": self.artifacts.bucket.bucket_name, "TableName": self.jobs.table.table_name,
                  "SubmitFunctionName": self.functions.names["submit"],
                  "OrchestratorFunctionName": self.functions.names["orchestrate"],
                  "WorkerFunctionName": self.functions.names["render-chunk"],
                  "WebhookSecretArn": self.notifications.secret.secret_arn}
        for name in OUTPUTS:
            CfnOutput(self, name, value=values[name])
