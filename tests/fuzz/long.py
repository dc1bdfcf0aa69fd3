"""The long fuzz run: ``nox -s fuzz -- --minutes N`` (or ``python -m tests.fuzz.long``).

Runs the hypothesis strategies of :mod:`tests.fuzz.strategies` against every parser and
mode, randomized, for a share of the time budget each, then (where atheris is installed)
the coverage-guided harness fuzz/atheris_webhooks.py for the rest. Every input is parsed
and handed to a Gateway (see ``check_parse`` / ``check_gateway``). A crasher is written to
tests/fuzz_corpus/ (replayed by the test suite from then on) and the run exits 1. Prints
the number of inputs run per parser and mode.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import HypothesisException

from tests.fuzz.corpus import save_case
from tests.fuzz.strategies import (
    GATEWAY_ERRORS,
    LAST_FAILURE,
    MODES,
    RUNS,
    check_gateway,
    check_parse,
    deliveries,
)
from tests.fuzz.targets import NAMES, paypal_api, target

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "fuzz" / "atheris_webhooks.py"
_CHUNK = settings(
    max_examples=100,  # the budget is checked between chunks
    database=None,
    deadline=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
)


def _hypothesis(name: str, mode: str, seconds: float) -> list[Path]:
    """Run ``name``/``mode`` for ``seconds``; the crashers found, kept as corpus files."""

    @_CHUNK
    @given(delivery=deliveries(target(name), mode))
    def run(delivery: tuple[bytes, Any]) -> None:
        check_parse(target(name), mode, *delivery)
        check_gateway(target(name), mode, *delivery)

    found: list[Path] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        LAST_FAILURE.clear()
        try:
            run()
        except (Exception, HypothesisException) as exc:  # a crasher: keep it, go on
            if not LAST_FAILURE:
                raise
            note = f"found by the long fuzz run ({mode}): {type(exc).__name__}: {exc}"[:300]
            path = save_case(
                LAST_FAILURE["target"], LAST_FAILURE["body"], LAST_FAILURE["headers"], note
            )
            print(f"  CRASHER {name}/{mode}: {type(exc).__name__} -> {path}", flush=True)
            found.append(path)
            if len(found) >= 3:
                break
    return found


def _atheris(name: str, seconds: int) -> tuple[int, bool]:
    """(inputs run, crashed) of the atheris harness on ``name`` for ``seconds``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    (ROOT / "fuzz" / "crashes").mkdir(exist_ok=True)  # libFuzzer writes crash inputs there
    done = subprocess.run(
        [sys.executable, str(HARNESS), name, f"-max_total_time={seconds}", "-rss_limit_mb=4096",
         f"-artifact_prefix={ROOT / 'fuzz' / 'crashes'}/{name}-"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    runs = re.findall(r"Done (\d+) runs", done.stderr)
    crashed = done.returncode != 0
    if crashed:
        print(done.stderr[-3000:], file=sys.stderr)
    return (int(runs[-1]) if runs else 0), crashed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="total time budget")
    parser.add_argument("--targets", nargs="*", default=list(NAMES), choices=NAMES)
    parser.add_argument("--no-atheris", action="store_true", help="hypothesis only")
    args = parser.parse_args(argv)

    use_atheris = not args.no_atheris and importlib.util.find_spec("atheris") is not None
    if not use_atheris and not args.no_atheris:
        print("atheris is not installed: hypothesis only (pip install atheris)", flush=True)
    budget = args.minutes * 60 * (0.6 if use_atheris else 1.0)
    slot = budget / (len(args.targets) * len(MODES))
    crashers: list[Path] = []
    started = time.monotonic()
    with paypal_api():
        for name in args.targets:
            for mode in MODES:
                crashers += _hypothesis(name, mode, slot)
                print(f"hypothesis {name:<10} {mode:<8} {RUNS[name, mode]:>8} inputs", flush=True)
    atheris_runs: Counter[str] = Counter()
    if use_atheris:
        share = max(1, int(args.minutes * 60 * 0.4 / len(args.targets)))
        for name in args.targets:
            runs, crashed = _atheris(name, share)
            atheris_runs[name] = runs
            print(f"atheris    {name:<10} {runs:>8} inputs{'  CRASHED' if crashed else ''}")
            if crashed:
                crashers.append(HARNESS)
    print(f"\ninputs per parser ({time.monotonic() - started:.0f} s):")
    for name in args.targets:
        by_hypothesis = sum(RUNS[name, mode] for mode in MODES)
        print(f"  {name:<10} hypothesis {by_hypothesis:>8}  atheris {atheris_runs[name]:>8}")
    if GATEWAY_ERRORS:
        print("\nGateway answers other than 200/409/400 (5xx: a lookup the mocks answer 404):")
        for (name, error), times in sorted(GATEWAY_ERRORS.items()):
            print(f"  {name:<10} {error:<20} {times:>8}")
    if crashers:
        print(f"\n{len(crashers)} crasher(s) kept: {[str(p) for p in crashers]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
