"""AWS commands: submit (invoke the submit Lambda), devcloud (the AWS flow on this machine), and the
Lambda backend for ``render --backend lambda``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from framefarm.cli.context import EXIT_OK, Context
from framefarm.cli.flags import add_max_cost_flag, add_webhook_flag, non_negative_int, positive_int
from framefarm.config import DEFAULT_LAMBDA_CONCURRENCY, DEFAULT_RETRIES
from framefarm.errors import JobSpecError


def register(commands: Any) -> None:
    submit = commands.add_parser("submit", help="submit a job file to the deployed submit Lambda")
    submit.add_argument("jobfile", type=Path)
    submit.add_argument("--function", help="the submit function's name (or --stack)")
    submit.add_argument("--job-id", help="id for the new job (default: generated)")
    submit.add_argument("--concurrency", type=positive_int,
                        help=f"chunks in flight on Lambda (default {DEFAULT_LAMBDA_CONCURRENCY})")
    submit.add_argument("--retries", type=non_negative_int, help=f"retries per chunk (default {DEFAULT_RETRIES})")
    submit.add_argument("--assets", type=Path, help="a directory the commands read, shipped to every chunk")
    add_max_cost_flag(submit)
    add_webhook_flag(submit)
    submit.set_defaults(handler=cmd_submit)

    devcloud = commands.add_parser("devcloud", help="run the AWS flow on this machine (moto + local Lambda)")
    devcloud.add_argument("--port", type=int, default=0, help="Lambda endpoint port (default: any free)")
    devcloud.add_argument("--moto-port", type=int, default=0, help="S3/DynamoDB endpoint port (default: any free)")
    devcloud.add_argument("--state", type=Path, metavar="DIR",
                          help="keep the table, the bucket and their names in DIR across restarts")
    devcloud.add_argument("--log", type=Path, metavar="FILE",
                          help="moto's access log (default: devcloud.log in --state DIR, else in --home)")
    devcloud.set_defaults(handler=cmd_devcloud)


def cmd_submit(args: argparse.Namespace, context: Context) -> int:
    from framefarm.api import submit
    from framefarm.backends import Lambda
    from framefarm.options import RetryPolicy

    function = context.function(args.function, "SubmitFunctionName")
    if not function:
        raise JobSpecError("submit: give --function SUBMIT_FN or --stack NAME")
    if args.assets is not None and not context.bucket:  # --bucket, or the stack's BucketName
        raise JobSpecError("--assets: give --bucket (or --stack), the artifact bucket the workers read from")
    backend = Lambda(table=context.table, bucket=context.bucket, submit_function=function,
                     region=context.settings.get("region"))
    retry = RetryPolicy(retries=args.retries) if args.retries is not None else None
    handle = submit(args.jobfile, backend=backend, job_id=args.job_id, concurrency=args.concurrency, retry=retry,
                    assets=args.assets, stitch=False, max_cost=args.max_cost,
                    webhook=args.webhook)
    context.out.print(handle.job_id)
    watch = (f"`{context.hint(f'status {handle.job_id}')}`" if context.table  # else no command here can find it
             else f"`framefarm status {handle.job_id} --table TABLE` (the table of {function}'s deployment)")
    context.err.print(f"submitted job [bold]{handle.job_id}[/]; watch it with {watch}", highlight=False,
                      soft_wrap=True)
    return EXIT_OK


def cmd_devcloud(args: argparse.Namespace, context: Context) -> int:
    import boto3

    from framefarm.devcloud import LocalAwsStack
    from framefarm.devcloud.server import SUBMIT_FUNCTION
    from framefarm.devcloud.state import load_snapshot, resource_names, save_snapshot

    state: Path | None = args.state
    table, bucket = resource_names(state) if state is not None else (None, None)
    log_file = args.log or (state if state is not None else context.home) / "devcloud.log"
    _log_requests_to(log_file)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as Ctrl-C does: state saved
    with LocalAwsStack(port=args.port, moto_port=args.moto_port, table=table, bucket=bucket) as stack:
        clients = {"dynamodb": boto3.client("dynamodb"), "s3": boto3.client("s3")}
        kept = "(not kept: give --state DIR to keep them)"
        if state is not None:
            items, objects = load_snapshot(state, table=stack.table, bucket=stack.bucket, **clients)
            kept = f"(kept in {state}: {items} items and {objects} objects loaded)"
        context.out.print("# devcloud is running: S3 and DynamoDB (moto) and Lambda (framefarm's handlers)\n"
                          f"# table {stack.table}, bucket {stack.bucket} {kept}\n"
                          f"# moto's access log: {log_file}; Ctrl-C stops it\n"
                          f"# framefarm submit examples/testsrc.yaml --function {SUBMIT_FUNCTION}\n"
                          f"# framefarm status JOB_ID --table {stack.table}\n"
                          f"# framefarm stitch JOB_ID --table {stack.table} --bucket {stack.bucket} -o out.mp4\n"
                          "# in another shell:", highlight=False, soft_wrap=True)
        context.out.print("\n".join(f"export {name}={value}" for name, value in stack.env.items()),
                          highlight=False, soft_wrap=True)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        finally:
            stack.stop_lambda()  # calls under way finish and write what they write before the save
            if state is not None:
                items, objects = save_snapshot(state, table=stack.table, bucket=stack.bucket, **clients)
                context.err.print(f"saved {items} items and {objects} objects to {state}", highlight=False,
                                  soft_wrap=True)
    return EXIT_OK


def _log_requests_to(log_file: Path) -> None:
    """moto's server logs each request through werkzeug's logger: to ``log_file``, not the terminal."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(message)s"))  # werkzeug's lines carry their own time
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(handler)
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
