"""Render-chunk Lambda: run one chunk and upload its output."""

from framefarm.aws.handlers import render_chunk as handler

__all__ = ["handler"]
