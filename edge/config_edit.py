"""Edits of a tower's YAML config by the field tools: every comment and other line kept.

The tools change text, not a re-dumped document: each edit finds its node with
``yaml.compose`` and splices the new text in at the node's marks. ``apply_edit`` is the
one write path (unified diff on stderr, confirmation unless --yes, the edited text must
load and pass the caller's check, a timestamped backup, an atomic replace), and
``towerwatch calibrate undo`` puts the newest backup back.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import click
import yaml

from edge.cli_support import EXIT_FAILURE, fail
from edge.config import ConfigError, TowerConfig, load_config

BACKUP_SUFFIX = ".before-calibrate-"

Scalar = str | int | float | bool


def last_line_end(text: str, node: yaml.Node) -> int:
    """Index of the end of the last line that holds part of ``node``."""
    last = node
    while isinstance(last, yaml.MappingNode | yaml.SequenceNode) and last.value:
        last = last.value[-1][1] if isinstance(last, yaml.MappingNode) else last.value[-1]
    end = text.find("\n", max(last.end_mark.index - 1, last.start_mark.index))
    return len(text) if end < 0 else end


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(text)
        tmp = Path(handle.name)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def backups_of(config_path: Path) -> list[Path]:
    """Backups the field tools made of ``config_path``, oldest first."""
    return sorted(config_path.parent.glob(config_path.name + BACKUP_SUFFIX + "*"))


def load_edited(text: str, config_path: Path) -> TowerConfig:
    """The edited config, loaded beside the original (so relative paths resolve alike)."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", dir=config_path.parent, delete=False, encoding="utf-8"
    ) as handle:
        handle.write(text)
        probe = Path(handle.name)
    try:
        return load_config(probe)
    except ConfigError as exc:
        raise ValueError("the edited config does not load: " + "; ".join(exc.problems)) from None
    finally:
        probe.unlink(missing_ok=True)


def apply_edit(
    config_path: Path,
    old: str,
    new: str,
    *,
    check: Callable[[TowerConfig], None],
    label: str,
    assume_yes: bool,
    show: bool = True,
) -> Path:
    """Check, show the diff, ask, back up and write ``new``; returns the backup.

    ``check`` gets the edited config and raises ValueError when it does not read back
    what the edit meant to write; nothing is written then.
    """
    check(load_edited(new, config_path))
    diff = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=str(config_path),
        tofile=f"{config_path} ({label})",
    )
    if show:
        click.echo("".join(diff), err=True, nl=False)
    if not assume_yes and not click.confirm(f"write {config_path}?", err=True):
        fail("not written", EXIT_FAILURE)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = config_path.with_name(config_path.name + BACKUP_SUFFIX + stamp)
    try:
        shutil.copy2(config_path, backup)
        write_atomically(config_path, new)
    except PermissionError as exc:
        fail(f"{exc.filename}: permission denied (run as the config's owner)", EXIT_FAILURE)
    if show:
        click.echo(
            f"wrote {config_path}; backup {backup.name}; undo with "
            f"`towerwatch calibrate undo --config {config_path}`; restart the daemon to use it",
            err=True,
        )
    return backup


# --------------------------------------------------------------------------- list sections


def _yaml_scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 7))
    if isinstance(value, int):
        return str(value)
    # plain when YAML reads it back as this very text inside a flow mapping, else quoted
    try:
        plain_ok = yaml.safe_load(f"{{k: {value}}}") == {"k": value}
    except yaml.YAMLError:
        plain_ok = False
    return value if plain_ok and value.strip() == value else json.dumps(value, ensure_ascii=False)


def flow_mapping(item: Mapping[str, Scalar]) -> str:
    """``{key: value, ...}`` on one line, in the order given."""
    return "{" + ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in item.items()) + "}"


def _top_level(text: str, source: str, key: str) -> tuple[yaml.MappingNode, yaml.Node | None]:
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"{source}: the config is not a mapping")
    node = next((v for k, v in root.value if k.value == key), None)
    return root, node


def _item_name(item: yaml.Node) -> str | None:
    if not isinstance(item, yaml.MappingNode):
        return None
    return next((v.value for k, v in item.value if k.value == "name"), None)


def list_names(text: str, source: str, key: str) -> list[str]:
    _, node = _top_level(text, source, key)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [n for n in (_item_name(i) for i in node.value) if n is not None]


def with_list_item(text: str, source: str, key: str, item: Mapping[str, Scalar]) -> str:
    """``text`` with ``item`` appended to the top-level list ``key`` (created if missing).

    A block list gets a new ``- {...}`` line at its items' indent; a flow list
    (``[...]``, also empty) gets the item before its closing bracket.
    """
    entry = flow_mapping(item)
    _, node = _top_level(text, source, key)
    if node is None:
        body = text if text.endswith("\n") or not text else text + "\n"
        return f"{body}\n{key}:\n  - {entry}\n"
    where = f"{source}:{node.start_mark.line + 1}: {key}"
    if isinstance(node, yaml.ScalarNode):
        if node.start_mark.index != node.end_mark.index:
            raise ValueError(f"{where} is {node.value!r}, not a list")
        at = last_line_end(text, node)
        return text[:at] + f"\n  - {entry}" + text[at:]
    if not isinstance(node, yaml.SequenceNode):
        raise ValueError(f"{where} is not a list")
    if node.flow_style:
        close = node.end_mark.index - 1
        if text[close] != "]":
            raise ValueError(f"{where}: cannot find the list's closing bracket")
        separator = ", " if node.value else ""
        return text[:close] + separator + entry + text[close:]
    first = node.value[0]
    line_start = _line_start(text, first.start_mark.index)
    dash = text.rfind("-", line_start, first.start_mark.index)
    if dash < 0 or text[line_start:dash].strip():
        raise ValueError(f"{where}: write the list one '- ' item per line so it can be edited")
    at = last_line_end(text, node)
    return text[:at] + "\n" + " " * (dash - line_start) + "- " + entry + text[at:]


def without_list_item(text: str, source: str, key: str, name: str) -> str:
    """``text`` with the item named ``name`` removed from the top-level list ``key``.

    Raises KeyError when no item has that name.
    """
    _, node = _top_level(text, source, key)
    if not isinstance(node, yaml.SequenceNode):
        raise KeyError(name)
    index = next((i for i, item in enumerate(node.value) if _item_name(item) == name), None)
    if index is None:
        raise KeyError(name)
    item = node.value[index]
    if node.flow_style:
        start, end = item.start_mark.index, item.end_mark.index
        after = text[end:]
        stripped = after.lstrip()
        if stripped.startswith(","):  # not the last: take its comma and the space after it
            comma = end + (len(after) - len(stripped))
            end = comma + 1 + (len(text[comma + 1 :]) - len(text[comma + 1 :].lstrip(" ")))
        else:  # the last: take the comma before it
            before = text[:start].rstrip()
            if before.endswith(","):
                start = len(before) - 1
        return text[:start] + text[end:]
    if len(node.value) == 1:
        # the list's only item: an empty list, not a key without a value
        return text[: node.start_mark.index] + "[]" + text[last_line_end(text, node) :]
    start = _line_start(text, item.start_mark.index)
    end = last_line_end(text, item)
    if end < len(text):
        return text[:start] + text[end + 1 :]
    return text[: max(start - 1, 0)]
