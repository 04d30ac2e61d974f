"""The job model: what a render job is, and how a job file becomes one.

A job file (YAML or JSON) is either an explicit spec (``chunks`` is a list of chunks) or a template
(``total_frames`` plus ``frames_per_chunk`` or a ``chunks`` count, and a ``command`` with placeholders)
that :func:`plan_job` expands into explicit chunks.

Example template::

    width: 1280
    height: 720
    fps: 30
    total_frames: 900
    frames_per_chunk: 150
    command: "{ffmpeg} -f lavfi -i testsrc2=size={width}x{height}:rate={fps}
              -vf trim=start_frame={start_frame}:end_frame={end_frame},setpts=PTS-STARTPTS {output}"
    output: out/testsrc.mp4

Every validation failure raises :class:`JobSpecError` with one line naming the field and the bad value.
"""

from __future__ import annotations

import json
import shlex
import string
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from framefarm.errors import JobSpecError, shown
from framefarm.paths import safe_relative_path as safe_relative_path  # re-exported: spec's name for it

Command = str | list[str]

MAX_TOTAL_FRAMES = 10_000_000  # ~3.8 days at 30 fps; beyond this a job file is almost surely a typo
MAX_CHUNKS = 100_000
MAX_DIMENSION = 16_384
MAX_FPS = 1_000.0
FFMPEG_PLACEHOLDER = "{ffmpeg}"
DEFAULT_CHUNK_OUTPUT = "chunks/{chunk_id:05d}.mp4"
DEFAULT_AUDIO_OUTPUT = "audio.m4a"
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

CHUNK_PLACEHOLDERS = frozenset(
    {"start_frame", "end_frame", "last_frame", "frame_count", "chunk_id", "output", "ffmpeg", "width",
     "height", "fps", "total_frames", "start_time", "duration"}
)
AUDIO_PLACEHOLDERS = frozenset({"output", "ffmpeg", "width", "height", "fps", "total_frames", "duration"})


class _SpecModel(BaseModel):
    """Frozen, strict-about-unknown-fields models whose validation errors are JobSpecErrors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise spec_error_from_validation(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise spec_error_from_validation(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise spec_error_from_validation(exc) from None


def split_command(command: Command) -> list[str]:
    """A command as an argv list: strings are split with shlex (never run through a shell)."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments ({exc}): {_short_repr(command)}") from None
    else:
        argv = list(command)
    if not argv or not argv[0]:
        raise ValueError("is empty")
    return argv


def _checked_command(command: Command) -> Command:
    split_command(command)
    return command


RelativePath = Annotated[str, AfterValidator(safe_relative_path)]
CheckedCommand = Annotated[Command, AfterValidator(_checked_command)]


class Chunk(_SpecModel):
    """One contiguous frame range rendered by one worker call.

    ``end_frame`` is exclusive: the chunk covers ``start_frame .. end_frame - 1``.
    """

    id: int = Field(ge=0)
    start_frame: int = Field(ge=0)
    frame_count: int = Field(gt=0)
    output_file: RelativePath
    command: CheckedCommand

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frame_count


class RenderMetadata(_SpecModel):
    """What the whole video is: frame count, rate and size. ``duration`` defaults to frames / fps."""

    total_frames: int = Field(gt=0, le=MAX_TOTAL_FRAMES)
    fps: float = Field(gt=0, le=MAX_FPS)
    width: int = Field(gt=0, le=MAX_DIMENSION)
    height: int = Field(gt=0, le=MAX_DIMENSION)
    duration: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _duration_matches_frames(self) -> RenderMetadata:
        expected = self.total_frames / self.fps
        if self.duration is None:
            object.__setattr__(self, "duration", expected)
        elif abs(self.duration - expected) > 1 / self.fps:
            raise ValueError(
                f"metadata.duration: {self.duration} s does not match total_frames / fps = {expected:.3f} s"
            )
        return self


class AudioTrack(_SpecModel):
    """One audio track rendered in a single pass and muxed in at stitch time."""

    command: CheckedCommand
    output_file: RelativePath = DEFAULT_AUDIO_OUTPUT


def new_job_id(prefix: str = "job") -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in prefix).strip("-_")[:48] or "job"
    return f"{stem}-{uuid.uuid4().hex[:8]}"


