"""Orchestrator Lambda: run a job on render-chunk workers, hand over before the deadline."""

from framefarm.aws.handlers import orchestrate as handler

__all__ = ["handler"]
