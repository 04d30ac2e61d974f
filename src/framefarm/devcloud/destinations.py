"""On-failure destinations: where devcloud puts an Event call it gave up on, as Lambda does.

A function with ``on_failure`` (an SQS queue URL) gets, once an asynchronous call has failed every
attempt, the invocation record Lambda sends to an SQS destination (condition ``RetriesExhausted``):
the event as ``requestPayload``, the last answer as ``responseContext`` and ``responsePayload``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from framefarm.devcloud.functions import DevFunction, function_arn


def failure_record(function: DevFunction, event: Any, *, request_id: str, attempts: int, function_error: str,
                   payload: bytes) -> dict[str, Any]:
    """The invocation record of an Event call that failed all ``attempts``; ``payload``: its last answer."""
    try:
        response = json.loads(payload) if payload else None
    except json.JSONDecodeError:
        response = payload.decode(errors="replace")
    now = time.time()
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
        "requestContext": {"requestId": request_id, "functionArn": f"{function_arn(function)}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": function_error},
        "responsePayload": response,
    }


def send_to_queue(queue_url: str, record: dict[str, Any], client: Any = None) -> None:
    """Put ``record`` in the SQS queue at ``queue_url`` (the endpoint from the environment, e.g. moto's)."""
    if client is None:
        import boto3

        client = boto3.client("sqs")
    client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
