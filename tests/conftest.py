from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from framefarm.config import ffmpeg_path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the developer's ./.framefarm."""
    monkeypatch.setenv("FRAMEFARM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FRAMEFARM_FFMPEG", raising=False)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return ffmpeg_path()


@pytest.fixture(scope="session")
def encode_chunk(ffmpeg: str):
    """Encode a small video-only test-pattern chunk: encode_chunk(path, start, count, size=..., fps=...)."""

    def encode(path: Path, start: int = 0, count: int = 10, *, size: str = "160x120", fps: int = 10,
               codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size={size}:rate={fps}",
             "-vf", f"trim=start_frame={start}:end_frame={start + count},setpts=PTS-STARTPTS",
             "-an", "-c:v", codec, "-pix_fmt", pix_fmt, str(path)],
            check=True)
        return path

    return encode
