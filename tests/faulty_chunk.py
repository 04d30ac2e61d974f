"""A chunk command that misbehaves on cue: ``python faulty_chunk.py PLAN_DIR CHUNK_ID OUTPUT [FFMPEG SOURCE START END]``.

PLAN_DIR/plan.json maps a chunk id to what its attempts do, in order (later attempts: "ok"):
ok (write the output), exit1, slow (sleep 60 s), no-output (exit 0, write nothing), killed (SIGKILL
itself), stub-exit1 (write a 48-byte stub, exit 1), stub-hang (write a 48-byte stub, sleep 60 s).
Every call appends a line to PLAN_DIR/calls-CHUNK_ID, so tests count real runs.

Like ffmpeg without ``-y``, it never overwrites: when OUTPUT exists it says so and exits 0. With
FFMPEG, "ok" encodes frames START..END of the lavfi SOURCE into OUTPUT, a real video to stitch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

plan_dir, chunk_id, output = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(plan_dir / f"calls-{chunk_id}", "a") as ledger:
    ledger.write("call\n")
attempt = len((plan_dir / f"calls-{chunk_id}").read_text().splitlines())
steps = json.loads((plan_dir / "plan.json").read_text()).get(chunk_id, [])
step = steps[attempt - 1] if attempt <= len(steps) else "ok"
if os.path.exists(output):
    print(f"File '{output}' already exists. Exiting.", file=sys.stderr)
    sys.exit(0)
if step.startswith("stub-"):
    with open(output, "wb") as stub:
        stub.write(b"\0\0\0\x20ftypisom" + bytes(36))
    step = step.removeprefix("stub-")
if step == "exit1":
    print(f"render error in chunk {chunk_id}", file=sys.stderr)
    sys.exit(1)
if step in ("slow", "hang"):
    time.sleep(60)
if step == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if step != "no-output" and len(sys.argv) > 4:
    ffmpeg, source, start, end = sys.argv[4:8]
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", source,
                    "-vf", f"trim=start_frame={start}:end_frame={end},setpts=PTS-STARTPTS",
                    "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", output], check=True)
elif step != "no-output":
    Path(output).write_text(f"chunk {chunk_id}\n")
print(f"rendered chunk {chunk_id} (attempt {attempt})")
