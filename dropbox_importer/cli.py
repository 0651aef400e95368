"""The `dropbox-importer` command line: one sub-command per operator action."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from dropbox_importer import __version__

# Each sub-command lives in its own module with `add_arguments(parser)` and `main(args) -> int`;
# they are imported lazily so `dropbox-importer --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("dropbox_importer.sandbox.cli", "run the local Marketo emulator"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    import importlib

    parser = argparse.ArgumentParser(prog="dropbox-importer", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command)
        entry: Callable[[argparse.Namespace], int] = module.main
        command.set_defaults(entry=entry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; return its exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.entry(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
