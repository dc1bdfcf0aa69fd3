"""The ``paygate`` command line: ``paygate demo``, ``paygate db upgrade``, ...

Each subcommand lives in its own module, imported only when it runs, which exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("paygate.demo", "narrated end-to-end run on the fake provider"),
    "db": ("paygate.stores.cli", "create or migrate a store's schema"),
    "events": ("paygate.stores.events_cli", "replay recorded webhook events"),
    "reconcile": ("paygate.reconcile.cli", "compare your books with a provider's records"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="paygate", description="paygate command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args_list or args_list[0] in ("-h", "--help") or args_list[0] not in COMMANDS:
        parser.parse_args(args_list or ["--help"])
        return 2
    name = args_list[0]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("paygate"):
            print(f"paygate {name}: not available in this version", file=sys.stderr)
            return 2
        raise
    cmd_parser = argparse.ArgumentParser(prog=f"paygate {name}", description=help_text)
    module.add_arguments(cmd_parser)
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
