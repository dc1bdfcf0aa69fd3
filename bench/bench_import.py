"""How long ``import paygate`` takes, and which modules it pulls in.

Target: <= 50 ms over the interpreter's bare start-up, and no provider SDK. Each figure is
the median over fresh interpreters (``--runs``, default 21). Installed packages run from
their bytecode cache, so the warm figures use one (in a temporary ``PYTHONPYCACHEPREFIX``,
leaving the checkout untouched) even where ``PYTHONDONTWRITEBYTECODE`` is set; the cold
figure compiles paygate's sources on every start, as a checkout without a cache does.

    python bench/bench_import.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SDKS = ("stripe", "paypalrestsdk", "square", "pydantic", "requests", "httpx")
TARGET_MS = 50.0
IN_PROCESS = "import time; t = time.perf_counter(); import paygate; print(time.perf_counter() - t)"


def run_seconds(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def paired_ms(code: str, runs: int, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """(median, min) in ms of bare start-up, of ``python -c code``, and of their difference.

    The two run in alternation, so a busy machine slows both alike; the difference is
    taken per pair.
    """
    bare, full = [], []
    for _ in range(runs):
        bare.append(run_seconds("pass", env))
        full.append(run_seconds(code, env))
    deltas = [f - b for b, f in zip(bare, full, strict=True)]
    return {
        name: (statistics.median(xs) * 1000, min(xs) * 1000)
        for name, xs in (("bare", bare), ("full", full), ("delta", deltas))
    }


def in_process_ms(runs: int, env: dict[str, str]) -> tuple[float, float]:
    """(median, min) time of the ``import paygate`` statement alone, inside the process."""
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", IN_PROCESS],
                check=True,
                env=env,
                capture_output=True,
                text=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(times) * 1000, min(times) * 1000


def added_modules(env: dict[str, str]) -> list[str]:
    probe = (
        "import json, sys; before = set(sys.modules); import paygate; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True
    )
    return list(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs

    with tempfile.TemporaryDirectory(prefix="paygate-pycache-") as cache:
        warm = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        warm["PYTHONPYCACHEPREFIX"] = cache
        for code in ("pass", "import paygate"):  # fill the cache first
            subprocess.run([sys.executable, "-c", code], check=True, env=warm)
        warm_figures = paired_ms("import paygate", runs, warm)
        statement = in_process_ms(runs, warm)
        modules = added_modules(warm)
    # the stdlib from its own cache, paygate compiled from source on every start
    cold = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    cold["PYTHONDONTWRITEBYTECODE"] = "1"
    cold_figures = paired_ms("import paygate", runs, cold)

    own = [m for m in modules if m == "paygate" or m.startswith("paygate.")]
    others = [m for m in modules if m not in own]
    sdks = [m for m in modules if m.split(".")[0] in SDKS]

    def row(label: str, figures: tuple[float, float]) -> None:
        print(f"  {label:<44} {figures[0]:7.1f} ms   (min {figures[1]:6.1f} ms)")

    print(f"python {sys.version.split()[0]} ({sys.executable}), {runs} fresh interpreters each")
    print(f"  {'':<44} {'median':>10}")
    row("bare interpreter start-up", warm_figures["bare"])
    row("python -c 'import paygate'", warm_figures["full"])
    row("import paygate: wall minus bare start-up", warm_figures["delta"])
    row("the import statement alone, timed in-process", statement)
    row("cold (paygate not byte-compiled), minus bare", cold_figures["delta"])
    delta = warm_figures["delta"]
    verdict = "within" if delta[0] <= TARGET_MS else "over"
    print(f"  target: <= {TARGET_MS:.0f} ms over bare start-up (median): {verdict}")
    print(f"  modules added: {len(modules)} ({len(own)} paygate, {len(others)} stdlib)")
    print(f"    paygate: {', '.join(own)}")
    print(f"    stdlib:  {', '.join(others)}")
    print(f"  provider SDKs / pydantic / HTTP clients imported: {sdks or 'none'}")


if __name__ == "__main__":
    main()
