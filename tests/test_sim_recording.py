"""A simulated recording round-trips through the DESIGN recording reader with its truth beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from drivers.recording import open_recording
from edge.commands.record import command as record_command
from simulators.recording import record_scenario
from simulators.scenario import load_scenario
from simulators.world import SimWorld

SCENARIOS = Path(__file__).resolve().parents[1] / "benchmarks" / "scenarios"
NAMES = [
    "mission-2m-10km",
    "mission-6m-20km",
    "haze-2m-10km",
    "night-6m-20km",
    "traffic-noon",
    "traffic-night",
    "truck-toward-tower",
    "sun-noon",
    "glint-low-sun",
    "flare-stack",
    "smoulder",
    "hidden-by-reed",
]


@pytest.mark.parametrize("name", NAMES)
def test_every_benchmark_scenario_loads(name: str) -> None:
    scn = load_scenario(SCENARIOS / f"{name}.yaml")
    assert scn.name == name


def test_recording_round_trips_with_truth(tmp_path: Path) -> None:
    scenario = SCENARIOS / "smoulder.yaml"
    n = record_scenario(scenario, tmp_path, duration_s=0.4, fps=5.0)
    assert n == 2
    rec = open_recording(tmp_path)
    assert len(rec) == 2
    world = SimWorld(load_scenario(scenario))
    pan, tilt = world.main_event_pose()
    frames = list(rec)
    first, meta = frames[0]
    assert meta.pan_deg == pytest.approx(pan) and meta.tilt_deg == pytest.approx(tilt)
    expected, _, _ = world.render(pan, tilt, None, meta.t)
    # 16-bit PNG in 0.01 K steps: the frame comes back to within half a step.
    assert np.max(np.abs(first - expected)) <= 0.005 + 1e-4
    truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert [t["file"] for t in truth] == [m.file for _, m in frames]
    fire = truth[0]["objects"][0]
    assert fire["kind"] == "fire" and fire["id"] == "smoulder-1"
    assert abs(fire["x"] - 319.5) < 2 and 0 <= fire["y"] < 512


def test_record_command_refuses_a_bad_scenario_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nstart_utc: 2024-01-01T00:00:00Z\nfires: [{id: a, at: {bearing_deg: 1}}]\n"
    )
    result = CliRunner().invoke(
        record_command, ["--scenario", str(bad), "--out", str(tmp_path / "rec")]
    )
    assert result.exit_code == 2
    assert "bad.yaml:3: fires.0.at" in result.output


@pytest.mark.parametrize("name", NAMES)
def test_every_scenario_records_a_recording_that_replay_reads(name: str, tmp_path: Path) -> None:
    from edge.cli import cli

    out = tmp_path / "rec"
    runner = CliRunner()
    recorded = runner.invoke(
        cli,
        [
            "record",
            "--scenario",
            str(SCENARIOS / f"{name}.yaml"),
            "--out",
            str(out),
            "--duration",
            "0.3",
            "--fps",
            "6",
        ],  # fmt: skip
    )
    assert recorded.exit_code == 0, recorded.output
    replayed = runner.invoke(cli, ["replay", str(out)])
    assert replayed.exit_code == 0, replayed.output
    for line in replayed.stdout.splitlines():  # the closing summary goes to stderr
        decision = json.loads(line)
        assert decision["event"] in ("candidate", "rejected")
