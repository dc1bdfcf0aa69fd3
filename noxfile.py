"""nox sessions: tests, lint, typecheck, docs, bench, fuzz, package.

The development tools are PEP 735 dependency groups in pyproject.toml (``--group``: pip 25.1
or newer, which every session installs first).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


#: every Python the package supports (the classifiers); a missing interpreter is skipped
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _pyenv_interpreters() -> None:
    """Put each pyenv-installed CPython's bin/ on PATH for nox to find ``python3.X``.

    pyenv's shims answer only for the versions selected (``pyenv global``); for the others a
    shim exists but fails, and nox would take that failure for the interpreter's."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = [str(p) for p in sorted(root.glob("versions/3.*/bin")) if p.is_dir()]
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_pyenv_interpreters()


def _install(session: nox.Session, *args: str) -> None:
    session.install("--upgrade", "pip>=25.1")
    session.install(*args)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    _install(session, "-e", ".[all]", "--group", "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "examples", "tools")
    session.run("ruff", "format", "--check", "src")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session, "-e", ".[all]", "--group", "dev")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    _install(session, "-e", ".", "--group", "docs")
    # NO_MKDOCS_2_WARNING: mkdocs-material's end-of-life banner is not a build warning
    # never -q: mkdocs 1.6 lets --strict count only the warnings it shows
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )
    # the index, state machine and reference pages in headless Chromium: fails on reST
    # markup or Mermaid source shown as text, or no drawn state diagram (screenshots kept)
    session.run("python", "tools/docs_check.py", "site", "--screenshots", "site-screenshots")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks under bench/: figures printed, not asserted (they are not tests)."""
    _install(session, "-e", ".[all]", "--group", "dev", "--group", "bench")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The long fuzz run of every webhook parser: ``nox -s fuzz -- --minutes 10``.

    hypothesis for most of the budget, then atheris (coverage-guided) where it installs:
    it ships wheels for CPython on Linux and macOS, elsewhere its build needs clang and
    the run goes on with hypothesis alone. Crashers land in tests/fuzz_corpus/.
    """
    _install(session, "-e", ".[all]", "--group", "test")
    # success_codes: a failed atheris build is not a failed session (tests.fuzz.long
    # then says it runs hypothesis alone)
    session.run_install("python", "-m", "pip", "install", "atheris", success_codes=[0, 1])
    session.run("python", "-m", "tests.fuzz.long", *session.posargs)


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/ and check what the index would render."""
    import shutil

    _install(session, "--group", "package")
    shutil.rmtree("dist", ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", "dist")
    session.run("twine", "check", "--strict", *sorted(str(p) for p in Path("dist").iterdir()))