class JobSpec(_SpecModel):
    """A fully planned job: metadata plus explicit chunks that tile ``0 .. total_frames`` exactly."""

    id: str = Field(default_factory=new_job_id, pattern=JOB_ID_PATTERN)
    metadata: RenderMetadata
    chunks: list[Chunk] = Field(min_length=1, max_length=MAX_CHUNKS)
    merge_command: Command | None = None
    assets_url: str | None = None
    audio: AudioTrack | None = None
    output: str | None = None

    @model_validator(mode="after")
    def _chunks_tile_the_video(self) -> JobSpec:
        check_chunks_tile(self.chunks, self.metadata.total_frames)
        outputs = {chunk.output_file for chunk in self.chunks}
        if self.audio is not None and self.audio.output_file in outputs:
            raise ValueError(f"audio.output_file: {self.audio.output_file!r} is also a chunk's output_file")
        return self

    def chunk(self, chunk_id: int) -> Chunk:
        for chunk in self.chunks:
            if chunk.id == chunk_id:
                return chunk
        raise KeyError(chunk_id)


def check_chunks_tile(chunks: list[Chunk], total_frames: int) -> None:
    """Raise ValueError naming the first chunk that duplicates, overlaps or leaves a gap."""
    seen_ids: dict[int, int] = {}
    seen_outputs: dict[str, int] = {}
    for index, chunk in enumerate(chunks):
        if chunk.id in seen_ids:
            raise ValueError(f"chunks[{index}].id: {chunk.id} duplicates chunks[{seen_ids[chunk.id]}].id")
        seen_ids[chunk.id] = index
        if chunk.output_file in seen_outputs:
            raise ValueError(
                f"chunks[{index}].output_file: {chunk.output_file!r} is also "
                f"chunks[{seen_outputs[chunk.output_file]}].output_file"
            )
        seen_outputs[chunk.output_file] = index
    order = sorted(range(len(chunks)), key=lambda i: chunks[i].start_frame)
    expected_start = 0
    previous: int | None = None
    for index in order:
        chunk = chunks[index]
        if chunk.start_frame > expected_start:
            raise ValueError(
                f"chunks[{index}].start_frame: {chunk.start_frame} leaves frames "
                f"{expected_start}-{chunk.start_frame - 1} uncovered"
            )
        if chunk.start_frame < expected_start and previous is not None:
            other = chunks[previous]
            raise ValueError(
                f"chunks[{index}].start_frame: {chunk.start_frame} overlaps chunk {other.id} "
                f"(frames {other.start_frame}-{other.end_frame - 1})"
            )
        expected_start = chunk.end_frame
        previous = index
    if expected_start != total_frames:
        raise ValueError(
            f"chunks: frame counts sum to {expected_start}, but metadata.total_frames is {total_frames}"
        )


