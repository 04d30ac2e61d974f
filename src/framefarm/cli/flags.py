"""Flags and helpers the commands share: run options, their value checks, where a video goes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from framefarm.cli.context import add_store_flags
from framefarm.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LAMBDA_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_DELAY,
)
from framefarm.spec.model import MAX_PRIORITY


def add_resume_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id")
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--function", help="with --table: the orchestrator function's name (or --stack)")
    parser.add_argument("--service", help="with --gcs-bucket: the Cloud Run worker service the job renders on")
    add_run_flags(parser)
    add_store_flags(parser)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=positive_int,
                        help=f"chunks in flight (default: the backend's; {DEFAULT_CONCURRENCY} locally, "
                             f"{DEFAULT_LAMBDA_CONCURRENCY} on Lambda)")
    parser.add_argument("--retries", type=non_negative_int, default=DEFAULT_RETRIES,
                        help=f"retries per chunk (default {DEFAULT_RETRIES})")
    parser.add_argument("--retry-delay", type=float, default=DEFAULT_RETRY_DELAY,
                        help=f"first retry delay in seconds (default {DEFAULT_RETRY_DELAY:g})")
    parser.add_argument("--timeout", type=float, help="seconds per chunk attempt")
    add_max_cost_flag(parser)
    parser.add_argument("--no-stitch", action="store_true",
                        help="render the chunks only; join them later with `framefarm stitch`")
    add_webhook_flag(parser)


def add_webhook_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--webhook", metavar="URL",
                        help="POST a signed JSON event here when the job ends (secret: $FRAMEFARM_WEBHOOK_SECRET; "
                             "on AWS the stack's)")


def add_max_cost_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-cost", type=usd, metavar="USD",
                        help="stop starting chunks before the job's cost would pass USD; it ends paused "
                             "(default: the job file's budget: max_cost; needs a backend that reports cost)")


def usd(text: str) -> float:
    """A positive, finite amount of US dollars (``--max-cost``)."""
    try:
        value = float(text.strip().removeprefix("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of US dollars, e.g. 2.50") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive amount of US dollars (got {text})")
    return value


def output_path(explicit: Path | None, saved: str | None, job_id: str) -> Path:
    """Where a job's video goes: ``-o``, else the output the job was given, else out/<job>.mp4."""
    return (explicit or Path(saved or Path("out") / f"{job_id}.mp4")).resolve()


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def frame_range(text: str) -> tuple[int, int]:
    """``A-B`` (``--frames``): two frame numbers; whether they fit the job, the library checks."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame range; give A-B, e.g. 0-149")
    return int(match.group(1)), int(match.group(2))


def priority(text: str) -> float:
    """``--priority``: a job's weight in the shared concurrency budget, as a job file's ``priority``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a weight such as 2") from None
    if not 0 < value <= MAX_PRIORITY:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_PRIORITY:g} (got {value:g})")
    return value
