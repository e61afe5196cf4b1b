"""`towerwatch replay`: JSON lines per decision from a DESIGN-format recording; malformed ones exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from drivers.recording import CameraMeta, RecordingWriter, TowerMeta
from edge.commands.replay import command

H, W = 96, 128
T0 = 1710928800.0  # 2024-03-20 10:00 UTC: daytime at the tower below


def write_recording(path: Path, n: int = 20) -> None:
    camera = CameraMeta(W, H, 6.0, 4.5, True)
    tower = TowerMeta(46.9, 20.1, 125.0)
    with RecordingWriter(path, camera, tower) as writer:
        for k in range(n):
            f = (290.0 + np.random.default_rng(k).normal(0, 0.3, (H, W))).astype(np.float32)
            f[50, 60] += 40.0  # a fire
            f[30, 10 + 3 * k] += 40.0  # a vehicle crossing at 3 px per frame
            writer.write(f, T0 + k / 10.0, 135.0, -1.0, 6.0)


def test_replay_reports_the_fire_as_candidate_and_the_vehicle_as_rejected(tmp_path: Path) -> None:
    write_recording(tmp_path / "rec")
    result = CliRunner().invoke(command, [str(tmp_path / "rec")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    events = {(d["event"], d["reason"]) for d in lines}
    assert events == {("candidate", None), ("rejected", "vehicle")}
    assert "candidates: 1" in result.stderr
    assert "vehicle: 1" in result.stderr
    assert "config: none (default thresholds" in result.stderr
    fire = next(d for d in lines if d["event"] == "candidate")
    assert abs(fire["x"] - 60) < 0.2 and abs(fire["y"] - 50) < 0.2
    for key in (
        "t",
        "frame",
        "track_id",
        "x",
        "y",
        "pan_deg",
        "tilt_deg",
        "event",
        "reason",
        "score",
    ):
        assert key in fire
    assert 0 <= fire["frame"] < 20 and fire["t"] == T0 + fire["frame"] / 10.0


def test_replay_summary_as_json_counts_decisions_per_reason(tmp_path: Path) -> None:
    write_recording(tmp_path / "rec")
    result = CliRunner().invoke(command, [str(tmp_path / "rec"), "--json"])
    assert result.exit_code == 0, result.output
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    summary = json.loads(result.stderr)
    assert summary["frames"] == 20
    assert summary["decisions"] == len(decisions)
    assert summary["candidates"] == sum(d["event"] == "candidate" for d in decisions)
    assert summary["rejected"] == {"vehicle": sum(d["reason"] == "vehicle" for d in decisions)}
    assert summary["recording"] == str(tmp_path / "rec")


def test_malformed_recording_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    write_recording(tmp_path / "rec", n=3)
    (tmp_path / "rec" / "frames.jsonl").write_text('{"file": "frames/000000.png", "t": "soon"}\n')
    result = CliRunner().invoke(command, [str(tmp_path / "rec")])
    assert result.exit_code == 2
    assert "frames.jsonl:1" in result.output and "Traceback" not in result.output


def test_missing_recording_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(command, [str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "no such recording" in result.output


def test_corrupt_frame_file_exits_2(tmp_path: Path) -> None:
    write_recording(tmp_path / "rec", n=3)
    (tmp_path / "rec" / "frames" / "000001.png").write_bytes(b"not a png")
    result = CliRunner().invoke(command, [str(tmp_path / "rec")])
    assert result.exit_code == 2
    assert "000001.png" in result.output
