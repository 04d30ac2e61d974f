"""ArtifactBucket: specs, asset bundles, chunk outputs and logs, under jobs/<id>/."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from framefarm.config import CHUNK_TAG
from infra.components.checkov import acknowledge


class ArtifactBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, chunk_expiry_days: int) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN)
        self.bucket = s3.Bucket(
            self, "Bucket", encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=False,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="artifacts/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-chunks", expiration=Duration.days(chunk_expiry_days),
                                 tag_filters=dict(CHUNK_TAG)),
                s3.LifecycleRule(id="abort-incomplete-uploads",
                                 abort_incomplete_multipart_upload_after=Duration.days(1)),
            ])
        acknowledge(self.access_logs, {
            "CKV_AWS_18": "this is the access-log bucket: logging it would log its own log deliveries",
            "CKV_AWS_21": "S3 writes each access log once and it expires after 90 days: versions would keep "
                          "nothing more"})
        acknowledge(self.bucket, {
            "CKV_AWS_21": "a job rewrites its keys by design (a retry rewrites its chunk) and chunks expire: "
                          "versions would keep every rewrite past the expiry rule; the job's record is in the "
                          "point-in-time-recovered table"})
