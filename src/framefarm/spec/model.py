"""The job model: what a render job is once planned (JobSpec, Chunk, RenderMetadata, AudioTrack), the
checks every field passes (safe relative paths, commands split without a shell, chunks that tile the
video), and the base model that turns pydantic's errors into one-line JobSpecErrors.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from framefarm.errors import JobSpecError
from framefarm.paths import safe_relative_path as safe_relative_path  # re-exported: spec's name for it
from framefarm.validation import first_problem, one_line, short_repr

Command = str | list[str]

MAX_TOTAL_FRAMES = 10_000_000  # ~3.8 days at 30 fps; beyond this a job file is almost surely a typo
MAX_CHUNKS = 100_000
MAX_DIMENSION = 16_384
MAX_FPS = 1_000.0
MAX_STEPS = 64  # commands in one chunk; a render, an encode and a few moves fit many times over
MAX_PRIORITY = 1_000.0  # a weight in the shared budget; beyond this one job would starve every other
DEFAULT_AUDIO_OUTPUT = "audio.m4a"
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# ``{input.NAME}`` in a command: filled by the worker that runs it (``framefarm.inputs``), like ``{ffmpeg}``
INPUT_PLACEHOLDER = re.compile(r"\{input\.([^{}]*)\}")



class SpecModel(BaseModel):
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
            raise ValueError(f"cannot be split into arguments ({exc}): {short_repr(command)}") from None
    else:
        argv = list(command)
    if not argv or not argv[0]:
        raise ValueError("is empty")
    return argv


def _checked_command(command: Command) -> Command:
    split_command(command)
    return command


def _checked_inputs(inputs: dict[str, str] | None) -> dict[str, str] | None:
    for name, location in (inputs or {}).items():
        if re.fullmatch(INPUT_NAME_PATTERN, name) is None:
            raise ValueError(f"inputs: {short_repr(name)} is not a name (letters, digits and _, not first a digit)")
        if not location.strip() or len(location) > 2048:
            raise ValueError(f"inputs.{name}: give a path or a URL of at most 2048 characters")
    return inputs


RelativePath = Annotated[str, AfterValidator(safe_relative_path)]
CheckedCommand = Annotated[Command, AfterValidator(_checked_command)]
#: Source media the commands read, ``{NAME: path or URL}``; see ``framefarm.inputs``.
Inputs = Annotated[dict[str, str] | None, AfterValidator(_checked_inputs)]


class Steps(SpecModel):
    """Several commands that make one chunk, run in order in its directory as one attempt: the first
    that fails ends it. In a job document, ``command: {steps: [COMMAND, ...]}``, each COMMAND a string
    (split with shlex) or an argv list."""

    steps: list[CheckedCommand] = Field(min_length=1, max_length=MAX_STEPS)


def _one_command_or_steps(value: Any) -> Any:
    """Tell one argv list from several commands before pydantic picks a type: a list holding lists is
    a list of commands written where one argv list goes."""
    if isinstance(value, list) and any(isinstance(item, list) for item in value):
        raise ValueError("is a list of lists; several commands go under steps: command: {steps: [...]}")
    if isinstance(value, Mapping):
        if set(value) != {"steps"}:
            raise ValueError(f"a mapping here takes only steps (several commands), got {short_repr(list(value))}")
        return Steps.model_validate(dict(value))  # its own errors name steps[i]
    if not isinstance(value, (str, list, Steps)):
        raise ValueError(f"expected a string, an argv list or {{steps: [...]}}, got {short_repr(value)}")
    return value


def command_steps(command: Command | Steps) -> list[list[str]]:
    """A chunk's command as the argv lists it runs, in order (one for a single command)."""
    if isinstance(command, Steps):
        return [split_command(step) for step in command.steps]
    return [split_command(command)]


def _checked_chunk_command(command: Command | Steps) -> Command | Steps:
    command_steps(command)
    return command


ChunkCommand = Annotated[str | list[str] | Steps, BeforeValidator(_one_command_or_steps),
                         AfterValidator(_checked_chunk_command)]
"""What a chunk runs: one command (a string or an argv list), or several (``Steps``)."""


def _written_as_one_argv(value: Any) -> Any:
    """In a template, a list of strings whose first has spaces (``["render a", "encode b"]``) is several
    commands written as one argv list. Only there: planning splits a quoted program with spaces
    (``"'/opt/My Tools/render' x"``) into an argv list a planned chunk must keep."""
    if isinstance(value, list) and value and isinstance(value[0], str) and len(value[0].split()) > 1:
        raise ValueError(f"{short_repr(value[0])} is the program of one argv list but has spaces: for several "
                         "commands write command: {steps: [...]}; for one, a string, or the program alone first")
    return value


TemplateCommand = Annotated[ChunkCommand, BeforeValidator(_written_as_one_argv)]
"""A job template's ``command``: a ChunkCommand, refusing a list of commands written as one argv list."""


