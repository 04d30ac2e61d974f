"""A chunk command that misbehaves on cue: ``python faulty_chunk.py PLAN_DIR CHUNK_ID OUTPUT``.

PLAN_DIR/plan.json maps a chunk id to what its attempts do, in order (later attempts: "ok"):
ok (write the output), exit1, slow (sleep 60 s), no-output (exit 0, write nothing), killed (SIGKILL
itself). Every call appends a line to PLAN_DIR/calls-CHUNK_ID, so tests count real runs.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

plan_dir, chunk_id, output = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(plan_dir / f"calls-{chunk_id}", "a") as ledger:
    ledger.write("call\n")
attempt = len((plan_dir / f"calls-{chunk_id}").read_text().splitlines())
steps = json.loads((plan_dir / "plan.json").read_text()).get(chunk_id, [])
step = steps[attempt - 1] if attempt <= len(steps) else "ok"
if step == "exit1":
    print(f"render error in chunk {chunk_id}", file=sys.stderr)
    sys.exit(1)
if step == "slow":
    time.sleep(60)
if step == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if step != "no-output":
    Path(output).write_text(f"chunk {chunk_id}\n")
print(f"rendered chunk {chunk_id} (attempt {attempt})")
