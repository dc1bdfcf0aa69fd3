"""The ``paygate`` command line: ``paygate demo``, ``paygate db upgrade``, ...

Each subcommand lives in its own module, imported only when it runs, which exposes
``add_arguments(parser)`` and ``run(args) -> int``. ``paygate --version`` prints the
installed paygate's version.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("paygate.demo", "narrated end-to-end run on the fake provider"),
    "db": ("paygate.stores.cli", "create or migrate a store's schema"),
    "events": ("paygate.stores.events_cli", "replay recorded webhook events"),
    "webhook": ("paygate._webhook_cli", "verify a webhook delivery by hand"),
    "reconcile": ("paygate.reconcile.cli", "compare your books with a provider's records"),
    "completion": ("paygate._completion", "print the shell completion script (bash, zsh, fish)"),
    "sandbox": ("paygate.sandbox.cli", "local Stripe/PayPal/Square emulator with webhooks"),
}


def top_parser() -> argparse.ArgumentParser:
    """``paygate``'s own parser: the subcommands by name, ``--version``."""
    from paygate import __version__

    parser = argparse.ArgumentParser(prog="paygate", description="paygate command line")
    parser.add_argument(
        "--version", action="version", version=f"paygate {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def command_parser(name: str) -> tuple[argparse.ArgumentParser, Any]:
    """The parser of ``paygate <name>`` and its module (imported now)."""
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    cmd_parser = argparse.ArgumentParser(prog=f"paygate {name}", description=help_text)
    module.add_arguments(cmd_parser)
    return cmd_parser, module


def full_parser() -> argparse.ArgumentParser:
    """Every command's parser under the top one, for shell completion (imports them all;
    a command whose optional dependencies are missing completes by name only)."""
    from paygate import __version__

    parser = argparse.ArgumentParser(prog="paygate", description="paygate command line")
    parser.add_argument("--version", action="version", version=f"paygate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(module_name).add_arguments(cmd_parser)
        except ImportError:
            continue
    return parser


def _answer_completion() -> None:
    """When the shell asks (argcomplete's environment, see `paygate completion`), print
    the completions and exit; otherwise return at once."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(full_parser())


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        _answer_completion()
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = top_parser()
    if not args_list or args_list[0] not in COMMANDS:
        parser.parse_args(args_list or ["--help"])  # --help, --version, or a usage error
        return 2
    name = args_list[0]
    try:
        cmd_parser, module = command_parser(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("paygate"):
            print(f"paygate {name}: not available in this version", file=sys.stderr)
            return 2
        raise
    try:
        result: int = module.run(cmd_parser.parse_args(args_list[1:]))
    except BrokenPipeError:
        # the reader went away (`paygate demo | head`): stop quietly, as Unix tools do,
        # and keep the interpreter's final flush from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
