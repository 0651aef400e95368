"""The `dropbox-importer` command line: one sub-command per operator action."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from dropbox_importer import __version__

# Each sub-command lives in its own module with `add_arguments(parser)` and `main(args) -> int`;
# they are imported lazily so `dropbox-importer --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("dropbox_importer.actions.run", "run the daemon in the foreground"),
    "demo": (
        "dropbox_importer.actions.demo",
        "try it: the daemon on the sandbox and a demo drop box",
    ),
    "sandbox": ("dropbox_importer.sandbox.cli", "run the local Marketo emulator"),
    "status": ("dropbox_importer.actions.status", "show what is waiting, in flight and done"),
    "retry": ("dropbox_importer.actions.retry", "move a failed file back to its inbox"),
    "check": (
        "dropbox_importer.actions.check",
        "validate the config, credentials, lists and partitions",
    ),
    "import": ("dropbox_importer.actions.one_shot", "import one file in the foreground"),
    "preview": (
        "dropbox_importer.actions.preview",
        "what would happen to a file, without sending it",
    ),
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Build the top-level parser; only the chosen sub-command's module is imported."""
    import importlib

    parser = argparse.ArgumentParser(prog="dropbox-importer", description=__doc__)
    # Module docstrings are the sub-commands' descriptions: keep their line breaks and tables.
    raw = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, formatter_class=raw)
        if name != chosen:
            continue
        module = importlib.import_module(module_name)
        command.description = module.__doc__
        module.add_arguments(command)
        entry: Callable[[argparse.Namespace], int] = module.main
        command.set_defaults(entry=entry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    code: int = args.entry(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
