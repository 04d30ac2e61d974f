"""Source media a job's commands read: ``inputs: {NAME: path or URL}`` and the ``{input.NAME}`` placeholder.

When a job is submitted (``store_inputs``), a local file is uploaded once, to
``jobs/<job>/inputs/NAME.<ext>`` in the job's storage, if its chunks run elsewhere (Lambda, Cloud Run);
chunks run on this machine read it where it is (a ``file://`` URL: no copy). A URL (``s3://``, ``gs://``,
``http(s)://``) is kept as given. Nothing is downloaded whole.

When a chunk runs (``fill_inputs``), the process that starts its command fills each ``{input.NAME}``
at that moment: a ``file://`` input becomes its path; an ``s3://`` or ``gs://`` one a presigned GET URL
(ffmpeg then reads only the byte ranges it needs, over HTTP) valid for the attempt's time limit plus a
margin; an http(s) URL stays as given. Signing there, not at submit or dispatch time, means a URL never
has to outlive a queue (a job of 1,000 chunks on 100 workers waits hours for its last chunk), lasts no
longer than one attempt, and is made with the worker's own identity, which the stack lets read exactly
``jobs/*/inputs/*``; the orchestrator never holds one. Presigned URLs are credentials, and ffmpeg prints
the URLs it opens: the runner blanks their query strings out of all output it keeps
(``redaction.url_secrets``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from framefarm.errors import JobSpecError
from framefarm.spec.model import INPUT_PLACEHOLDER
from framefarm.storage import storage_for_url
from framefarm.storage.base import Storage
from framefarm.storage.keys import input_key

StorageFor = Callable[[str], tuple[Storage, str]]

SIGNED_SCHEMES = ("s3://", "gs://")
URL_SCHEMES = (*SIGNED_SCHEMES, "file://", "http://", "https://")
URL_MARGIN_SECONDS = 300  # a presigned URL outlives its attempt's time limit by this much
URL_SECONDS_WITHOUT_LIMIT = 6 * 3600  # an attempt with no time limit gets URLs valid this long


def is_url(location: str) -> bool:
    return location.startswith(URL_SCHEMES)


def store_inputs(inputs: Mapping[str, str], *, job_id: str, storage: Storage, upload: bool) -> dict[str, str]:
    """``inputs`` as the URLs a worker reads: local files uploaded into ``storage`` under the job's prefix
    (``upload``) or as ``file://`` URLs of where they are; URLs kept. JobSpecError naming the input when a
    local file is missing."""
    stored = {}
    for name, location in inputs.items():
        if is_url(location):
            stored[name] = location
            continue
        path = Path(location).expanduser()
        if not path.is_file():
            raise JobSpecError(f"inputs.{name}: no file at {path.resolve()}; give a file or an "
                               "s3://, gs:// or https:// URL")
        if upload:
            key = input_key(job_id, name, path.name)
            storage.put_file(key, path)
            stored[name] = storage.url(key)
        else:
            stored[name] = path.resolve().as_uri()
    return stored


def url_lifetime(timeout: float | None) -> int:
    """Seconds a presigned input URL lasts for an attempt with this time limit: the limit plus a margin."""
    return URL_SECONDS_WITHOUT_LIMIT if timeout is None else math.ceil(timeout) + URL_MARGIN_SECONDS


def locate(url: str, *, expires_in: int, storage_for: StorageFor = storage_for_url) -> str:
    """What a command reads ``url`` through: a path, a freshly presigned URL, or the URL itself."""
    if url.startswith("file://"):
        return url2pathname(urlsplit(url).path)
    if url.startswith(SIGNED_SCHEMES):
        storage, key = storage_for(url)
        return storage.presigned_url(key, expires_in)
    if url.startswith(("http://", "https://")):
        return url
    raise ValueError(f"{url!r} is no input URL; give a file:// s3:// gs:// or https:// URL")


def fill_inputs(argv: list[str], inputs: Mapping[str, str] | None, *, expires_in: int,
                storage_for: StorageFor = storage_for_url) -> tuple[list[str], list[str]]:
    """``argv`` with each ``{input.NAME}`` filled (each input located once), and what was handed out for
    them (to be kept out of logs). ValueError for a name ``inputs`` lacks or an input that cannot be read."""
    located: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in located:
            if name not in (inputs or {}):
                raise ValueError(f"{{input.{name}}} names no input of this job")
            located[name] = locate((inputs or {})[name], expires_in=expires_in, storage_for=storage_for)
        return located[name]

    filled = [INPUT_PLACEHOLDER.sub(fill, argument) if "{input." in argument else argument for argument in argv]
    return filled, list(located.values())


def outside_job(inputs: Mapping[str, str] | None, *, store_root: str, job_prefix_url: str) -> str | None:
    """The first input in the worker's own store (URLs starting ``store_root``) but outside its job's
    prefix, as ``inputs.NAME``; None when there is none. A job may read other buckets its worker can, never
    another job's files."""
    for name, url in (inputs or {}).items():
        if url.startswith(store_root) and not url.startswith(job_prefix_url):
            return f"inputs.{name}"
    return None
