"""Planning: a job template (the short form of a job file) expanded into an explicit JobSpec, one
Chunk per frame range, with each command's placeholders filled argument by argument.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from framefarm.errors import JobSpecError, shown
from framefarm.spec.model import (
    JOB_ID_PATTERN,
    MAX_CHUNKS,
    MAX_DIMENSION,
    MAX_FPS,
    MAX_PRIORITY,
    MAX_TOTAL_FRAMES,
    AudioTrack,
    Budget,
    Command,
    Inputs,
    JobSpec,
    Notify,
    RenderMetadata,
    SpecModel,
    Steps,
    TemplateCommand,
    new_job_id,
    split_command,
)

FFMPEG_PLACEHOLDER = "{ffmpeg}"
INPUT_NAME = re.compile(r"input\.[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_CHUNK_OUTPUT = "chunks/{chunk_id:05d}.mp4"

CHUNK_PLACEHOLDERS = frozenset(
    {"start_frame", "end_frame", "last_frame", "frame_count", "chunk_id", "output", "ffmpeg", "width",
     "height", "fps", "total_frames", "start_time", "duration", "input.NAME"}
)
AUDIO_PLACEHOLDERS = frozenset({"output", "ffmpeg", "width", "height", "fps", "total_frames", "duration",
                                "input.NAME"})


class _KeptInputs:
    """``{input.NAME}`` stays in place, for the worker that runs the command to fill (``framefarm.inputs``)."""

    def __getattr__(self, name: str) -> str:
        return "{input." + name + "}"


class JobTemplate(SpecModel):
    """The short form of a job file; :func:`plan_job` turns it into a JobSpec."""

    id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)
    width: int = Field(gt=0, le=MAX_DIMENSION)
    height: int = Field(gt=0, le=MAX_DIMENSION)
    fps: float = Field(gt=0, le=MAX_FPS)
    total_frames: int = Field(gt=0, le=MAX_TOTAL_FRAMES)
    frames_per_chunk: int | None = Field(default=None, gt=0)
    chunks: int | None = Field(default=None, gt=0, le=MAX_CHUNKS)
    command: TemplateCommand
    chunk_output: str = DEFAULT_CHUNK_OUTPUT
    audio: Command | AudioTrack | None = None
    output: str | None = None
    merge_command: Command | None = None
    assets_url: str | None = None
    budget: Budget | None = None
    priority: float = Field(default=1.0, gt=0, le=MAX_PRIORITY)
    notify: Notify | None = None
    inputs: Inputs = None

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

    ``{ffmpeg}`` and ``{input.NAME}`` are left in place: the worker that runs the command substitutes its
    own binary and its own way to read the input (whether NAME is an input, JobSpec checks).
    """
    try:
        arguments = split_command(command)
    except ValueError as exc:
        raise JobSpecError(f"{field}: {exc}") from None
    filled = []
    for argument in arguments:
        try:  # parsing raises too, on an unbalanced brace
            for _, name, _, _ in string.Formatter().parse(argument):
                if name is not None and "input.NAME" in allowed and INPUT_NAME.fullmatch(name):
                    continue
                if name is not None and name not in allowed:
                    known = ", ".join("{" + n + "}" for n in sorted(allowed))
                    raise JobSpecError(f"{field}: unknown placeholder {shown('{' + name + '}')}; known: {known}")
            filled.append(argument.format_map({**values, "ffmpeg": FFMPEG_PLACEHOLDER, "input": _KeptInputs()}))
        except JobSpecError:
            raise
        except (ValueError, IndexError, KeyError) as exc:
            raise JobSpecError(f"{field}: cannot fill {argument!r}: {shown(str(exc))}") from None
    return filled


def fill_chunk_command(command: Command | Steps, values: Mapping[str, Any]) -> list[str] | dict[str, Any]:
    """A chunk's command filled for one chunk: an argv list, or ``{"steps": [argv, ...]}``."""
    if isinstance(command, Steps):
        return {"steps": [fill_placeholders(step, values, field=f"command.steps[{index}]",
                                            allowed=CHUNK_PLACEHOLDERS)
                          for index, step in enumerate(command.steps)]}
    return fill_placeholders(command, values, field="command", allowed=CHUNK_PLACEHOLDERS)


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
        chunks.append({"id": chunk_id, "start_frame": start, "frame_count": count,
                       "output_file": " ".join(output), "command": fill_chunk_command(template.command, values)})
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
        "budget": template.budget.model_dump() if template.budget else None,
        "priority": template.priority,
        "notify": template.notify,
        "inputs": template.inputs,
    })


def select_frames(spec: JobSpec, first: int, last: int) -> JobSpec:
    """The part of ``spec`` that renders frames ``first .. last`` (inclusive): only the chunks covering
    them, whole, as a job of its own (same id, chunk ids, frames and commands; ``first_frame`` says where
    it starts). Its video holds just those chunks, so it has no audio track (the track covers the
    whole video). JobSpecError when the range ends before it starts or leaves the job's frames.
    E.g. ``select_frames(spec, 200, 400)`` of 150-frame chunks: chunks 1 and 2, frames 150-449.
    """
    end = spec.first_frame + spec.metadata.total_frames - 1
    if last < first:
        raise JobSpecError(f"frames: {first}-{last} ends before it starts; give A-B with A <= B")
    if first < spec.first_frame or last > end:
        raise JobSpecError(f"frames: {first}-{last} is outside job {spec.id}'s frames {spec.first_frame}-{end}")
    chunks = sorted((chunk for chunk in spec.chunks if chunk.start_frame <= last and chunk.end_frame > first),
                    key=lambda chunk: chunk.start_frame)
    metadata = {**spec.metadata.model_dump(), "total_frames": sum(chunk.frame_count for chunk in chunks),
                "duration": None}
    return JobSpec.model_validate({**spec.model_dump(), "metadata": metadata, "audio": None,
                                   "chunks": [chunk.model_dump() for chunk in chunks],
                                   "first_frame": chunks[0].start_frame})


def _plain_number(value: float) -> int | float | str:
    """Render 30.0 as 30 and 29.97002997 as a short decimal, so commands read naturally."""
    if float(value).is_integer():
        return int(value)
    return f"{value:.6f}".rstrip("0").rstrip(".")

