"""The signing secret: from FRAMEFARM_WEBHOOK_SECRET, or on AWS from the stack's Secrets Manager
secret by its ARN (moto), read when needed; errors name where to put it, never a value."""

from __future__ import annotations

import boto3
import pytest

from framefarm.webhooks.secret import WebhookSecretError, webhook_secret


def test_the_environment_gives_the_secret_and_wins_over_an_arn():
    assert webhook_secret({"FRAMEFARM_WEBHOOK_SECRET": "s" * 20,
                           "FRAMEFARM_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:x"}) == "s" * 20


def test_on_aws_the_secret_is_read_from_secrets_manager_by_its_arn(aws):
    # GIVEN the stack's secret, and only its ARN in the environment
    value = "generated-0123456789abcdefghijklmnop"
    arn = boto3.client("secretsmanager").create_secret(Name="framefarm-webhook", SecretString=value)["ARN"]
    # WHEN the secret is asked for
    # THEN its value is read from Secrets Manager
    assert webhook_secret({"FRAMEFARM_WEBHOOK_SECRET_ARN": arn}) == value


def test_a_secret_that_cannot_be_read_is_named_without_its_value(aws):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    with pytest.raises(WebhookSecretError, match=r"cannot read the webhook secret arn:aws:secretsmanager:.*missing"):
        webhook_secret({"FRAMEFARM_WEBHOOK_SECRET_ARN": arn})


@pytest.mark.parametrize("environ, message", [({}, "set FRAMEFARM_WEBHOOK_SECRET"),
                                              ({"FRAMEFARM_WEBHOOK_SECRET": "short-secret"}, "12 characters")])
def test_no_secret_or_a_short_one_is_refused_saying_what_to_do(environ, message):
    with pytest.raises(WebhookSecretError, match=message) as caught:
        webhook_secret(environ)
    assert "short-secret" not in str(caught.value)
