"""The README stays true: its config table matches the schema, its commands and events exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dropbox_importer.cli import COMMANDS
from dropbox_importer.config.schema import (
    NAMED_ROUTE,
    REQUIRED,
    ROUTE,
    TOP,
    Named,
    Option,
    Section,
    key_paths,
)

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def marked_block(name: str) -> str:
    """The README text between `<!-- name:start -->` and `<!-- name:end -->`."""
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", README, re.S)
    assert match, f"README.md lacks the {name} markers"
    return match.group(1)


def table_rows(block: str) -> list[list[str]]:
    """The body rows of the markdown table in `block`, cells stripped."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in block.splitlines()
        if line.startswith("|")
    ]
    return rows[2:]  # header and separator


def schema_key(cell: str) -> str:
    """A README key cell (`dropboxes.<dropbox>.root`) as a schema key path (`dropboxes.*.root`)."""
    return re.sub(r"<[a-z]+>", "*", cell.strip("`"))


def shown_default(default: object) -> str:
    """A schema default as the README's table writes it."""
    if default is REQUIRED:
        return "required"
    if default is None:
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    if isinstance(default, tuple | frozenset):
        items = default if isinstance(default, tuple) else sorted(default)
        return "`[" + ", ".join(f'"{item}"' for item in items) + "]`"
    return f"`{default}`"


def schema_options(section: Section = TOP, prefix: str = "") -> dict[str, Option]:
    """Every option outside the route sections, by key path with `*` for chosen names."""
    options: dict[str, Option] = {}
    for name, option in section.options.items():
        path = f"{prefix}{name}"
        options[path] = option
        check = option.check
        if isinstance(check, Section) and check is not ROUTE:
            options |= schema_options(check, f"{path}.")
        elif isinstance(check, Named) and check.section not in (ROUTE, NAMED_ROUTE):
            options |= schema_options(check.section, f"{path}.*.")
    return options


def test_config_table_lists_every_schema_key_with_its_default() -> None:
    rows = table_rows(marked_block("config-reference"))
    documented = {schema_key(row[0]): row[1] for row in rows}
    expected = {path: shown_default(opt.default) for path, opt in schema_options().items()}
    assert documented == expected
    assert all(row[2] for row in rows), "every key needs a meaning"


def test_route_parameter_table_covers_defaults_and_named_routes() -> None:
    rows = table_rows(marked_block("route-parameters"))
    names = {row[0].strip("`") for row in rows}
    assert names == set(ROUTE.options)
    documented = {f"dropboxes.*.defaults.{n}" for n in names}
    documented |= {f"dropboxes.*.routes.*.{n}" for n in names}
    # A named route's own rules: each key, and the sub-keys its row names.
    rules = {row[0].strip("`"): row[1] for row in table_rows(marked_block("route-rules"))}
    assert set(rules) == set(NAMED_ROUTE.options) - set(ROUTE.options)
    for rule, meaning in rules.items():
        documented.add(f"dropboxes.*.routes.*.{rule}")
        check = NAMED_ROUTE.options[rule].check
        if not isinstance(check, Section):
            continue  # a plain value (coalesce): its row is its documentation
        for key in check.options:
            assert f"`{key}`" in meaning, f"the {rule} row does not name {key}"
            documented.add(f"dropboxes.*.routes.*.{rule}.{key}")
    table = {schema_key(row[0]) for row in table_rows(marked_block("config-reference"))}
    assert documented | table == key_paths()


def code_text() -> str:
    """The README's code: fenced blocks and inline code spans, one per line."""
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", README, re.M | re.S)
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", README, flags=re.M | re.S)
    return "\n".join(fenced + re.findall(r"`([^`\n]+)`", prose))


def shown_commands() -> set[str]:
    """Sub-commands the README's code runs as `dropbox-importer <command>`."""
    return set(re.findall(r"dropbox-importer (?:\[--version\] )?([a-z][a-z-]*)\b", code_text()))


def test_every_command_shown_is_registered_and_every_registered_one_shown() -> None:
    shown = shown_commands()
    assert shown <= set(COMMANDS), f"README shows unknown commands: {shown - set(COMMANDS)}"
    documented = set(re.findall(r"^\| `dropbox-importer ([a-z]+)", README, re.M))
    importable = {name for name in COMMANDS if module_exists(COMMANDS[name][0])}
    assert importable <= documented, f"undocumented commands: {importable - documented}"


def module_exists(name: str) -> bool:
    """True when the sub-command's module can be found."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("command", sorted(shown_commands()))
def test_flags_shown_for_a_command_are_in_its_help(command: str) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "dropbox_importer", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    shown: set[str] = set()
    for line in code_text().splitlines():
        for match in re.finditer(rf"dropbox-importer {command}\b([^`|]*)", line):
            shown |= set(re.findall(r"--[a-z][a-z-]*", match.group(1)))
    if command == "sandbox":
        section = README.split("## The sandbox", 1)[1].split("\n## ", 1)[0]
        shown |= set(re.findall(r"`(--[a-z][a-z-]*)", section))
    missing = {flag for flag in shown if flag not in help_text}
    assert not missing, f"README shows {command} flags its --help lacks: {missing}"


def source_strings() -> set[str]:
    """Every string literal and keyword argument name in the package: events and their keys."""
    strings: set[str] = set()
    for path in (ROOT / "dropbox_importer").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        # Event names are string literals; their context keys are keyword arguments.
        strings |= set(re.findall(r'"([a-z][a-z0-9_]*)"', source))
        strings |= set(re.findall(r"\b([a-z][a-z0-9_]*)=", source))
    return strings


def test_every_event_and_key_named_in_the_readme_exists() -> None:
    names = set(re.findall(r"`([a-z]+(?:_[a-z0-9]+)+)`", README))
    known = source_strings() | {path.rsplit(".", 1)[-1] for path in key_paths()}
    unknown = sorted(names - known)
    assert not unknown, f"README names events or keys the code does not have: {unknown}"


def test_every_doc_the_readme_links_exists() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / target).exists(), f"README links to a missing file: {target}"


def shown_output(command: str) -> str:
    """What the README shows a command printing: the fenced block after its `$` line."""
    match = re.search(
        rf"^\$ \.venv/bin/dropbox-importer {command}[^\n]*\n(.*?)^```", README, re.M | re.S
    )
    assert match, f"README shows no output of {command}"
    return match.group(1)


def test_check_and_preview_print_what_the_readme_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dropbox_importer.actions.demo import write_demo
    from dropbox_importer.cli import main

    config = write_demo(tmp_path / "demo")
    inbox = tmp_path / "demo" / "dropbox" / "inbox"
    for folder in ("csv,list=abc", "program=1001,status=Atended"):  # as after the tour
        (inbox / folder).mkdir()
    capsys.readouterr()
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    # Run as root (as CI is), check adds a line saying so; the README shows a user's run.
    out = "".join(line for line in out.splitlines(True) if not line.startswith("  (run as root"))
    assert out == shown_output("check --config demo/config.yaml")
    partner = str(tmp_path / "demo" / "partner-leads.csv")
    assert main(["preview", "--config", str(config), "--route", "newsletter", partner]) == 0
    assert capsys.readouterr().out == shown_output("preview --config demo/config.yaml")
