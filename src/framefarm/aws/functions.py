"""The three Lambda functions the stack deploys: the handler string each one's image runs, and the
memory and timeout of the two whose size is not a setting (render-chunk's are ``workerMemory`` and
``workerTimeout``).

The CDK stack (``infra/components/functions.py``) passes these as the image's CMD and devcloud starts
``python -m awslambdaric <handler>`` with the same strings, so both run what one place names.
Handler strings are ``module.attribute``, as the runtime interface client reads them.
"""

from __future__ import annotations

SUBMIT, ORCHESTRATE, RENDER_CHUNK = "submit", "orchestrate", "render-chunk"
HANDLERS: dict[str, str] = {
    SUBMIT: "lambda_handlers.submit.handler",
    ORCHESTRATE: "lambda_handlers.orchestrate.handler",
    RENDER_CHUNK: "lambda_handlers.render_chunk.handler",
}

# (memory MB, timeout s): submit validates and stores; the orchestrator waits on workers for as long as
# Lambda allows one invocation (it hands over before that).
FIXED_LIMITS: dict[str, tuple[int, int]] = {SUBMIT: (512, 30), ORCHESTRATE: (1024, 900)}
