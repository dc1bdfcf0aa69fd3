"""Run every ``bench/bench_*.py`` with the current Python, one subprocess each.

Benchmarks print their figures; nothing is asserted. ``nox -s bench`` runs this file;
extra arguments select benchmarks by substring (``python bench/run.py stripe``; issue 21's
ratios: ``nox -s bench -- reconcile webhook calls``). After each benchmark one line gives
its wall time, the CPU time of its processes (it and its children: user + system) and the
load average before and after it: on a shared machine a figure means little without them.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(word in s.name for word in argv)]
    failed = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        load, cpu, wall = os.getloadavg(), _children_cpu(), time.perf_counter()
        failed |= subprocess.run([sys.executable, str(script)], check=False).returncode != 0
        wall, cpu, after = time.perf_counter() - wall, _children_cpu() - cpu, os.getloadavg()
        print(f"-- {script.name}: wall {wall:.1f} s, CPU {cpu:.1f} s (its processes); load "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before, "
              f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f} after", flush=True)  # fmt: skip
    return 1 if failed else 0


def _children_cpu() -> float:
    """User + system seconds of the finished children (and theirs, once waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
