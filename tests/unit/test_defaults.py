"""One set of run defaults (config's): the CLI's flags and the Lambda handlers' options read them."""

from __future__ import annotations

from framefarm.aws.handlers import RunOptions
from framefarm.aws.settings import AwsSettings
from framefarm.backends import Lambda, Local
from framefarm.cli import build_parser
from framefarm.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LAMBDA_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_DELAY,
    DEFAULT_TRANSIENT_RETRIES,
    ENV_BUCKET,
    ENV_TABLE,
)


def test_cli_run_flags_default_to_config() -> None:
    # GIVEN the framefarm command  WHEN a render and a resume are parsed without run flags
    for argv in (["render", "job.yaml"], ["resume", "job-1"]):
        args = build_parser().parse_args(argv)
        # THEN retries and the retry delay are config's defaults, and concurrency is left to the backend
        assert (args.concurrency, args.retries, args.retry_delay) == (None, DEFAULT_RETRIES, DEFAULT_RETRY_DELAY), argv


def test_each_backend_defaults_its_concurrency_the_same_for_library_cli_and_handlers() -> None:
    # GIVEN no concurrency asked  THEN each backend's own default, the one its CLI flag and handlers use
    assert Local().concurrency(None) == DEFAULT_CONCURRENCY
    assert Lambda(environ={}).concurrency(None) == DEFAULT_LAMBDA_CONCURRENCY
    assert Lambda(environ={"FRAMEFARM_CONCURRENCY": "250"}).concurrency(None) == 250
    assert Local().concurrency(7) == 7


def test_lambda_run_options_default_to_config() -> None:
    # GIVEN a submission that sets no run options  WHEN the handler parses them
    options = RunOptions.parse({})
    # THEN its retries, transient retries and retry delay are the same defaults as the CLI's
    assert (options.retries, options.transient_retries, options.retry_delay) == (
        DEFAULT_RETRIES, DEFAULT_TRANSIENT_RETRIES, DEFAULT_RETRY_DELAY)


def test_lambda_concurrency_default_is_named_in_config() -> None:
    # GIVEN the stack's environment without FRAMEFARM_CONCURRENCY  WHEN the settings are read
    settings = AwsSettings.from_env({ENV_TABLE: "jobs", ENV_BUCKET: "artifacts"})
    # THEN chunks in flight on Lambda default to config's per-backend value, from the environment or not
    assert settings.concurrency == AwsSettings("jobs", "artifacts").concurrency == DEFAULT_LAMBDA_CONCURRENCY
