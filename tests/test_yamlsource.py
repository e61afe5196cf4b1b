"""YAML parsing for config files: hostile structure is refused by rule, never by a stack overflow."""

from __future__ import annotations

import sys

import pytest

from edge.yamlsource import MAX_DEPTH, parse_yaml


def _problems(text: str) -> list[str]:
    doc = parse_yaml(text, "tower.yaml")
    assert doc.data is None or doc.problems
    return doc.problems


def test_an_alias_inside_its_own_anchor_is_named_as_such() -> None:
    assert _problems("a: &x [*x]\n") == ["tower.yaml: the alias *x refers to itself: not a tower config"]


def test_a_mapping_that_contains_itself_is_refused() -> None:
    (problem,) = _problems("a: &m {b: 1, c: *m}\n")
    assert "*m refers to itself" in problem


def test_deep_brackets_are_refused_before_anything_recurses() -> None:
    # Refused at the limit, far below the interpreter's own, so no frame ever nears it.
    assert sys.getrecursionlimit() > MAX_DEPTH * 4
    (problem,) = _problems("x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert f"nested more than {MAX_DEPTH} levels deep" in problem
    assert parse_yaml("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "t").problems == []


def test_aliases_that_stack_nesting_beyond_the_limit_are_refused() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    (problem,) = _problems(text)
    assert "through aliases" in problem


@pytest.mark.parametrize("text", ["a: &x [1, 2]\nb: *x\n", "a: &x {k: 1}\nb: [*x, *x]\n"])
def test_ordinary_aliases_still_load(text: str) -> None:
    doc = parse_yaml(text, "tower.yaml")
    assert doc.problems == []
    assert doc.data["b"] in ([1, 2], [{"k": 1}, {"k": 1}])


def test_a_syntax_error_keeps_its_line() -> None:
    assert parse_yaml("a: 1\nb: [2\n", "tower.yaml").problems[0].startswith("tower.yaml:3: YAML syntax")
