"""Monitoring: alarms on the worker's errors and throttles and on the orchestrator's errors."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, worker: lambda_.IFunction,
                 orchestrator: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        period = Duration.minutes(5)
        self.alarms = {
            "WorkerErrors": (worker.metric_errors(period=period), "render-chunk invocations failed"),
            "WorkerThrottles": (worker.metric_throttles(period=period),
                                "render-chunk calls were throttled: raise the function's concurrency "
                                "or lower maxConcurrency"),
            "OrchestratorErrors": (orchestrator.metric_errors(period=period), "the orchestrator failed"),
        }
        for name, (metric, description) in self.alarms.items():
            cloudwatch.Alarm(self, name, metric=metric, threshold=1, evaluation_periods=1,
                             comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                             alarm_description=description)
