"""Commands that stop a job from anywhere: cancel, pause."""

from __future__ import annotations

import argparse
from typing import Any

from framefarm.cli.context import EXIT_OK, Context, add_store_flags
from framefarm.status import JobRecord


def register(commands: Any) -> None:
    for name, handler, text in (("cancel", cmd_cancel, "stop a job and kill its work in flight"),
                                ("pause", cmd_pause, "stop a job after the chunks in flight finish")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        add_store_flags(command)
        command.set_defaults(handler=handler)


def cmd_cancel(args: argparse.Namespace, context: Context) -> int:
    return report_control(context, context.manager().cancel_job(args.job_id), "cancel")


def cmd_pause(args: argparse.Namespace, context: Context) -> int:
    return report_control(context, context.manager().pause_job(args.job_id), "pause")


def report_control(context: Context, status: JobRecord, action: str) -> int:
    context.err.print(control_message(status, action))
    return EXIT_OK


def control_message(status: JobRecord, action: str) -> str:
    """What came of asking to ``action`` a job (the monitor's page says the same)."""
    if status.pending_action:
        return f"asked the process running {status.id} to {action} it"
    return f"job {status.id} is {status.state.value}"
