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

The package holds three modules, each importable on its own; this one re-exports their names:

- ``model``: the planned job (JobSpec, Chunk, RenderMetadata, AudioTrack), safe paths, command splitting;
- ``planning``: a template (JobTemplate) expanded into a JobSpec (frame_ranges, fill_placeholders, plan_job);
- ``documents``: job files and parsed documents to a JobSpec (parse_job, load_job_file, read_job_document).
"""

from __future__ import annotations

from framefarm.spec.documents import load_job_file, parse_document, parse_job, read_job_document
from framefarm.spec.model import (
    DEFAULT_AUDIO_OUTPUT,
    JOB_ID_PATTERN,
    MAX_CHUNKS,
    MAX_DIMENSION,
    MAX_FPS,
    MAX_TOTAL_FRAMES,
    AudioTrack,
    Budget,
    CheckedCommand,
    Chunk,
    ChunkCommand,
    Command,
    JobSpec,
    Notify,
    RelativePath,
    RenderMetadata,
    Steps,
    check_chunks_tile,
    command_steps,
    new_job_id,
    safe_relative_path,
    spec_error_from_validation,
    split_command,
)
from framefarm.spec.planning import (
    AUDIO_PLACEHOLDERS,
    CHUNK_PLACEHOLDERS,
    DEFAULT_CHUNK_OUTPUT,
    FFMPEG_PLACEHOLDER,
    JobTemplate,
    fill_placeholders,
    frame_ranges,
    plan_job,
    select_frames,
)
from framefarm.validation import field_path

__all__ = [
    "AUDIO_PLACEHOLDERS",
    "CHUNK_PLACEHOLDERS",
    "DEFAULT_AUDIO_OUTPUT",
    "DEFAULT_CHUNK_OUTPUT",
    "FFMPEG_PLACEHOLDER",
    "JOB_ID_PATTERN",
    "MAX_CHUNKS",
    "MAX_DIMENSION",
    "MAX_FPS",
    "MAX_TOTAL_FRAMES",
    "AudioTrack",
    "Budget",
    "CheckedCommand",
    "Chunk",
    "ChunkCommand",
    "Command",
    "JobSpec",
    "JobTemplate",
    "Notify",
    "RelativePath",
    "RenderMetadata",
    "Steps",
    "check_chunks_tile",
    "command_steps",
    "field_path",
    "fill_placeholders",
    "frame_ranges",
    "load_job_file",
    "new_job_id",
    "parse_document",
    "parse_job",
    "plan_job",
    "read_job_document",
    "safe_relative_path",
    "select_frames",
    "spec_error_from_validation",
    "split_command",
]
