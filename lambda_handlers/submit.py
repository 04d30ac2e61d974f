"""Submit Lambda: validate a job, store it with its spec, start the orchestrator."""

from framefarm.aws.handlers import submit as handler

__all__ = ["handler"]
