"""LocalAwsStack: moto's server (S3, DynamoDB, SQS) + devcloud (Lambda) + a table, a bucket and the
orchestrator's lost-events queue, on 127.0.0.1."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from framefarm.config import (
    ENV_BUCKET,
    ENV_LOST_EVENTS_QUEUE,
    ENV_ORCHESTRATOR_FUNCTION,
    ENV_SUBMIT_FUNCTION,
    ENV_TABLE,
    ENV_WORKER_FUNCTION,
    ENV_WORKER_TIMEOUT,
)
from framefarm.devcloud.server import (
    ORCHESTRATOR_FUNCTION,
    SUBMIT_FUNCTION,
    WORKER_FUNCTION,
    DevCloud,
    DevFunction,
    standard_functions,
)
from framefarm.devcloud.task_root import TaskRoot


def fix_moto_number_arithmetic() -> None:
    """Make moto add DynamoDB numbers as DynamoDB does.

    moto 5 parses any number without a "." with int(), but stores sums with str(Decimal), which
    writes 3E-7 for 0.0000003; the next ``SET x = x + :v`` on that attribute then fails with a
    ValueError that cancels the whole transaction. A chunk costing under $0.000001 (a 1 ms Lambda
    call) hits it. Real DynamoDB has no such limit, so this patches the emulator, not framefarm.
    """
    from moto.dynamodb.exceptions import IncorrectDataType
    from moto.dynamodb.models.dynamo_type import DynamoType

    if getattr(DynamoType, "_framefarm_exact_numbers", False):
        return

    def arithmetic(sign: int) -> Callable[[DynamoType, DynamoType], DynamoType]:
        def operate(self: DynamoType, other: DynamoType) -> DynamoType:
            if self.type != other.type:
                raise TypeError("Different types of operandi is not allowed.")
            if not self.is_number():
                raise IncorrectDataType()
            total = Decimal(self.value) + sign * Decimal(other.value)
            return DynamoType({"N": format(total, "f")})

        return operate

    DynamoType.__add__ = arithmetic(1)  # type: ignore[method-assign]
    DynamoType.__sub__ = arithmetic(-1)  # type: ignore[method-assign]
    DynamoType._framefarm_exact_numbers = True  # type: ignore[attr-defined]


class LocalAwsStack:
    """The whole AWS flow on this machine: moto's server (S3, DynamoDB, SQS) + devcloud (Lambda) + a table,
    a bucket and the orchestrator's lost-events queue, with the environment the CDK stack would give the
    functions.

    While it runs, ``os.environ`` carries the endpoints, fake credentials and ``FRAMEFARM_*`` names,
    so the function instances (which start from it) and any boto3 client made here reach the local
    services; ``env``
    holds the same for other processes (the CLI).
    """

    def __init__(self, *, functions: list[DevFunction] | None = None, table: str | None = None,
                 bucket: str | None = None, port: int = 0, moto_port: int = 0, worker_timeout: float = 300.0,
                 orchestrator_timeout: float = 900.0, event_retry_delays: tuple[float, ...] = (60.0, 120.0),
                 task_root: TaskRoot | None = None) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.table = table or f"framefarm-jobs-{suffix}"
        self.bucket = bucket or f"framefarm-artifacts-{suffix}"
        self.worker_timeout = worker_timeout
        self._functions = functions or standard_functions(worker_timeout=worker_timeout,
                                                          orchestrator_timeout=orchestrator_timeout)
        self._event_retry_delays = event_retry_delays
        self._task_root = task_root
        self._port, self._moto_port = port, moto_port
        self._saved_env: dict[str, str | None] = {}
        self.env: dict[str, str] = {}
        self.cloud: DevCloud | None = None
        self.lost_events: str | None = None  # the orchestrator's on-failure destination (an SQS queue URL)
        self._lambda_stopped = False
        self._moto: Any = None

    def __enter__(self) -> LocalAwsStack:
        fix_moto_number_arithmetic()
        self._moto = SerializedMotoServer(port=self._moto_port).start()
        moto_endpoint = f"http://127.0.0.1:{self._moto.port}"
        self.cloud = DevCloud(self._functions, port=self._port, event_retry_delays=self._event_retry_delays,
                              task_root=self._task_root).start()
        names = {function.name for function in self._functions}
        self.env = {
            "AWS_ACCESS_KEY_ID": "devcloud", "AWS_SECRET_ACCESS_KEY": "devcloud", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
            "AWS_ENDPOINT_URL_SQS": moto_endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.cloud.endpoint,
            ENV_TABLE: self.table, ENV_BUCKET: self.bucket, ENV_WORKER_TIMEOUT: str(self.worker_timeout),
        }
        served = ((ENV_WORKER_FUNCTION, WORKER_FUNCTION), (ENV_ORCHESTRATOR_FUNCTION, ORCHESTRATOR_FUNCTION),
                  (ENV_SUBMIT_FUNCTION, SUBMIT_FUNCTION))
        for env_name, function in served:
            if function in names:
                self.env[env_name] = function
        self._export(self.env)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        import boto3

        from framefarm.repositories.dynamodb import create_table

        boto3.client("s3").create_bucket(Bucket=self.bucket)
        create_table(boto3.client("dynamodb"), self.table)
        # The orchestrator's on-failure destination, as the CDK stack gives it (LostEvents)
        self.lost_events = boto3.client("sqs").create_queue(QueueName=f"{self.table}-lost-events")["QueueUrl"]
        for served_function in self._functions:
            if served_function.name == ORCHESTRATOR_FUNCTION:
                served_function.on_failure = self.lost_events
        self.env[ENV_LOST_EVENTS_QUEUE] = self.lost_events
        self._export({ENV_LOST_EVENTS_QUEUE: self.lost_events})
        return self

    def _export(self, values: dict[str, str]) -> None:
        """Set ``values`` in ``os.environ``, remembering what they replace for ``__exit__``."""
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def stop_lambda(self) -> None:
        """Stop devcloud's functions (calls under way finish first), leaving S3 and DynamoDB up: what
        they hold is then final, e.g. to save it."""
        if self.cloud is not None and not self._lambda_stopped:
            self._lambda_stopped = True
            self.cloud.stop()

    def __exit__(self, *exc: object) -> None:
        self.stop_lambda()
        if self._moto is not None:
            self._moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class SerializedMotoServer:
    """moto's S3 and DynamoDB on 127.0.0.1, answering one request at a time.

    moto's DynamoDB is not thread-safe: a query running beside an UpdateItem can see the item half
    built (its keys without its attributes), which real DynamoDB never shows. Function instances,
    the CLI and tests all reach this server from their own processes, so it serializes requests at
    its one door, as the in-process tests serialize calls at the moto client.
    """

    def __init__(self, port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        moto = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ: Any, start_response: Any) -> list[bytes]:
            with lock:  # the body is read inside the lock too: it may be built lazily from the backend
                return list(moto(environ, start_response))

        self._server = make_server("127.0.0.1", port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="devcloud-moto", daemon=True)

    def start(self) -> SerializedMotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)
