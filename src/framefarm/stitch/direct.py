"""The direct join: chunks the MP4 join can take are joined by it (``stitch.mp4``), not by ffmpeg.

Whether it can is settled before a byte is written: every chunk's join key, from its media record
or, for a chunk without one, from the chunk itself once it has landed, must be the same, and the
audio track (if any) must be in an MP4 too (``audio.m4a``, the default). Then the chunks are joined
in order as they land, each checked against its record as it is opened; one that differs stops the join with an error
naming it (nothing of the job is lost: its chunks stay where they are), as does a chunk or an audio
track cut short, which ffmpeg could not join either. When the join cannot take the chunks, ``join`` returns None having
written nothing, and ffmpeg's concat joins them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from framefarm.errors import StitchError
from framefarm.stitch.arriving import Arriving
from framefarm.stitch.mp4.boxes import Mp4Error, Truncated
from framefarm.stitch.mp4.join import Mp4Join, index_reserve
from framefarm.stitch.mp4.source import Mp4Source
from framefarm.stitch.mp4.tables import NotJoinable
from framefarm.storage.growing import UploadWhenWritten

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Plan:
    keys: list[str]
    frames: int
    audio: Mp4Source | None


def join(arriving: Arriving, frames: Sequence[int | None], output: Path, audio: Path | None, *,
         upload: UploadWhenWritten | None = None) -> Path | None:
    """Join ``arriving``'s chunks into ``output`` (atomically) with the MP4 join; None when it cannot
    take them (nothing written, ``upload`` not started). ``frames``: each chunk's frame count from
    its record, None where it has none."""
    plan = _plan(arriving, frames, audio)
    if plan is None:
        return None
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    written = False
    try:
        with Mp4Join(partial, reserve=index_reserve(plan.frames, plan.audio.track if plan.audio else None),
                     audio=plan.audio) as joined:
            for index in range(len(arriving.paths)):
                with _opened(arriving, index, plan.keys[index]) as source:
                    if index == 0:
                        settled = joined.start(source)
                        if upload is not None:
                            upload.start(partial, settled)
                    joined.add(source)
                arriving.release(index)
            joined.finish()
        if not joined.index_in_front:
            logger.warning("%s: the index did not fit the space reserved for it and follows the media data",
                           output.name)
        written = True
    except OSError as exc:
        raise StitchError(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        if plan.audio is not None:
            plan.audio.close()
        try:
            if upload is not None:
                upload.finish(written=written)
        except BaseException:
            written = False  # the upload failed: no output, as when ffmpeg's concat joins
            raise
        finally:
            if not written:
                partial.unlink(missing_ok=True)
    os.replace(partial, output)
    return output


def _opened(arriving: Arriving, index: int, key: str) -> Mp4Source:
    path = arriving.wait(index)
    try:
        source = Mp4Source.open(path, b"vide")
    except (NotJoinable, Mp4Error) as exc:
        raise _cannot_join(path, exc) from None
    if source.join_key() != key:
        source.close()
        raise StitchError(f"chunk {path.name} is not what its media record says (another sample description, "
                          "timescale or edit): not joined")
    return source


def _plan(arriving: Arriving, frames: Sequence[int | None], audio: Path | None) -> _Plan | None:
    keys = [record.join_key if record is not None else None for record in arriving.records]
    counts = list(frames)
    for index in [index for index, key in enumerate(keys) if key is None or counts[index] is None]:
        try:  # a chunk without a record with a key: its own file says, once it has landed
            with Mp4Source.open(arriving.wait(index), b"vide", read_samples=False) as source:
                keys[index], counts[index] = source.join_key(), len(source.track.sizes)
        except Truncated as exc:  # no join can take it: say which chunk, rather than leave it to ffmpeg
            raise _cannot_join(arriving.paths[index], exc) from None
        except (NotJoinable, Mp4Error, OSError) as exc:
            _not_joined(f"chunk {arriving.paths[index].name}: {exc}")
            return None
    unjoinable = _first_unjoinable([str(key) for key in keys])
    if unjoinable is not None:
        _not_joined(f"chunk {arriving.paths[unjoinable].name}'s video ({keys[unjoinable]}) cannot follow "
                    f"the chunk before it ({keys[unjoinable - 1]})" if unjoinable else
                    f"chunk {arriving.paths[0].name}'s join key is of another version ({keys[0]})")
        return None
    track = None
    if audio is not None:
        track = _audio_source(audio)
        if track is None:
            return None
    return _Plan(keys=[str(key) for key in keys], frames=sum(int(count or 0) for count in counts), audio=track)


def _first_unjoinable(keys: Sequence[str]) -> int | None:
    """The first chunk whose key is not like the first's (``mp4.source.Mp4Source.join_key``), or whose
    media starts later (its shift) than the chunk before's."""
    parsed = [_parsed(key) for key in keys]
    for index, found in enumerate(parsed):
        before = parsed[index - 1] if index else found
        if found is None or before is None or found[0] != before[0] or found[1] > before[1]:
            return index
    return None


def _parsed(key: str) -> tuple[str, int] | None:
    """(what must be equal, shift) of a join key; None for a key of another form (another version's)."""
    base, _, shift = key.rpartition(":")
    return (base, int(shift)) if base.count(":") == 2 and shift.isdigit() else None


def _audio_source(audio: Path) -> Mp4Source | None:
    """The audio track's first audio stream when it is in an MP4 (``audio.m4a``, the default): its
    packets as they are. Any other file goes to ffmpeg, which puts its packets into the output."""
    try:
        return Mp4Source.open(audio, b"soun")
    except Truncated as exc:
        raise StitchError(f"the audio track {audio.name} cannot be joined: {exc}") from None
    except (NotJoinable, Mp4Error) as exc:
        _not_joined(f"the audio track {audio.name}: {exc}")
        return None


def _cannot_join(path: Path, why: Exception) -> StitchError:
    return StitchError(f"chunk {path.name} cannot be joined: {why}")


def _not_joined(why: str) -> None:
    logger.info("joining with ffmpeg's concat: %s", why)


__all__ = ["join"]
