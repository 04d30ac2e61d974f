"""Where one attempt at a chunk writes, so that no earlier attempt's file can pass for its own.

A chunk command names its output (``{output}``, filled in with ``output_file`` when the job was
planned). For one attempt that name is pointed at a file of the attempt's own beside it
(``chunks/.00042.<token>.mp4``: the same directory, so the rename is atomic; the same suffix, so
ffmpeg picks the same muxer), which is renamed onto ``output_file`` only when the command exited 0
and left a non-empty file. A failed, killed or cancelled attempt's file is removed, and a partial
file never appears under the final name; a stub an earlier attempt left there is never looked at.

An attempt also removes the files of earlier attempts at its chunk that a killed runner could not
(they are never looked at, but would pile up in the job's directory).

A command that does not name its output (an explicit spec whose script writes it) cannot be
pointed elsewhere: its ``output_file`` is removed before the attempt instead, so a file left by an
earlier attempt still cannot pass for this one's.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import uuid
from pathlib import Path, PurePosixPath

# A path character next to the name means a different path that merely contains it ("old/x.mp4",
# "x.mp4.log"); quotes, "=", ":" and spaces do not ("--out=x.mp4", "open('x.mp4', 'w')").
_PATH_CHARS = r"\w./-"
_TOKEN = 12  # hex digits that make an attempt's file name its own


class ChunkOutput:
    """One attempt's output: ``prepare`` before the command runs, ``commit`` once it exited 0,
    ``discard`` always (it keeps only a committed output)."""

    def __init__(self, cwd: str | os.PathLike[str], output_file: str, steps: list[list[str]]) -> None:
        """``steps``: the argv of each command the attempt runs (the name is pointed wherever it appears)."""
        self.output_file = output_file
        self.final = os.path.join(cwd, output_file)
        name = PurePosixPath(output_file)
        own = str(name.with_name(f".{name.stem}.{uuid.uuid4().hex[:_TOKEN]}{name.suffix}"))
        pattern = re.compile(rf"(?<![{_PATH_CHARS}]){re.escape(output_file)}(?![{_PATH_CHARS}])")
        self.steps = [[pattern.sub(lambda _: own, argument) for argument in argv] for argv in steps]
        redirected = self.steps != steps
        self.written = os.path.join(cwd, own) if redirected else self.final
        self._committed = False
        if not redirected:
            _remove(self.final)
            return
        earlier = f".{glob.escape(name.stem)}.{'?' * _TOKEN}{glob.escape(name.suffix)}"
        for leftover in Path(self.final).parent.glob(earlier):
            _remove(str(leftover))

    def commit(self) -> str | None:
        """Put the attempt's file in place; why the chunk still failed (no file, or an empty one), else None."""
        if not os.path.isfile(self.written):
            return f"exit code 0 but no output at {self.output_file}"
        if os.path.getsize(self.written) == 0:
            return f"exit code 0 but an empty output at {self.output_file}"
        if self.written != self.final:
            os.replace(self.written, self.final)
        self._committed = True
        return None

    def discard(self) -> None:
        """Remove what an attempt that did not commit left behind."""
        if not self._committed:
            _remove(self.written)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
