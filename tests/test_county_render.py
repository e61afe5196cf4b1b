"""`towerwatch simulate render`: a moment when the fire burns, the fire marked, an honest colour bar."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from edge.commands.simulate import _bar_labels, burning_moment, group
from simulators.scenario import parse_scenario

SCENARIO = """\
name: t
start_utc: 2024-03-20T10:00:00Z
fires:
  - {id: fire-1, at: {bearing_deg: 135, range_m: 10000}, start_s: %s}
"""
ROOT = Path(__file__).resolve().parent.parent


def test_the_default_moment_is_while_the_first_fire_burns() -> None:
    late = parse_scenario(SCENARIO % "300")
    assert burning_moment(late) == late.start_unix + 360.0
    short = parse_scenario(SCENARIO % "10, stop_s: 50")
    assert short.start_unix + 10 < burning_moment(short) < short.start_unix + 50
    none = parse_scenario("name: t\nstart_utc: 2024-03-20T10:00:00Z\n")
    assert burning_moment(none) == none.start_unix


def test_the_colour_bar_says_when_it_clips_the_frame() -> None:
    inside = _bar_labels(280.0, 300.0, 280.0, 300.0)
    assert inside[0] == "300.0K" and inside[-1] == "280.0K"
    clipped = _bar_labels(280.0, 300.0, 276.1, 366.9)
    assert clipped[0] == ">=300.0K" and clipped[-1] == "<=280.0K"


def test_a_county_tower_renders_the_fire_ringed(tmp_path: Path) -> None:
    out = tmp_path / "view.png"
    result = CliRunner().invoke(
        group,
        ["render", "--scenario", str(ROOT / "benchmarks/scenarios/county-2towers.yaml"),
         "--tower", "tw-02", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tw-02 at 2025-04-10T02:01:10Z" in result.output
    assert "fire fire-1" in result.output and "visible=True" in result.output
    image = cv2.imread(str(out))
    x, y = (float(v.split("=")[1]) for v in result.output.split("fire fire-1 at ")[1].split()[:2])
    ring = image[int(y) - 12 : int(y) + 13, int(x) - 12 : int(x) + 13]
    cyan = np.all(ring == (255, 255, 0), axis=2)
    assert cyan.sum() > 20  # the marker ring around a fire of a few pixels


def test_an_unknown_county_tower_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        group,
        ["render", "--scenario", str(ROOT / "benchmarks/scenarios/county-2towers.yaml"),
         "--tower", "tw-99", "--out", str(tmp_path / "x.png")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--tower tw-99" in result.output and "tw-01, tw-02" in result.output
