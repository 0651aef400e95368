"""YAML text to checked plain values, walking the node tree so every problem has a line.

The whole file is checked before anything is built: all problems are collected, each naming
the file, the line, the dotted key path and what was expected.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dropbox_importer.config.schema import REQUIRED, TOP, Named, Option, Section, WrongValueError


class ConfigError(Exception):
    """The config can't be used; `problems` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Checked:
    """A config file's values, checked against the schema, with the line of each key."""

    path: Path
    values: dict[str, Any]
    lines: dict[str, int]
    problems: list[str] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)  # keys with a problem already

    def problem(self, key: str, message: str, *, line: int | None = None) -> None:
        """Record one problem at `key` (the key's own line unless given)."""
        at = line if line is not None else self.line_of(key)
        self.reported.add(key)
        self.problems.append(f"{self.path}:{at}: {key}: {message}")

    def line_of(self, key: str) -> int:
        """The line of `key`, or of its nearest enclosing key that the file has."""
        while key not in self.lines and "." in key:
            key = key.rsplit(".", 1)[0]
        return self.lines.get(key, 1)


# What a wrong value becomes once its problem is recorded.
INVALID = object()


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing"
    return f"'{node.value}'"


class _Walker:
    """Checks one composed YAML document against the schema."""

    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.constructor = SafeConstructor()

    def line(self, node: Node, key: str) -> None:
        """Remember the line `key` is on."""
        self.checked.lines[key] = node.start_mark.line + 1

    def problem(self, node: Node, key: str, message: str) -> None:
        """Record a problem at the node's line."""
        self.checked.problem(key, message, line=node.start_mark.line + 1)

    def mapping_items(self, node: Node, key: str) -> list[tuple[str, Node]] | None:
        """The (name, value node) pairs of a mapping; None (and a problem) if it isn't one."""
        if not isinstance(node, MappingNode):
            self.problem(node, key or "(top)", f"expected a mapping of keys, got {_kind(node)}")
            return None
        explicit = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
        self.constructor.flatten_mapping(node)  # honour YAML merge keys (<<: *shared)
        merged = node.value[: len(node.value) - len(explicit)]
        items: dict[str, Node] = {}
        for key_node, value_node in merged:  # as in YAML, explicit keys override merged ones
            if isinstance(key_node, ScalarNode) and key_node.value:
                self.line(key_node, _join(key, str(key_node.value)))
                items[str(key_node.value)] = value_node
        seen: dict[str, int] = {}
        for key_node, value_node in explicit:
            if not isinstance(key_node, ScalarNode) or not key_node.value:
                self.problem(key_node, key or "(top)", "a key must be a plain name")
                continue
            name = str(key_node.value)
            child = _join(key, name)
            if name in seen:
                self.problem(
                    key_node, child, f"appears twice (also on line {seen[name]}): keep one"
                )
                continue
            seen[name] = key_node.start_mark.line + 1
            self.line(key_node, child)
            items[name] = value_node
        return list(items.items())

    def section(self, node: Node, section: Section, key: str) -> dict[str, Any]:
        """The checked values of a fixed-key mapping, defaults filled in."""
        self.checked.lines.setdefault(key, node.start_mark.line + 1)
        out: dict[str, Any] = {}
        invalid: set[str] = set()
        for name, value_node in self.mapping_items(node, key) or []:
            option = section.options.get(name)
            if option is None:
                self.unknown(value_node, _join(key, name), name, section)
                continue
            value = self.value(option, value_node, _join(key, name))
            if value is INVALID:
                invalid.add(name)  # already reported; a default must not hide it
            elif value is not None:
                out[name] = value
        for name, option in section.options.items():
            if name in out or name in invalid:
                out.setdefault(name, None)
                continue
            if option.default is REQUIRED:
                self.problem(node, _join(key, name), f"missing: add it ({option.doc})")
            else:
                out[name] = option.default
        return out

    def unknown(self, node: Node, key: str, name: str, section: Section) -> None:
        """Report a key the section lacks, with the closest known key as a hint."""
        close = difflib.get_close_matches(name, list(section.options), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        known = ", ".join(section.options)
        self.checked.problem(key, f"unknown key '{name}': {hint}known keys are {known}")

    def value(self, option: Option, node: Node, key: str) -> Any:
        """One option's checked value; None when left empty, INVALID (reported) when wrong."""
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return None  # "key:" with nothing after it means "use the default"
        if isinstance(option.check, Section):
            return self.section(node, option.check, key)
        if isinstance(option.check, Named):
            return {
                name: self.section(child, option.check.section, _join(key, name))
                for name, child in self.mapping_items(node, key) or []
            }
        raw = self.constructor.construct_object(node, deep=True)
        try:
            return option.check(raw)
        except WrongValueError as exc:
            got = "" if option.secret else f", got {_kind(node)}"
            self.problem(node, key, f"expected {exc}{got}")
            return INVALID


def check_file(path: Path) -> Checked:
    """Read and check a config file; ConfigError if it can't be read or parsed as YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}: cannot read the config: {reason}"]) from None
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(
            [f"{path}:{line}: not valid YAML: {exc.problem}: fix the syntax on that line"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    checked = Checked(path, {}, {})
    if document is None:
        checked.problem("(top)", "the file is empty: expected instances and dropboxes", line=1)
        return checked
    checked.values = _Walker(checked).section(document, TOP, "")
    return checked
