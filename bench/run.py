"""Run every ``bench/bench_*.py`` with the current Python, one subprocess each.

Benchmarks print their figures; nothing is asserted. ``nox -s bench`` runs this file;
extra arguments select benchmarks by substring (``python bench/run.py stripe``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(word in s.name for word in argv)]
    failed = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        failed |= subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
