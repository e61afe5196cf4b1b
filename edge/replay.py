"""Replay a recording through the thermal detection and suppression pipeline, one JSON line per decision."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from detectors.pipeline import AngularSource, Decision, DetectionParams, FramePipeline
from detectors.solar import sun_position
from drivers.recording import Recording, RecordingMeta, open_recording
from edge.calibration import horizon_dip_deg
from edge.config import TowerConfig
from edge.geodesy import apparent_elevation_deg, distance_bearing

# Sun elevation above which the day thresholds apply when no config says otherwise
# (civil twilight: the ground has started to warm or is still warm).
DEFAULT_DAY_SUN_ELEVATION_DEG = -3.0


@dataclass(frozen=True)
class ReplaySetup:
    """What the pipeline needs beyond the frames, from the recording and an optional config."""

    params: DetectionParams
    known_sources: tuple[AngularSource, ...]
    day_sun_elevation_deg: float
    horizon_elevation_deg: float | None


def params_from_config(config: TowerConfig | None) -> DetectionParams:
    """Detection thresholds: the config's detection section, or the defaults."""
    if config is None:
        return DetectionParams()
    d = config.detection
    return DetectionParams(
        k_sigma_day=d.k_sigma_day,
        k_sigma_night=d.k_sigma_night,
        min_excess_day_k=d.min_excess_day_k,
        min_excess_night_k=d.min_excess_night_k,
        absolute_day_k=d.absolute_day_k,
        absolute_night_k=d.absolute_night_k,
    )


def angular_sources(config: TowerConfig, meta: RecordingMeta) -> tuple[AngularSource, ...]:
    """The config's known heat sources as directions seen from the recording's camera.

    A source's hot part stands ``height_m`` above the ground, taken at the tower foot's
    elevation (flat land); its angular radius is its exclusion radius at its distance.
    """
    tower = meta.tower
    out = []
    for src in config.known_sources:
        distance_m, bearing_deg = distance_bearing(tower.lat, tower.lon, src.lat, src.lon)
        if distance_m <= 0.0:
            continue
        altitude_m = config.tower.ground_elevation_m + src.height_m
        elevation = float(
            apparent_elevation_deg(
                tower.lat, tower.lon, tower.height_m, src.lat, src.lon, altitude_m
            )
        )
        radius_deg = math.degrees(math.atan2(src.radius_m, distance_m))
        out.append(AngularSource(src.name, bearing_deg % 360.0, elevation, radius_deg))
    return tuple(out)


def replay_setup(meta: RecordingMeta, config: TowerConfig | None) -> ReplaySetup:
    """Thresholds, known sources, day/night rule and horizon for one recording.

    The horizon (for the sky mask) needs the camera's height above the land around it,
    which only a config gives (the recording holds the height above sea level); without
    one nothing is masked as sky and the contextual test's own statistics handle it.
    """
    if config is None:
        return ReplaySetup(DetectionParams(), (), DEFAULT_DAY_SUN_ELEVATION_DEG, None)
    return ReplaySetup(
        params=params_from_config(config),
        known_sources=angular_sources(config, meta),
        day_sun_elevation_deg=config.detection.sun_elevation_day_deg,
        horizon_elevation_deg=-horizon_dip_deg(config.tower.mast_height_m),
    )


def decisions_of(recording: Recording, setup: ReplaySetup) -> Iterator[Decision]:
    """Run every frame of the recording through one pipeline; yields decisions in order."""
    cam = recording.meta.camera
    tower = recording.meta.tower
    pipeline = FramePipeline(
        setup.params,
        cam.width,
        cam.height,
        radiometric=cam.radiometric,
        horizon_elevation_deg=setup.horizon_elevation_deg,
    )
    for kelvin, frame in recording:
        sun_az, sun_el = sun_position(frame.t, tower.lat, tower.lon)
        yield from pipeline.process(
            kelvin,
            frame.t,
            frame.pan_deg,
            frame.tilt_deg,
            frame.hfov_deg,
            sun_az_deg=sun_az,
            sun_el_deg=sun_el,
            is_day=sun_el > setup.day_sun_elevation_deg,
            known_sources=setup.known_sources,
        )


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


def replay(path: str, config: TowerConfig | None, out: TextIO) -> int:
    """Replay the recording at ``path`` and write one JSON line per decision; returns the count.

    Raises drivers.recording.RecordingError when the recording is malformed (the
    frames are validated as they are read, so lines may already have been written).
    """
    recording = open_recording(path)
    setup = replay_setup(recording.meta, config)
    count = 0
    for decision in decisions_of(recording, setup):
        out.write(decision_line(decision) + "\n")
        count += 1
    out.flush()
    return count
