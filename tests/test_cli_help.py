"""``paygate --version`` and help text for every option and subcommand of the CLI."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import paygate
from paygate.__main__ import COMMANDS, command_parser, main, top_parser

#: commands whose help is checked elsewhere (none now)
_NOT_HERE: set[str] = set()


def _missing_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """Every option, positional and subcommand under ``parser`` that has no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not helped.get(name):
                    missing.append(f"{path} {name}")
                if path != "paygate":  # the top level's subparsers are stubs
                    missing.extend(_missing_help(sub, f"{path} {name}"))
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_and_subcommand_has_help() -> None:
    missing = _missing_help(top_parser(), "paygate")
    for name in sorted(set(COMMANDS) - _NOT_HERE):
        parser, _ = command_parser(name)
        missing.extend(_missing_help(parser, f"paygate {name}"))
    assert missing == []


def test_the_walk_finds_an_option_without_help() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--with", help="documented")
    parser.add_argument("--bare")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("quiet").add_argument("--deep")
    sub.add_parser("loud", help="documented")
    assert _missing_help(parser, "x") == ["x --bare", "x quiet", "x quiet --deep"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"paygate {paygate.__version__}\n"


def test_version_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paygate", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"paygate {paygate.__version__}"