class JobTemplate(_SpecModel):
    """The short form of a job file; :func:`plan_job` turns it into a JobSpec."""

    id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)
    width: int = Field(gt=0, le=MAX_DIMENSION)
    height: int = Field(gt=0, le=MAX_DIMENSION)
    fps: float = Field(gt=0, le=MAX_FPS)
    total_frames: int = Field(gt=0, le=MAX_TOTAL_FRAMES)
    frames_per_chunk: int | None = Field(default=None, gt=0)
    chunks: int | None = Field(default=None, gt=0, le=MAX_CHUNKS)
    command: Command
    chunk_output: str = DEFAULT_CHUNK_OUTPUT
    audio: Command | AudioTrack | None = None
    output: str | None = None
    merge_command: Command | None = None
    assets_url: str | None = None

    @model_validator(mode="after")
    def _one_way_to_split(self) -> JobTemplate:
        if (self.frames_per_chunk is None) == (self.chunks is None):
            raise ValueError("give exactly one of frames_per_chunk or chunks")
        if self.chunks is not None and self.chunks > self.total_frames:
            raise ValueError(f"chunks: {self.chunks} is more than total_frames ({self.total_frames})")
        if self.frames_per_chunk is not None and -(-self.total_frames // self.frames_per_chunk) > MAX_CHUNKS:
            raise ValueError(
                f"frames_per_chunk: {self.frames_per_chunk} makes more than {MAX_CHUNKS} chunks; use larger chunks"
            )
        return self


def frame_ranges(total_frames: int, *, frames_per_chunk: int | None = None, chunks: int | None = None
                 ) -> list[tuple[int, int]]:
    """(start_frame, frame_count) pairs covering ``total_frames``; a chunk count spreads frames evenly."""
    if frames_per_chunk is not None:
        return [(start, min(frames_per_chunk, total_frames - start))
                for start in range(0, total_frames, frames_per_chunk)]
    assert chunks is not None
    base, extra = divmod(total_frames, chunks)
    ranges, start = [], 0
    for index in range(chunks):
        count = base + (1 if index < extra else 0)
        ranges.append((start, count))
        start += count
    return ranges


def fill_placeholders(command: Command, values: Mapping[str, Any], *, field: str,
                      allowed: frozenset[str]) -> list[str]:
    """Split ``command`` first, then fill each argument, so a value can never add or split arguments.

    ``{ffmpeg}`` is left in place: the worker that runs the command substitutes its own binary.
    """
    try:
        arguments = split_command(command)
    except ValueError as exc:
        raise JobSpecError(f"{field}: {exc}") from None
    filled = []
    for argument in arguments:
        try:  # parsing raises too, on an unbalanced brace
            for _, name, _, _ in string.Formatter().parse(argument):
                if name is not None and name not in allowed:
                    known = ", ".join("{" + n + "}" for n in sorted(allowed))
                    raise JobSpecError(f"{field}: unknown placeholder {shown('{' + name + '}')}; known: {known}")
            filled.append(argument.format_map({**values, "ffmpeg": FFMPEG_PLACEHOLDER}))
        except JobSpecError:
            raise
        except (ValueError, IndexError, KeyError) as exc:
            raise JobSpecError(f"{field}: cannot fill {argument!r}: {shown(str(exc))}") from None
    return filled


def plan_job(source: JobTemplate | Mapping[str, Any], *, job_id: str | None = None,
             id_prefix: str = "job") -> JobSpec:
    """Expand a template into an explicit JobSpec with one Chunk per frame range."""
    template: JobTemplate = source if isinstance(source, JobTemplate) else JobTemplate.model_validate(dict(source))
    metadata = RenderMetadata(total_frames=template.total_frames, fps=template.fps,
                              width=template.width, height=template.height)
    shared = {"width": template.width, "height": template.height, "fps": _plain_number(template.fps),
              "total_frames": template.total_frames}
    chunks = []
    for chunk_id, (start, count) in enumerate(
        frame_ranges(template.total_frames, frames_per_chunk=template.frames_per_chunk, chunks=template.chunks)
    ):
        output = fill_placeholders(template.chunk_output, {"chunk_id": chunk_id}, field="chunk_output",
                                   allowed=frozenset({"chunk_id"}))
        values = {**shared, "chunk_id": chunk_id, "start_frame": start, "end_frame": start + count,
                  "last_frame": start + count - 1, "frame_count": count, "output": " ".join(output),
                  "start_time": _plain_number(start / template.fps),
                  "duration": _plain_number(count / template.fps)}
        argv = fill_placeholders(template.command, values, field="command", allowed=CHUNK_PLACEHOLDERS)
        chunks.append({"id": chunk_id, "start_frame": start, "frame_count": count,
                       "output_file": " ".join(output), "command": argv})
    audio = None
    if template.audio is not None:
        track = template.audio if isinstance(template.audio, AudioTrack) else AudioTrack(command=template.audio)
        values = {**shared, "output": track.output_file, "duration": _plain_number(metadata.duration or 0)}
        audio = {"command": fill_placeholders(track.command, values, field="audio.command",
                                              allowed=AUDIO_PLACEHOLDERS),
                 "output_file": track.output_file}
    return JobSpec.model_validate({
        "id": job_id or template.id or new_job_id(id_prefix),
        "metadata": metadata.model_dump(),
        "chunks": chunks,
        "merge_command": template.merge_command,
        "assets_url": template.assets_url,
        "audio": audio,
        "output": template.output,
    })


def _plain_number(value: float) -> int | float | str:
    """Render 30.0 as 30 and 29.97002997 as a short decimal, so commands read naturally."""
    if float(value).is_integer():
        return int(value)
    return f"{value:.6f}".rstrip("0").rstrip(".")


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


def spec_error_from_validation(exc: ValidationError) -> JobSpecError:
    """Pydantic's error list as one line: ``field.path: what is wrong (got value)``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    location = field_path(first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    kind = first.get("type", "")
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, JobSpecError) and inner.field:
        # A nested model (pydantic calls our __init__ for it) already named its own field.
        location = f"{location}.{inner.field}" if location else inner.field
        message = inner.detail
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif "input" in first and kind != "missing":
        message = f"{message} (got {_short_repr(first['input'])})"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    text = f"{location}: {message}{more}" if location else f"{message}{more}"
    return JobSpecError(text, field=location, detail=message)


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as one line: ``chunks[1].command``; a key with a line break is quoted."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in ("str", "int", "float")):
            continue  # union branch and validator names say nothing to a user
        else:
            text += f".{shown(str(part))}" if text else shown(str(part))
    return text


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
