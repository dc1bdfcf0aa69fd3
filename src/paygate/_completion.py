"""``paygate completion bash|zsh|fish``: the shell code that completes ``paygate``.

argcomplete does the completing, rather than a move to Click or Typer: the CLI is argparse
split over lazily imported modules, and argcomplete completes it as it is (subcommands,
options, choices) in bash, zsh and fish, where a rewrite would change every command. The
script printed here calls ``paygate`` back on each TAB with argcomplete's environment set;
[`main`][paygate.__main__.main] then answers from the whole parser tree and exits.
"""

from __future__ import annotations

import argparse
import sys

SHELLS = ("bash", "zsh", "fish")
INSTALL_HINT = "pip install 'paygate-payments[cli]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "shell",
        choices=SHELLS,
        help="the shell to print the script for; e.g. in ~/.bashrc: "
        'eval "$(paygate completion bash)"',
    )


def run(args: argparse.Namespace) -> int:
    try:
        from argcomplete.shell_integration import shellcode
    except ImportError:
        print(f"paygate completion needs argcomplete: {INSTALL_HINT}", file=sys.stderr)
        return 1
    print(shellcode(["paygate"], shell=args.shell), end="")
    return 0
