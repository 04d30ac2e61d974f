"""Secrets stay out of chunk commands, chunk records and logs.

A worker holds credentials (Lambda puts the function role's keys and session token in the
environment; a developer's shell has its own). The render command needs none of them, and its
stdout/stderr end up in chunk records and logs, so:

- ``chunk_environment`` drops every variable whose name looks secret before the command starts;
- ``redact`` blanks secret values (those variables', a bearer token) wherever they still appear in
  output that is kept (a command could read them another way, e.g. from /proc of its parent);
- ``url_secrets`` are the secret parts of presigned URLs handed to a command (its input media): ffmpeg
  prints the URLs it opens, so their query strings (signature, credential, token) are blanked too.

Neither is a sandbox: a command that means harm can still reach what the worker's identity can
(on Cloud Run, the metadata server). Give workers an identity with only the rights they need.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel

# A WorkerResult or a worker's chunk reply: any model with stdout, stderr and error texts. Typed by
# pydantic, not by those classes, so this low-layer module imports nothing from the adapters.
Output = TypeVar("Output", bound=BaseModel)

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|(^|_)(API_?)?KEY($|_)|ACCESS_KEY|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values are too common to blank out of text ("1", "true", "us-east-1")
REDACTED = "[redacted]"


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def chunk_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without the variables whose names look secret."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if not is_secret_name(name)}


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of the secret-looking variables in ``environ`` (default: this process's)."""
    source = os.environ if environ is None else environ
    return tuple(value for name, value in source.items() if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH)


def url_secrets(urls: Iterable[str]) -> tuple[str, ...]:
    """What to blank out of output for ``urls`` handed to a command: each query string whole, then each of
    its values (raw and decoded) long enough to be a secret, so a URL printed in part is caught too."""
    found: list[str] = []
    for url in urls:
        query = urlsplit(url).query
        if not query:
            continue
        found.append(query)
        for raw in query.split("&"):
            found.append(raw.partition("=")[2])
        found.extend(value for _, value in parse_qsl(query))
    return tuple(dict.fromkeys(secret for secret in found if len(secret) >= MIN_SECRET_LENGTH))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` (too-short ones excepted) replaced by [redacted]."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_result(result: Output, secrets: Iterable[str]) -> Output:
    """``result`` with ``secrets`` blanked out of its ``stdout``, ``stderr`` and ``error`` (the same
    object when none occur)."""
    kept = {name: getattr(result, name) for name in ("stdout", "stderr", "error")}
    clean = {name: redact(text, secrets) if text else text for name, text in kept.items()}
    return result if clean == kept else result.model_copy(update=clean)
