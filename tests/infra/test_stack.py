"""The synthesized stack, resource by resource (aws_cdk.assertions)."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from framefarm.repositories.dynamodb import GSI_NAME, GSI_PK, GSI_SK, LISTED, PK, SK, TTL_ATTRIBUTE


def resources(template: Template, kind: str) -> dict:
    return template.find_resources(kind)


def test_resource_counts(synthesized):
    _, template, _ = synthesized
    for kind, count in {"AWS::SecretsManager::Secret": 1, "AWS::S3::Bucket": 2, "AWS::DynamoDB::Table": 1, "AWS::Lambda::Function": 3,
                        "AWS::IAM::Role": 3, "AWS::IAM::Policy": 3, "AWS::Logs::LogGroup": 3,
                        "AWS::CloudWatch::Alarm": 3, "AWS::SQS::Queue": 1, "AWS::Lambda::EventInvokeConfig": 1}.items():
        template.resource_count_is(kind, count)


def test_artifact_bucket_is_private_encrypted_logged_and_expires_chunks(synthesized):
    _, template, _ = synthesized
    template.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "artifacts/"},
        "LifecycleConfiguration": {"Rules": Match.array_with([
            {"Id": "expire-chunks", "Status": "Enabled", "ExpirationInDays": 7,
             "TagFilters": [{"Key": "framefarm-kind", "Value": "chunk"}]},
            Match.object_like({"Id": "abort-incomplete-uploads",
                               "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})])},
    })
    artifact = next(props for props in resources(template, "AWS::S3::Bucket").values()
                if "LoggingConfiguration" in props["Properties"])
    assert "VersioningConfiguration" not in artifact["Properties"]


def test_every_bucket_refuses_plain_http(synthesized):
    _, template, _ = synthesized
    policies = resources(template, "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_job_table_matches_the_repositorys_model(synthesized):
    _, template, _ = synthesized
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        "GlobalSecondaryIndexes": [{"IndexName": GSI_NAME,
                                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(LISTED)},
                                    "KeySchema": [{"AttributeName": GSI_PK, "KeyType": "HASH"},
                                                  {"AttributeName": GSI_SK, "KeyType": "RANGE"}]}],
    })
    # the listing index never copies a heartbeat, a lease or a spec
    assert not {"heartbeat_at", "lease_owner", "lease_until", "spec"} & set(LISTED)


def function(template: Template, suffix: str) -> dict:
    found = [f["Properties"] for f in resources(template, "AWS::Lambda::Function").values()
             if f["Properties"]["FunctionName"].endswith(suffix)]
    assert len(found) == 1
    return found[0]


def test_functions_are_one_image_with_three_handlers_and_the_right_limits(synthesized):
    _, template, _ = synthesized
    worker, orchestrator, submit = (function(template, s) for s in ("-render-chunk", "-orchestrate", "-submit"))
    assert [f["PackageType"] for f in (worker, orchestrator, submit)] == ["Image"] * 3
    assert len({json.dumps(f["Code"]) for f in (worker, orchestrator, submit)}) == 1
    assert [f["ImageConfig"]["Command"] for f in (worker, orchestrator, submit)] == [
        ["lambda_handlers.render_chunk.handler"], ["lambda_handlers.orchestrate.handler"],
        ["lambda_handlers.submit.handler"]]
    assert (orchestrator["Timeout"], worker["Timeout"], worker["MemorySize"]) == (900, 300, 2048)
    assert worker["Architectures"] == ["x86_64"] and worker["EphemeralStorage"] == {"Size": 4096}


def test_environment_is_wired_to_the_real_names(synthesized):
    stack, template, _ = synthesized
    table = stack.resolve(stack.get_logical_id(stack.jobs.table.node.default_child))
    bucket = stack.resolve(stack.get_logical_id(stack.artifacts.bucket.node.default_child))
    for suffix in ("-render-chunk", "-orchestrate", "-submit"):
        env = function(template, suffix)["Environment"]["Variables"]
        assert env["FRAMEFARM_TABLE"] == {"Ref": table} and env["FRAMEFARM_BUCKET"] == {"Ref": bucket}
        assert env["FRAMEFARM_WORKER_FUNCTION"] == function(template, "-render-chunk")["FunctionName"]
        assert env["FRAMEFARM_ORCHESTRATOR_FUNCTION"] == function(template, "-orchestrate")["FunctionName"]
        assert env["FRAMEFARM_WORKER_TIMEOUT"] == "300"


def test_renders_have_max_concurrency_reserved_and_the_orchestrator_shares_it(synthesized):
    # GIVEN the default stack (maxConcurrency 100)
    _, template, _ = synthesized
    worker, orchestrator, submit = (function(template, s) for s in ("-render-chunk", "-orchestrate", "-submit"))
    # THEN render-chunk has exactly that capacity reserved, and the orchestrator's jobs share it as their budget
    assert worker["ReservedConcurrentExecutions"] == 100
    assert orchestrator["Environment"]["Variables"]["FRAMEFARM_MAX_CONCURRENCY"] == "100"
    # the other two draw on the account's unreserved pool, and only the dispatching function gets the budget
    assert "ReservedConcurrentExecutions" not in orchestrator and "ReservedConcurrentExecutions" not in submit
    assert "FRAMEFARM_MAX_CONCURRENCY" not in worker["Environment"]["Variables"]
    assert "FRAMEFARM_MAX_CONCURRENCY" not in submit["Environment"]["Variables"]


def test_log_groups_have_retention(synthesized):
    _, template, _ = synthesized
    for group in resources(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 30


def policy_of(template: Template, role_suffix: str) -> list[dict]:
    for policy in resources(template, "AWS::IAM::Policy").values():
        roles = policy["Properties"]["Roles"]
        if any(role_suffix in ref["Ref"] for ref in roles):
            return policy["Properties"]["PolicyDocument"]["Statement"]
    raise AssertionError(role_suffix)


def actions(statements: list[dict]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        found.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    return found


def test_no_statement_has_a_star_resource_or_a_star_action(synthesized):
    _, template, _ = synthesized
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in listed, statement
            assert not any(action.endswith(":*") or action == "*" for action in actions([statement])), statement


def test_least_privilege_per_function(synthesized):
    _, template, _ = synthesized
    log_actions = {"logs:CreateLogStream", "logs:PutLogEvents"}
    worker = policy_of(template, "renderchunkrole")
    orchestrator = policy_of(template, "orchestraterole")
    submit = policy_of(template, "submitrole")
    assert actions(worker) == log_actions | {"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:ListBucket"}
    assert actions(orchestrator) == log_actions | {
        "lambda:InvokeFunction", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
        "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "s3:ListBucket", "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
        "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        "events:PutEvents", "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    # the cancel marker: the worker may only read it, the orchestrator sets and clears it
    deletes = next(s for s in orchestrator if "s3:DeleteObject" in actions([s]))
    assert json.dumps(deletes["Resource"]).endswith('"/jobs/*/cancel"]]}')
    assert actions(submit) == log_actions | {
        "lambda:InvokeFunction", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    # the worker writes only chunk keys and their media records (tagged, stored with the chunk: runtime's
    # keep_media_record) and log keys; the orchestrator invokes only the worker and itself
    writes = [s for s in worker if "s3:PutObject" in actions([s])]
    assert [(sorted(actions([s])), json.dumps(s["Resource"]).rpartition(", ")[2]) for s in writes] == [
        (["s3:PutObject", "s3:PutObjectTagging"], '"/jobs/*/chunks/*"]]}'),
        (["s3:PutObject", "s3:PutObjectTagging"], '"/jobs/*/media/*"]]}'), (["s3:PutObject"], '"/jobs/*/logs/*"]]}')]
    # it reads specs, asset bundles, cancel markers and source media (which it presigns for its command)
    reads = next(s for s in worker if actions([s]) == {"s3:GetObject"})
    assert sorted(json.dumps(r).rpartition(", ")[2] for r in reads["Resource"]) == [
        '"/jobs/*/assets.zip"]]}', '"/jobs/*/cancel"]]}', '"/jobs/*/inputs/*"]]}', '"/jobs/*/spec.json"]]}']
    # the orchestrator writes full logs and keeps the attempts a retry replaces (the monitor draws them)
    (orchestrator_writes,) = [s for s in orchestrator if actions([s]) == {"s3:PutObject"}]
    assert sorted(json.dumps(r).rpartition(", ")[2] for r in orchestrator_writes["Resource"]) == [
        '"/jobs/*/attempts/*"]]}', '"/jobs/*/logs/*"]]}']
    invokes = next(s for s in orchestrator if actions([s]) == {"lambda:InvokeFunction"})
    assert sorted(json.dumps(r).split("function:")[-1].strip('"]}') for r in invokes["Resource"]) == [
        "Framefarm-orchestrate", "Framefarm-render-chunk"]
    submit_invoke = next(s for s in submit if actions([s]) == {"lambda:InvokeFunction"})
    assert json.dumps(submit_invoke["Resource"]).endswith('function:Framefarm-orchestrate"]]}')


def test_the_orchestrator_may_delete_only_the_shared_budgets_holders(synthesized):
    # GIVEN the orchestrator's policy: it gives its budget slots back (leave_slots) and reclaims a dead
    # runner's in DynamoDB transactions that delete a holder item, which IAM checks as dynamodb:DeleteItem
    _, template, _ = synthesized
    orchestrator = policy_of(template, "orchestraterole")
    # THEN it may delete items of the budget's partition, and no other (no job record)
    (deletes,) = [s for s in orchestrator if "dynamodb:DeleteItem" in actions([s])]
    assert actions([deletes]) == {"dynamodb:DeleteItem"}
    assert deletes["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["SLOTS"]}}


def test_alarms_watch_worker_errors_and_throttles_and_orchestrator_errors(synthesized):
    _, template, _ = synthesized
    metrics = sorted(alarm["Properties"]["MetricName"] for alarm in resources(template, "AWS::CloudWatch::Alarm").values())
    assert metrics == ["Errors", "Errors", "Throttles"]


def test_outputs_name_everything_the_cli_needs(synthesized):
    from infra.stacks.framefarm_stack import OUTPUTS

    _, template, _ = synthesized
    assert set(OUTPUTS) <= set(template.find_outputs("*"))


def test_context_knobs_reach_the_template(tmp_path):
    from infra.app import build_app

    _, stack = build_app(context={"workerArchitecture": "arm64", "workerMemory": "4096", "workerTimeout": "120",
                                    "chunkExpiryDays": "3", "logRetentionDays": "14", "stackName": "Render",
                                    "maxConcurrency": "1900", "accountConcurrency": "2000"},
                           outdir=str(tmp_path))
    template = Template.from_stack(stack)
    worker = function(template, "Render-render-chunk")
    assert (worker["Architectures"], worker["MemorySize"], worker["Timeout"]) == (["arm64"], 4096, 120)
    assert worker["ReservedConcurrentExecutions"] == 1900
    assert function(template, "Render-orchestrate")["Environment"]["Variables"]["FRAMEFARM_MAX_CONCURRENCY"] == "1900"
    template.has_resource_properties("AWS::S3::Bucket", {"LifecycleConfiguration": {"Rules": Match.array_with([
        Match.object_like({"Id": "expire-chunks", "ExpirationInDays": 3})])}})
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 14})


@pytest.mark.parametrize(("context", "message"), [
    ({"workerTimeout": "890"}, "workerTimeout: 890 s leaves the 900 s orchestrator under 60 s to dispatch"),
    ({"workerArchitecture": "sparc"}, "workerArchitecture: 'sparc'"),
    ({"logRetentionDays": "13"}, "logRetentionDays: 13"),
    ({"maxConcurrency": "lots"}, "maxConcurrency: 'lots' is not a whole number"),
    ({"maxConcurrency": "0"}, "maxConcurrency: 0 cannot be reserved .* use 1-900"),
    ({"maxConcurrency": "901"}, "maxConcurrency: 901 cannot be reserved for render-chunk in an account of 1000 "
                                "concurrent executions .* use 1-900, or -c accountConcurrency=N"),
    ({"maxConcurrency": "150", "accountConcurrency": "200"}, "maxConcurrency: 150 .* use 1-100"),
    ({"accountConcurrency": "100"}, "accountConcurrency: 100 leaves nothing to reserve"),
    ({"eventBus": "no spaces"}, "eventBus: 'no spaces'"),
])
def test_bad_knobs_fail_at_synth_with_the_reason(tmp_path, context, message):
    from infra.app import build_app

    with pytest.raises(ValueError, match=message):
        build_app(context=context, outdir=str(tmp_path))


def test_a_schedule_sweeps_for_abandoned_jobs(synthesized):
    _, template, _ = synthesized
    (rule,) = resources(template, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Properties"]["Targets"]
    assert json.loads(target["Input"]) == {"sweep": True}
    assert "orchestrate" in json.dumps(target["Arn"])
    # the sweep lists jobs through the by-created index, named exactly
    orchestrator = policy_of(template, "orchestraterole")
    queries = [s for s in orchestrator if actions([s]) == {"dynamodb:Query"}]
    assert len(queries) == 1 and json.dumps(queries[0]["Resource"]).endswith('/index/by-created"]]}')


def test_events_the_orchestrator_loses_go_to_an_encrypted_queue_its_sweep_reads(synthesized):
    stack, template, _ = synthesized
    queue = stack.resolve(stack.get_logical_id(stack.lost_events.queue.node.default_child))
    orchestrator = stack.resolve(stack.get_logical_id(stack.functions.functions["orchestrate"].node.default_child))
    # the orchestrator's asynchronous calls (and only its) end, after Lambda's two retries, in the queue
    (config,) = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["FunctionName"] == {"Ref": orchestrator}
    assert config["Properties"]["MaximumRetryAttempts"] == 2
    assert config["Properties"]["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}
    # encrypted, kept two weeks (SQS's longest), kept when the stack goes, plain HTTP refused
    template.has_resource("AWS::SQS::Queue", {"Properties": {"KmsMasterKeyId": "alias/aws/sqs",
                                                             "MessageRetentionPeriod": 14 * 24 * 3600},
                                              "DeletionPolicy": "Retain"})
    (policy,) = resources(template, "AWS::SQS::QueuePolicy").values()
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy["Properties"]["PolicyDocument"]["Statement"])
    # the sweep finds it by name, and its rights on SQS are on this queue alone
    assert function(template, "-orchestrate")["Environment"]["Variables"]["FRAMEFARM_LOST_EVENTS_QUEUE"] == {
        "Ref": queue}
    queued = [s for s in policy_of(template, "orchestraterole") if any(a.startswith("sqs:") for a in actions([s]))]
    assert queued and all(s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]} for s in queued)
    for suffix in ("-render-chunk", "-submit"):
        assert "FRAMEFARM_LOST_EVENTS_QUEUE" not in function(template, suffix)["Environment"]["Variables"]


def test_only_the_orchestrator_reads_the_webhook_secret_and_puts_events_on_one_bus(synthesized):
    _, template, _ = synthesized
    (secret_id,) = resources(template, "AWS::SecretsManager::Secret")
    # the orchestrator reads the secret (and no other function can), by ARN: its value is in no environment
    readers = [name for name in ("renderchunkrole", "orchestraterole", "submitrole")
               if any(secret_id in json.dumps(s) for s in policy_of(template, name))]
    assert readers == ["orchestraterole"]
    reads = next(s for s in policy_of(template, "orchestraterole") if "secretsmanager:GetSecretValue" in actions([s]))
    assert reads["Resource"] == {"Ref": secret_id}
    orchestrator = function(template, "Framefarm-orchestrate")["Environment"]["Variables"]
    assert orchestrator["FRAMEFARM_WEBHOOK_SECRET_ARN"] == {"Ref": secret_id}
    assert orchestrator["FRAMEFARM_EVENT_BUS"] == "default"
    assert "FRAMEFARM_WEBHOOK_SECRET_ARN" not in function(template, "Framefarm-render-chunk")["Environment"]["Variables"]
    # PutEvents on the default bus only
    puts = next(s for s in policy_of(template, "orchestraterole") if actions([s]) == {"events:PutEvents"})
    assert json.dumps(puts["Resource"]).endswith(':event-bus/default"]]}')
    assert "WebhookSecretArn" in template.find_outputs("*")


def test_event_bus_knob_names_the_bus_in_the_grant_and_the_environment(tmp_path):
    from infra.app import build_app

    _, stack = build_app(context={"eventBus": "render-events"}, outdir=str(tmp_path))
    template = Template.from_stack(stack)
    puts = next(s for s in policy_of(template, "orchestraterole") if actions([s]) == {"events:PutEvents"})
    assert json.dumps(puts["Resource"]).endswith(':event-bus/render-events"]]}')
    assert function(template, "Framefarm-orchestrate")["Environment"]["Variables"]["FRAMEFARM_EVENT_BUS"] == \
        "render-events"
