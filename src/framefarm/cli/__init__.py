"""The ``framefarm`` command.

Exit codes: 0 success; 1 the job failed; 2 bad input or usage (one line, no traceback); 3 the job
was paused; 130 cancelled (Ctrl-C, SIGTERM, SIGHUP or ``framefarm cancel``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from framefarm import __version__
from framefarm.cli import aws, cleanup, control, estimate, files, monitor, reports, run, transcode
from framefarm.cli.context import EXIT_CANCELLED, EXIT_FAILED, EXIT_USAGE, Context, add_store_flags
from framefarm.errors import FramefarmError, JobNotFoundError, JobSpecError, JobStateError, ToolNotFoundError

INPUT_ERRORS = (JobSpecError, JobStateError, JobNotFoundError, ToolNotFoundError)
# The extra that installs each optional module a command may import (pyproject's optional-dependencies).
EXTRAS = {"boto3": "aws", "botocore": "aws", "google": "gcp", "requests": "gcp", "flask": "gcp", "waitress": "gcp",
          "moto": "devcloud", "awslambdaric": "devcloud", "flask_cors": "devcloud",
          "starlette": "monitor", "uvicorn": "monitor"}

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = Console(stderr=True, highlight=False)
    try:
        context = Context.from_args(args)  # may read a stack's outputs: inside the error handling
        return int(args.handler(args, context))
    except FramefarmError as exc:
        err.print(f"[red]error:[/] {exc}", markup=True, soft_wrap=True)
        return EXIT_USAGE if isinstance(exc, INPUT_ERRORS) else EXIT_FAILED
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_CANCELLED
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc, args.command)
        if extra is None:
            raise  # not an optional module: a bug, with its traceback
        err.print(f"[red]error:[/] {args.command} needs {exc.name}, which is not installed: "
                  + escape(f'pip install "framefarm[{extra}]"'), markup=True, soft_wrap=True, highlight=False)
        return EXIT_USAGE
    except Exception as exc:  # a cloud SDK error: one line, not a traceback
        if type(exc).__module__.startswith(("botocore", "boto3", "google")):
            err.print(f"[red]error:[/] {type(exc).__name__}: {exc}", markup=True, soft_wrap=True)
            return EXIT_FAILED
        raise


def missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The extra to install for a missing optional module (devcloud's own extra brings all it needs)."""
    top = (exc.name or "").partition(".")[0]
    if top not in EXTRAS:
        return None
    return "devcloud" if command == "devcloud" else EXTRAS[top]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framefarm", description="Distributed video rendering.")
    parser.add_argument("--version", action="version", version=f"framefarm {__version__}")
    add_store_flags(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, reports, control, files, cleanup, aws, estimate, monitor, transcode):
        module.register(commands)
    for command in commands.choices.values():  # the global flags after the command's name too
        add_store_flags(command)
    return parser


if __name__ == "__main__":
    sys.exit(main())
