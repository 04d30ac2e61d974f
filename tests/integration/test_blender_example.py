"""examples/blender: a real Blender render in chunks of two steps (render frames, encode them), run
as the README shows it, with Debian's blender package (`make test` installs it when missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framefarm.config import ffmpeg_path
from framefarm.stitch.probe import packets, probe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "blender"
SIZE = 64

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("blender") is None,
                                 reason="no blender on PATH (make test installs Debian's blender package)")]


def gray_frames(*inputs: str) -> list[bytes]:
    """Every frame of a video (or numbered images) as SIZE x SIZE 8-bit gray."""
    raw = subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", *inputs, "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True, timeout=120).stdout
    return [raw[i:i + SIZE * SIZE] for i in range(0, len(raw), SIZE * SIZE)]


def difference(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_the_blender_example_renders_every_frame_once_in_order(tmp_path):
    # GIVEN the example job file and its scene script, shipped to the chunks as assets
    output = tmp_path / "blender.mp4"
    # WHEN it renders locally: each chunk runs Blender for its frames, then ffmpeg
    result = subprocess.run([sys.executable, "-m", "framefarm", "render", str(EXAMPLE / "blender.yaml"),
                             "--assets", str(EXAMPLE), "-o", str(output), "--job-id", "blender"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "FRAMEFARM_HOME": str(tmp_path / "home")})
    # THEN the video has the scene's 8 frames at its size
    assert result.returncode == 0, result.stderr
    info = probe(output)
    assert (info.width, info.height) == (SIZE, SIZE)
    assert len(packets(output)) == 8
    # AND each frame of the video is the frame Blender rendered for that place, across the seam too:
    # Blender wrote frames 0-3 for chunk 0 and 4-7 for chunk 1 (-s {start_frame} -e {last_frame})
    rendered = tmp_path / "home" / "jobs" / "blender" / "frames"
    assert sorted(path.name for path in rendered.iterdir()) == [f"frame_{i:04d}.png" for i in range(8)]
    sources = gray_frames("-start_number", "0", "-i", str(rendered / "frame_%04d.png"))
    video = gray_frames("-i", str(output))
    assert len(sources) == len(video) == 8
    for index, frame in enumerate(video):
        nearest = min(range(8), key=lambda source: difference(frame, sources[source]))
        assert nearest == index, f"video frame {index} looks like rendered frame {nearest}"