class Chunk(SpecModel):
    """One contiguous frame range rendered by one worker call.

    ``end_frame`` is exclusive: the chunk covers ``start_frame .. end_frame - 1``.
    """

    id: int = Field(ge=0)
    start_frame: int = Field(ge=0)
    frame_count: int = Field(gt=0)
    output_file: RelativePath
    command: ChunkCommand

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frame_count


class RenderMetadata(SpecModel):
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


class AudioTrack(SpecModel):
    """One audio track rendered in a single pass and muxed in at stitch time."""

    command: CheckedCommand
    output_file: RelativePath = DEFAULT_AUDIO_OUTPUT


class Budget(SpecModel):
    """A job's spending cap (``budget: {max_cost: USD}`` in a job file): no chunk starts once the cost
    so far plus the expected cost of the chunks in flight would pass it (see ``framefarm.budget``)."""

    max_cost: float = Field(gt=0, allow_inf_nan=False)


def _webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in url):
        raise ValueError(f"expected an http:// or https:// URL, got {short_repr(url)}")
    return url


WebhookUrl = Annotated[str, Field(max_length=2048), AfterValidator(_webhook_url)]


class Notify(SpecModel):
    """Who hears about the job: ``webhook`` gets a signed POST when the job ends (completed, failed,
    cancelled, paused, rendered) and, with ``chunk_failures``, when a chunk fails for good."""

    webhook: WebhookUrl | None = None
    chunk_failures: bool = False


def new_job_id(prefix: str = "job") -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in prefix).strip("-_")[:48] or "job"
    return f"{stem}-{uuid.uuid4().hex[:8]}"


class JobSpec(SpecModel):
    """A fully planned job: metadata plus explicit chunks that tile ``first_frame .. first_frame +
    total_frames`` exactly (``first_frame`` is 0 unless the job renders part of a longer video:
    ``select_frames``)."""

    id: str = Field(default_factory=new_job_id, pattern=JOB_ID_PATTERN)
    metadata: RenderMetadata
    chunks: list[Chunk] = Field(min_length=1, max_length=MAX_CHUNKS)
    merge_command: Command | None = None
    assets_url: str | None = None
    audio: AudioTrack | None = None
    output: str | None = None
    first_frame: int = Field(default=0, ge=0)
    budget: Budget | None = None
    # its weight in the fair share of a store's concurrency budget (framefarm.concurrency): 2 gets twice 1's
    priority: float = Field(default=1.0, gt=0, le=MAX_PRIORITY)
    notify: Notify | None = None
    inputs: Inputs = None

    @model_validator(mode="after")
    def _chunks_tile_the_video(self) -> JobSpec:
        check_chunks_tile(self.chunks, self.metadata.total_frames, first_frame=self.first_frame)
        outputs = {chunk.output_file for chunk in self.chunks}
        if self.audio is not None and self.audio.output_file in outputs:
            raise ValueError(f"audio.output_file: {self.audio.output_file!r} is also a chunk's output_file")
        commands = [(f"chunks[{index}].command", chunk.command) for index, chunk in enumerate(self.chunks)]
        if self.audio is not None:
            commands.append(("audio.command", self.audio.command))
        for field, command in commands:
            check_input_names(command, self.inputs, field=field)
        return self

    def chunk(self, chunk_id: int) -> Chunk:
        for chunk in self.chunks:
            if chunk.id == chunk_id:
                return chunk
        raise KeyError(chunk_id)


def check_input_names(command: Command | Steps, inputs: dict[str, str] | None, *, field: str) -> None:
    """ValueError when ``command`` (any of its steps) names an ``{input.NAME}`` that ``inputs`` does not have."""
    text = _command_text(command)  # no split: 100,000 chunks pass here
    for name in INPUT_PLACEHOLDER.findall(text):
        if name not in (inputs or {}):
            known = ", ".join(sorted(inputs or {})) or "none"
            raise ValueError(f"{field}: {{input.{name}}} names no input (inputs: {known})")


def _command_text(command: Command | Steps) -> str:
    if isinstance(command, Steps):
        return "\n".join(_command_text(step) for step in command.steps)
    return command if isinstance(command, str) else "\n".join(command)


def check_chunks_tile(chunks: list[Chunk], total_frames: int, *, first_frame: int = 0) -> None:
    """Raise ValueError naming the first chunk that duplicates, overlaps or leaves a gap in
    ``first_frame .. first_frame + total_frames``."""
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
    expected_start = first_frame
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
    if expected_start != first_frame + total_frames:
        raise ValueError(
            f"chunks: frame counts sum to {expected_start - first_frame}, but metadata.total_frames is {total_frames}"
        )


def spec_error_from_validation(exc: ValidationError) -> JobSpecError:
    """Pydantic's error list as one line: ``field.path: what is wrong (got value)``."""
    problem = first_problem(exc)
    return JobSpecError(one_line(exc), field=problem.field, detail=problem.detail)
