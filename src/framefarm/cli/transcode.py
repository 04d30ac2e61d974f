"""``framefarm transcode SRC -o OUT``: an existing video re-encoded in parallel chunks, frame-exact."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from framefarm.api import check_output, submit
from framefarm.cancel import CancelToken
from framefarm.cli.context import EXIT_FAILED, EXIT_OK, Context, add_store_flags
from framefarm.cli.flags import add_run_flags, positive_int
from framefarm.cli.run import follow, retry_policy
from framefarm.cli.settings import BACKENDS
from framefarm.cli.signals import cancel_on_interrupt
from framefarm.console import RenderProgress
from framefarm.errors import JobSpecError
from framefarm.transcode import plan_transcode, seam_frames, verify_seams


def register(commands: Any) -> None:
    parser = commands.add_parser("transcode", help="re-encode a video in parallel chunks of frames, frame-exact, "
                                                   "its audio taken once")
    parser.add_argument("source", type=Path, help="the video to transcode (a local file)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the transcoded video")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--chunks", type=positive_int, help="this many chunks of even length (default: as many "
                                                           "as run at once, each at least a second)")
    split.add_argument("--seconds", type=float, help="chunks of this many seconds of video")
    parser.add_argument("--codec", default="libx264", help="ffmpeg's video encoder (default libx264)")
    parser.add_argument("--crf", type=float, default=23, help="constant quality (default 23; 0: lossless with x264)")
    parser.add_argument("--preset", default="medium", help="x264/x265 preset (default medium)")
    parser.add_argument("--verify-seams", action="store_true",
                        help="then check the frames either side of every seam against the source's")
    parser.add_argument("--job-id", help="id for the new job (default: generated)")
    parser.add_argument("--backend", choices=BACKENDS, help="where chunks run (as for render)")
    parser.add_argument("--function", help="with --backend lambda: the render-chunk function's name")
    parser.add_argument("--service", help="with --backend cloudrun: the service URL or name")
    add_run_flags(parser)
    add_store_flags(parser)
    parser.set_defaults(handler=cmd_transcode)


def cmd_transcode(args: argparse.Namespace, context: Context) -> int:
    if args.verify_seams and args.no_stitch:
        raise JobSpecError("--verify-seams: checks the stitched video; drop --no-stitch")
    retry = retry_policy(args)
    backend = context.backend(context.settings.get("backend"), function=args.function, service=args.service,
                              run_here=True)
    output = check_output(args.output)
    info, spec = plan_transcode(args.source, output, backend=backend, concurrency=args.concurrency,
                                chunks=args.chunks, seconds=args.seconds, codec=args.codec, crf=args.crf,
                                preset=args.preset, job_id=args.job_id)
    progress = RenderProgress(context.err, spec.id, len(spec.chunks))
    token = CancelToken()
    with cancel_on_interrupt(lambda: token.cancel("cancelled")):
        handle = submit(spec, backend=backend, output=output, concurrency=args.concurrency, retry=retry,
                        chunk_timeout=args.timeout, hooks=progress, stitch=not args.no_stitch, cancel=token)
        context.err.print(f"job [bold]{spec.id}[/]: {info.frames} frames at {info.fps:g} fps in {len(spec.chunks)} "
                          f"chunks → {output}", soft_wrap=True)
        code = follow(handle, progress, context, stitch_note=args.no_stitch)
    if code != EXIT_OK or not args.verify_seams:
        return code
    report = verify_seams(info.path, output, seam_frames(spec))
    context.out.print(report.summary(), highlight=False, soft_wrap=True)
    return EXIT_OK if report.ok else EXIT_FAILED
