"""Chunked transcode vs one ffmpeg pass of the same transcode, and what each chunk reads from S3.

The source is generated: testsrc2 (its frame counter burned in) with a sine track, a keyframe every
second. One pass: ``ffmpeg -i SRC`` with the same encoder settings, audio copied. Chunked:
``ff.transcode`` on local workers (``--chunks``, ``--concurrency``), stitched with the audio, seams
not checked (that is a separate decode). Then, unless ``--no-lambda``, the same transcode on
devcloud's Lambda with the source in moto's S3, one chunk at a time behind a relay that counts the
bytes S3 sends for each chunk. Prints times, the ratio, and bytes read per chunk / source size.

    python bench/transcode.py [--seconds 20] [--size 1920x1080] [--chunks 6] [--preset ultrafast] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import framefarm as ff
from framefarm.config import ffmpeg_path
from framefarm.transcode.plan import encoder_arguments


def make_source(path: Path, seconds: int, size: str, rate: int) -> None:
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", str(rate), "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-movflags", "+faststart", str(path)], check=True)


def one_pass(source: Path, output: Path, codec: str, crf: float, preset: str) -> float:
    started = time.perf_counter()
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-map", "0:v:0",
                    "-map", "0:a:0", *encoder_arguments(codec, crf, preset), "-c:a", "copy", "-movflags",
                    "+faststart", str(output)], check=True)
    return time.perf_counter() - started


def chunked(source: Path, output: Path, home: Path, args: argparse.Namespace, run: int) -> float:
    started = time.perf_counter()
    ff.transcode(source, output, chunks=args.chunks, codec=args.codec, crf=args.crf, preset=args.preset,
                 backend=ff.Local(home=home), concurrency=args.concurrency, job_id=f"bench-{run}")
    return time.perf_counter() - started


def bytes_per_chunk(source: Path, scratch: Path, args: argparse.Namespace) -> list[int]:
    """Bytes S3 sent for each chunk of the same transcode on devcloud's Lambda, one chunk at a time."""
    from framefarm.devcloud import LocalAwsStack
    from framefarm.devcloud.byte_counter import CountingRelay

    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log, one line per request
    with LocalAwsStack(worker_timeout=600) as stack:
        moto_port = int(stack.env["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
        with CountingRelay(moto_port) as relay:
            os.environ["AWS_ENDPOINT_URL_S3"] = relay.endpoint  # the function instances start from it
            backend = ff.Lambda(table=stack.table, bucket=stack.bucket, function="framefarm-render-chunk",
                                run_here=True)
            ff.transcode(source, scratch / "lambda.mp4", chunks=args.chunks, codec=args.codec, crf=args.crf,
                         preset=args.preset, backend=backend, concurrency=1, job_id="bench-lambda")
            reads = [c for c in relay.connections()
                     if c.request_line.startswith("GET ") and "/jobs/bench-lambda/inputs/" in c.request_line]
            records = ff.attach("bench-lambda", backend=backend).status().chunks
    return [sum(c.bytes_down for c in reads if r.started_at is not None and r.finished_at is not None
                and r.started_at <= c.opened_at <= r.finished_at) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--rate", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--crf", type=float, default=23)
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-lambda", action="store_true", help="skip the bytes-per-chunk run on devcloud")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        source = scratch / "source.mp4"
        make_source(source, args.seconds, args.size, args.rate)
        size = source.stat().st_size
        print(f"source: {args.seconds} s {args.size} at {args.rate} fps, {size / 1e6:.1f} MB; {args.codec} crf "
              f"{args.crf:g} preset {args.preset}; {args.chunks} chunks, {args.concurrency} at once, "
              f"{os.cpu_count()} cores")
        singles, chunks = [], []
        for run in range(args.runs):
            singles.append(one_pass(source, scratch / "single.mp4", args.codec, args.crf, args.preset))
            chunks.append(chunked(source, scratch / "chunked.mp4", scratch / "home", args, run))
        print(f"one ffmpeg pass: {min(singles):.2f}-{max(singles):.2f} s (median {statistics.median(singles):.2f})")
        print(f"chunked:         {min(chunks):.2f}-{max(chunks):.2f} s (median {statistics.median(chunks):.2f})")
        print(f"ratio chunked / one pass: {statistics.median(chunks) / statistics.median(singles):.2f}x "
              f"(runs: {', '.join(f'{c / s:.2f}' for c, s in zip(chunks, singles, strict=True))})")
        if not args.no_lambda:
            read = bytes_per_chunk(source, scratch, args)
            shares = ", ".join(f"{value / size:.3f}" for value in read)
            print(f"bytes read per chunk on Lambda (S3, by byte ranges) / source size: {shares}; "
                  f"1/N = {1 / args.chunks:.3f}, target < 2/N = {2 / args.chunks:.3f}; "
                  f"all chunks together {sum(read) / size:.2f}x the file")


if __name__ == "__main__":
    main()
