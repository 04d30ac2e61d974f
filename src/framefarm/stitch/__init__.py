"""Joining chunk videos into the final file, and reading what media files hold."""

from framefarm.stitch.ffmpeg import FfmpegStitcher
from framefarm.stitch.probe import MediaInfo, probe

__all__ = ["FfmpegStitcher", "MediaInfo", "probe"]
