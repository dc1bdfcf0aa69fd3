"""Run a benchmark's child process on a given ``src``, optionally under callgrind.

Shared by the benches that count instructions (``bench_create_cpu.py``,
``bench_webhook_cpu.py``): the child prints one JSON line last; under callgrind its
instruction total (valgrind's ``refs:`` line on stderr) is added as ``instructions``.
Also the PostgreSQL backends' CPU (`postgres_backend_cpu`), read by ``bench_async.py``
and ``bench_create_cpu.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_child(
    script: Path, src: Path, args: list[str], *, callgrind_out: str | None, profile: bool
) -> dict[str, Any]:
    """Run ``script --child ...args`` with ``src`` first on ``PYTHONPATH``; under
    callgrind when ``callgrind_out`` names its output file."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(script), *args] + (["--profile"] if profile else [])
    if callgrind_out is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_out}", *cmd]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if profile:
        print(done.stderr)
    if callgrind_out is not None:
        refs = re.search(r"refs:\s+([\d,]+)", done.stderr)
        assert refs, done.stderr[-2000:]
        result["instructions"] = int(refs.group(1).replace(",", ""))
    return result


def postgres_backend_cpu(dbname: str) -> dict[int, int]:
    """On-CPU nanoseconds of each PostgreSQL backend of ``dbname`` on this machine
    (``/proc/PID/schedstat``); empty when the server runs elsewhere."""
    needle = f" {dbname} ".encode()
    found: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
            if not title.startswith(b"postgres: ") or needle not in title:
                continue
            with open(f"/proc/{pid}/schedstat") as f:
                found[int(pid)] = int(f.read().split()[0])
        except (OSError, ValueError):  # exited meanwhile
            continue
    return found
