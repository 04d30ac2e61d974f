"""Reading job documents: a YAML or JSON job file (or already parsed data) to a JobSpec, whether it
holds an explicit spec or a template; every problem is a one-line JobSpecError naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from framefarm.errors import JobSpecError
from framefarm.spec.model import JobSpec
from framefarm.spec.planning import plan_job


def parse_job(data: Any, *, source: str = "job", job_id: str | None = None) -> JobSpec:
    """A parsed job document (explicit spec or template) as a JobSpec."""
    if not isinstance(data, Mapping):
        raise JobSpecError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    odd_keys = [key for key in data if not isinstance(key, str)]
    if odd_keys:  # YAML allows any key ("?" alone is {None: None}); field names are strings
        raise JobSpecError(f"{source}: field names must be text, got {odd_keys[0]!r}")
    try:
        if isinstance(data.get("chunks"), list):
            if job_id is not None:
                data = {**data, "id": job_id}
            return JobSpec.model_validate(dict(data))
        return plan_job(data, job_id=job_id, id_prefix=Path(source).stem)
    except JobSpecError as exc:
        raise JobSpecError(f"{source}: {exc}") from None


def load_job_file(path: str | Path, *, job_id: str | None = None) -> JobSpec:
    """Read a YAML or JSON job file and plan it. Every problem is a one-line JobSpecError."""
    return parse_job(read_job_document(path), source=str(path), job_id=job_id)


def read_job_document(path: str | Path) -> Any:
    """A job file's parsed YAML/JSON, before validation (what the submit Lambda is sent)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobSpecError(f"{path}: no such job file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(f"{path}: cannot read job file ({exc})") from None
    return parse_document(text, source=str(path))


def parse_document(text: str, *, source: str) -> Any:
    """JSON or YAML text to data, with the line and column of a syntax error."""
    if source.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobSpecError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise JobSpecError(f"{source}: invalid YAML{where}: {problem}") from None

