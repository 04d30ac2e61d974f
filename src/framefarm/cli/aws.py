"""AWS commands: submit (invoke the submit Lambda), devcloud (the AWS flow on this machine), and the
Lambda backend for ``render --backend lambda``."""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from framefarm.cli.context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Context
from framefarm.errors import JobSpecError
from framefarm.manager import JobManager
from framefarm.spec import parse_job, read_job_document


def register(commands: Any) -> None:
    submit = commands.add_parser("submit", help="submit a job file to the deployed submit Lambda")
    submit.add_argument("jobfile", type=Path)
    submit.add_argument("--function", help="the submit function's name (or --stack)")
    submit.add_argument("--stack", help="a deployed framefarm stack: the submit function and bucket from its outputs")
    submit.add_argument("--job-id", help="id for the new job (default: generated)")
    submit.add_argument("--concurrency", type=int, help="chunks in flight on Lambda")
    submit.add_argument("--retries", type=int, help="retries per chunk")
    submit.add_argument("--assets", type=Path, help="a directory the commands read, shipped to every chunk")
    submit.add_argument("--bucket", help="with --assets: the artifact bucket to upload them to")
    submit.set_defaults(handler=cmd_submit)

    devcloud = commands.add_parser("devcloud", help="run the AWS flow on this machine (moto + local Lambda)")
    devcloud.add_argument("--port", type=int, default=0, help="Lambda endpoint port (default: any free)")
    devcloud.add_argument("--moto-port", type=int, default=0, help="S3/DynamoDB endpoint port (default: any free)")
    devcloud.set_defaults(handler=cmd_devcloud)


def cmd_submit(args: argparse.Namespace, context: Context) -> int:
    from framefarm.adapters.aws_lambda import LAMBDA_PAYLOAD_LIMIT, lambda_client

    function = context.function(args.function, "SubmitFunctionName")
    if not function:
        raise JobSpecError("submit: give --function SUBMIT_FN or --stack NAME")
    document = read_job_document(args.jobfile)
    spec = parse_job(document, source=str(args.jobfile), job_id=args.job_id)  # fail here, not in the Lambda
    options = {name: value for name in ("concurrency", "retries") if (value := getattr(args, name)) is not None}
    job = {**document, "id": spec.id}
    size = len(json.dumps({"job": job, "options": options, "assets_url": "s3://" + "x" * 1100}).encode())
    if size > LAMBDA_PAYLOAD_LIMIT:  # checked before anything is uploaded or invoked
        raise JobSpecError(f"{args.jobfile}: the submission is {size / 2**20:.1f} MiB and a Lambda request carries "
                           f"at most {LAMBDA_PAYLOAD_LIMIT / 2**20:.0f} MiB; describe the chunks with a template "
                           "(total_frames, frames_per_chunk, command) instead of listing them")
    if args.assets is not None:
        from framefarm.storage.s3 import S3Storage
        from framefarm.worker.assets import upload_assets

        if not context.bucket:  # --bucket, or the stack's BucketName
            raise JobSpecError("--assets: give --bucket (or --stack), the artifact bucket the workers read from")
        try:
            job["assets_url"] = upload_assets(args.assets, S3Storage(context.bucket), spec.id)
        except ValueError as exc:
            raise JobSpecError(str(exc)) from None
    payload = {"job": job, "options": options}
    response = lambda_client(concurrency=1, function_timeout=60).invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload).encode())
    answer = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        context.err.print(f"[red]error:[/] the submit function failed: {answer.get('errorMessage', answer)}")
        return EXIT_FAILED
    if answer.get("statusCode") != 202:
        context.err.print(f"[red]error:[/] {answer.get('error', answer)}", soft_wrap=True)
        return EXIT_USAGE if answer.get("statusCode") in (400, 409) else EXIT_FAILED
    context.out.print(answer["job_id"])
    context.err.print(f"submitted job [bold]{answer['job_id']}[/] ({answer['chunks']} chunks); watch it with "
                      f"`framefarm status {answer['job_id']} --table T`")
    return EXIT_OK


def cmd_devcloud(args: argparse.Namespace, context: Context) -> int:
    from framefarm.devcloud import LocalAwsStack
    from framefarm.devcloud.server import SUBMIT_FUNCTION

    with LocalAwsStack(port=args.port, moto_port=args.moto_port) as stack:
        context.out.print("# devcloud is running: S3 and DynamoDB (moto) and Lambda (this repository's handlers)")
        context.out.print("# in another shell:")
        for name, value in stack.env.items():
            context.out.print(f"export {name}={value}", highlight=False)
        context.out.print(f"# framefarm submit examples/testsrc.yaml --function {SUBMIT_FUNCTION}\n"
                          f"# framefarm status JOB_ID --table {stack.table}\n"
                          f"# framefarm stitch JOB_ID --table {stack.table} --bucket {stack.bucket} -o out.mp4",
                          highlight=False)
        context.err.print("Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return EXIT_OK


def lambda_manager(args: argparse.Namespace, context: Context) -> JobManager:
    """A manager that runs chunks on the render-chunk function, with DynamoDB and S3 behind it.

    Creating the job puts its spec in S3 (the DynamoDB store keeps specs there), where workers read it.
    """
    from framefarm.adapters.aws_lambda import LambdaWorkerAdapter
    from framefarm.aws.settings import AwsSettings
    settings = AwsSettings.from_env(table=context.table, bucket=context.bucket,
                                    worker_function=context.function(args.function, "WorkerFunctionName"))
    storage = settings.storage()
    adapter = LambdaWorkerAdapter(settings.require("worker_function"), storage, concurrency=args.concurrency,
                                  function_timeout=settings.worker_timeout,
                                  architecture=settings.worker_architecture)
    context.table, context.bucket = settings.table, settings.bucket
    return settings.manager(adapter, storage)
