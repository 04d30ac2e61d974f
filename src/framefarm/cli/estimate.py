"""``framefarm estimate``: what a job file will cost and how long it will take, before it runs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from framefarm.cli.as_json import emit
from framefarm.cli.context import EXIT_OK, Context, add_store_flags
from framefarm.cli.flags import positive_int
from framefarm.cli.settings import BACKENDS
from framefarm.estimate import estimate


def register(commands: Any) -> None:
    command = commands.add_parser("estimate", help="expected cost and wall time of a job file, from chunks that "
                                                   "ran before or one sample chunk rendered now")
    command.add_argument("jobfile", type=Path)
    command.add_argument("--backend", choices=BACKENDS, help="where the job would run (as for render)")
    command.add_argument("--function", help="with --backend lambda: the render-chunk function's name")
    command.add_argument("--service", help="with --backend cloudrun: the service URL or name")
    command.add_argument("--concurrency", type=positive_int, help="chunks in flight (default: the backend's)")
    command.add_argument("--sample", action="store_true",
                         help="render a sample chunk now even when chunks of this job ran before")
    command.add_argument("--assets", type=Path, help="the directory the commands read, for the sample chunk")
    command.add_argument("--json", action="store_true", help="one JSON document on stdout (docs/cli-json.md)")
    add_store_flags(command)
    command.set_defaults(handler=cmd_estimate)


def cmd_estimate(args: argparse.Namespace, context: Context) -> int:
    backend = context.backend(args.backend, function=args.function, service=args.service, run_here=True)
    context.err.print(f"estimating {args.jobfile} on {backend.name}", highlight=False, soft_wrap=True)
    guess = estimate(args.jobfile, backend=backend, concurrency=args.concurrency, sample=args.sample,
                     assets=args.assets)
    if args.json:
        emit(context.out, "estimate", estimate={**dataclasses.asdict(guess), "sources": list(guess.sources)})
        return EXIT_OK
    basis = (f"from a sample chunk just rendered ({guess.sources[0]})" if guess.basis == "sample" else
             f"from {guess.samples} chunk{'s' if guess.samples != 1 else ''} of {', '.join(guess.sources)} "
             "that ran before")
    cost = (f"expected cost ${guess.cost_usd:.6f} (${guess.cost_usd / guess.chunks:.6f} a chunk)"
            if guess.cost_usd is not None else f"no cost (the {backend.name} backend reports none)")
    context.out.print(f"{guess.job_id}: {guess.chunks} chunks, {guess.frames} frames; {basis}\n"
                      f"{cost}; wall time {guess.wall_s:.1f} s at concurrency {guess.concurrency} "
                      f"({guess.work_s:.1f} s of chunk work)", highlight=False, soft_wrap=True)
    return EXIT_OK
