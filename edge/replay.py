"""Replay a recording through the thermal detection and suppression pipeline, one JSON line per decision."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from detectors.pipeline import Decision
from drivers.recording import Recording, RecordingMeta, open_recording
from edge.config import TowerConfig
from edge.detection import DetectionContext, ThermalStage
from edge.looks import patrol_stops


def replay_context(meta: RecordingMeta, config: TowerConfig | None) -> DetectionContext:
    """The daemon's detection context for this config, with the recording's camera.

    With a config it is exactly what the daemon builds (thresholds, sky margin, pose
    memory for its patrol, known sources with their drift tolerance, roads, horizon);
    without one, default thresholds at the recording's tower and nothing masked.
    """
    cam = meta.camera
    if config is None:
        tower = meta.tower
        return DetectionContext.bare(tower.lat, tower.lon, cam.width, cam.height, cam.radiometric)
    context = DetectionContext.from_config(config, patrol_stops=len(patrol_stops(config)))
    return context.with_camera(cam.width, cam.height, cam.radiometric)


def decisions_of(recording: Recording, context: DetectionContext) -> Iterator[Decision]:
    """Run every frame of the recording through the daemon's thermal stage, in order."""
    stage = ThermalStage(context)
    for kelvin, frame in recording:
        image = kelvin if kelvin.dtype == np.float32 else kelvin.astype(np.float32)
        yield from stage.decide(image, frame.t, (frame.pan_deg, frame.tilt_deg, frame.hfov_deg))


def decision_line(decision: Decision) -> str:
    """The DESIGN replay line of one decision (plus the measured values after the contract)."""
    record: dict[str, object] = {
        "t": decision.t,
        "frame": decision.frame,
        "track_id": decision.track_id,
        "x": round(decision.x, 3),
        "y": round(decision.y, 3),
        "pan_deg": round(decision.pan_deg, 5),
        "tilt_deg": round(decision.tilt_deg, 5),
        "event": decision.event,
        "reason": decision.reason,
        "score": decision.score,
        "peak_k": round(decision.peak_k, 2),
        "delta_t_k": round(decision.delta_t_k, 2),
        "area_px": decision.area_px,
        "compact": decision.compact,
    }
    if decision.source is not None:
        record["source"] = decision.source
    return json.dumps(record, allow_nan=False)


@dataclass
class ReplaySummary:
    """What a replay decided: counts per event and per rejection reason, and the config used."""

    recording: str
    config: str
    frames: int = 0
    decisions: int = 0
    candidates: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def add(self, decision: Decision) -> None:
        self.decisions += 1
        if decision.event == "candidate":
            self.candidates += 1
        elif decision.event == "rejected":
            self.rejected_by_reason[decision.reason or "unspecified"] += 1

    def to_dict(self) -> dict[str, object]:
        return {
            "recording": self.recording,
            "config": self.config,
            "frames": self.frames,
            "decisions": self.decisions,
            "candidates": self.candidates,
            "rejected": dict(sorted(self.rejected_by_reason.items())),
        }

    def text(self) -> str:
        """A few lines a person reads after the JSON lines."""
        rejected = sum(self.rejected_by_reason.values())
        lines = [
            f"replay: {self.recording}",
            f"  config: {self.config}",
            f"  frames: {self.frames}, decisions: {self.decisions}",
            f"  candidates: {self.candidates}",
            f"  rejected: {rejected}",
        ]
        lines += [f"    {reason}: {n}" for reason, n in sorted(self.rejected_by_reason.items())]
        return "\n".join(lines)


def replay(
    path: str, config: TowerConfig | None, out: TextIO, config_label: str | None = None
) -> ReplaySummary:
    """Replay the recording at ``path``, write one JSON line per decision and return the summary.

    ``config_label`` names the config in the summary (its path); without a config the
    summary says that default thresholds were used. Raises drivers.recording.RecordingError
    when the recording is malformed (the frames are validated as they are read, so lines
    may already have been written).
    """
    recording = open_recording(path)
    context = replay_context(recording.meta, config)
    if config is None:
        label = "none (default thresholds at the recording's tower, nothing masked)"
    else:
        label = config_label or "given"
    summary = ReplaySummary(recording=path, config=label, frames=len(recording))
    for decision in decisions_of(recording, context):
        out.write(decision_line(decision) + "\n")
        summary.add(decision)
    out.flush()
    return summary
