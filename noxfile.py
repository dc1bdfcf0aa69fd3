"""nox sessions: tests, lint, typecheck, docs, bench, fuzz."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "examples")
    session.run("ruff", "format", "--check", "src")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("-e", ".[docs]")
    # NO_MKDOCS_2_WARNING: mkdocs-material's end-of-life banner is not a build warning
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks under bench/: figures printed, not asserted (they are not tests)."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The long fuzz run of every webhook parser: ``nox -s fuzz -- --minutes 10``.

    hypothesis for most of the budget, then atheris (coverage-guided) where it installs:
    it ships wheels for CPython on Linux and macOS, elsewhere its build needs clang and
    the run goes on with hypothesis alone. Crashers land in tests/fuzz_corpus/.
    """
    session.install("-e", ".[dev]")
    # success_codes: a failed atheris build is not a failed session (tests.fuzz.long
    # then says it runs hypothesis alone)
    session.run_install("python", "-m", "pip", "install", "atheris", success_codes=[0, 1])
    session.run("python", "-m", "tests.fuzz.long", *session.posargs)
