"""YAML → plain Python values with the line of every key, refusing duplicate keys.

PyYAML's safe_load silently keeps the last of two equal keys and forgets where each value
came from; a field technician needs both: `tower.yaml:14: mqtt.port: ...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]

# A tower config has a few hundred nodes; aliases can multiply a small file into
# billions ("billion laughs"), so conversion stops here.
MAX_NODES = 100_000
MAX_BYTES = 1024 * 1024
# A tower config nests a handful of levels. Nesting is refused well below Python's
# recursion limit: running into that limit is not a clean error, since a finalizer that
# runs on the exhausted stack raises on its own, outside any handler.
MAX_DEPTH = 64


class _TooLarge(Exception):
    pass


@dataclass
class YamlDocument:
    """Parsed YAML plus where each key path was written and the problems found on the way."""

    source: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    nodes: int = 0

    def where(self, path: KeyPath) -> str:
        """`file:line` of the deepest written prefix of ``path``."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return f"{self.source}:{line}"
        return self.source


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _nesting_problem(text: str) -> str | None:
    """Why ``text`` nests too deeply or aliases itself, from the parser's flat event stream.

    The parser is a state machine, so this pass cannot overflow the stack; composing and
    converting are recursive and run only on text that passed it.
    """
    depth = 0
    open_anchors: list[str | None] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            open_anchors.append(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            open_anchors.pop()
        elif isinstance(event, yaml.AliasEvent) and event.anchor in open_anchors:
            return f"the alias *{event.anchor} refers to itself"
    return None


def _convert(node: yaml.Node, path: KeyPath, doc: YamlDocument, loader: yaml.SafeLoader) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    doc.nodes += 1
    # Aliases can stack nesting beyond what the text shows; the same bound holds here.
    if doc.nodes > MAX_NODES or len(path) > MAX_DEPTH:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                doc.problems.append(
                    f"{doc.source}:{line}: {dotted(path)}: key {key!r} must be text"
                )
                continue
            child = (*path, key)
            if key in out:
                first = doc.lines.get(child, "?")
                doc.problems.append(
                    f"{doc.source}:{line}: {dotted(child)}: duplicate key "
                    f"(first given on line {first}); remove one of them"
                )
                continue
            doc.lines[child] = line
            out[key] = _convert(value_node, child, doc, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> YamlDocument:
    """Parse one YAML document; syntax errors become one problem with its line."""
    doc = YamlDocument(source=source, data=None)
    if len(text) > MAX_BYTES:
        doc.problems.append(f"{source}: {len(text)} characters; a tower config is a few kB")
        return doc
    try:
        nesting = _nesting_problem(text)
        if nesting is not None:
            doc.problems.append(f"{source}: {nesting}: not a tower config")
            return doc
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else "?"
        doc.problems.append(f"{source}:{line}: YAML syntax error: {exc.problem}")
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(f"{source}: YAML error: {exc}")
        return doc
    if node is None:
        doc.data = {}
        return doc
    loader = yaml.SafeLoader("")
    try:
        doc.data = _convert(node, (), doc, loader)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else "?"
        doc.problems.append(f"{source}:{line}: {exc.problem}")
    except _TooLarge:
        doc.data = None
        doc.problems.append(
            f"{source}: more than {MAX_NODES} values or nested more than {MAX_DEPTH} levels "
            "deep through aliases: not a tower config"
        )
    finally:
        loader.dispose()
    return doc


def load_yaml_file(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        doc = YamlDocument(source=str(path), data=None)
        doc.problems.append(f"{path}: no such file")
        return doc
    except (OSError, UnicodeDecodeError) as exc:
        doc = YamlDocument(source=str(path), data=None)
        doc.problems.append(f"{path}: cannot read: {exc}")
        return doc
    return parse_yaml(text, str(path))
