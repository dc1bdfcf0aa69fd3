"""Run a benchmark's child process on a given ``src``, optionally under callgrind.

Shared by the benches that count instructions (``bench_create_cpu.py``,
``bench_webhook_cpu.py``): the child prints one JSON line last; under callgrind its
instruction total (valgrind's ``refs:`` line on stderr) is added as ``instructions``.
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
