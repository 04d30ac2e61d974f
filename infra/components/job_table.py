"""JobTable: the single-table model of framefarm.repositories.dynamodb (same key and index names)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from framefarm.repositories.dynamodb import GSI_NAME, GSI_PK, GSI_SK, LISTED, PK, SK, TTL_ATTRIBUTE
from infra.components.checkov import acknowledge


class JobTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self, "Table",
            partition_key=dynamodb.Attribute(name=PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SK, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(self.table, {
            "CKV_AWS_119": "encrypted with DynamoDB's AWS-managed KMS key; the table holds job records (outputs "
                           "blanked of secret values), not worth a customer-managed key's policy and charge"})
        self.table.add_global_secondary_index(
            index_name=GSI_NAME,
            partition_key=dynamodb.Attribute(name=GSI_PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=GSI_SK, type=dynamodb.AttributeType.NUMBER),
            # Only what a listing shows: heartbeats and lease renewals then never write to the index.
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(LISTED),
        )
