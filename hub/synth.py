"""Alarm and status payloads of lightweight simulated towers (tests, load tool, benchmarks).

Payloads are built as the tower daemon builds them and validated by the contract models,
so what the hub is fed here is what a real tower may send.
"""

from __future__ import annotations

import time
from typing import Any

from edge.geodesy import destination, distance_bearing
from edge.messages import AlarmMessage, StatusMessage, iso_z


def alarm_payload(
    *,
    alarm_id: str,
    seq: int,
    tower_id: str,
    tower_lat: float,
    tower_lon: float,
    fire_lat: float,
    fire_lon: float,
    state: str = "confirmed",
    bearing_noise_deg: float = 0.0,
    bearing_sigma_deg: float = 0.05,
    range_source: str = "earth",
    range_interval_m: tuple[float, float] | None = None,
    first_seen_s: float | None = None,
    sent_at_s: float | None = None,
    confidence: float = 0.9,
) -> dict[str, Any]:
    """One tower's alarm about a fire at (fire_lat, fire_lon), as a JSON-ready dict."""
    now_s = time.time() if sent_at_s is None else sent_at_s
    first_s = now_s - 30.0 if first_seen_s is None else first_seen_s
    distance_m, bearing_deg = distance_bearing(tower_lat, tower_lon, fire_lat, fire_lon)
    bearing_deg = (bearing_deg + bearing_noise_deg) % 360.0
    if range_interval_m is None:
        range_interval_m = (0.7 * distance_m, 3.0 * distance_m)
    lidar = range_source == "lidar"
    if lidar:
        range_interval_m = (distance_m - 15.0, distance_m + 15.0)
    position = destination(tower_lat, tower_lon, bearing_deg, distance_m)
    half_m = (range_interval_m[1] - range_interval_m[0]) / 2.0
    payload: dict[str, Any] = {
        "schema": "towerwatch.alarm/1",
        "alarm_id": alarm_id,
        "seq": seq,
        "state": state,
        "first_seen": iso_z(first_s),
        "confirmed_at": iso_z(first_s + 5.0),
        "sent_at": iso_z(now_s),
        "tower": {"id": tower_id, "lat": tower_lat, "lon": tower_lon},
        "position": {"lat": position[0], "lon": position[1]},
        "uncertainty": {
            "semi_major_m": max(half_m, 1.0),
            "semi_minor_m": min(max(half_m, 1.0), distance_m * 0.0017 + 1.0),
            "orientation_deg": bearing_deg % 180.0,
            "level": 0.95,
        },
        "bearing_deg": bearing_deg,
        "elevation_deg": -0.3,
        "range_m": distance_m,
        "range_min_m": range_interval_m[0],
        "range_max_m": range_interval_m[1],
        "range_source": range_source,
        "bearing_only": False,
        "evidence": {"thermal": {"peak_k": 420.0}, "visible": None, "lidar": None},
        "size": {"a_eq_m2": 4.0, "growth_m2_per_min": 0.5},
        "confidence": confidence,
    }
    # The field lands in the contract separately; send it only once the model knows it.
    if "bearing_sigma_deg" in AlarmMessage.model_fields:
        payload["bearing_sigma_deg"] = bearing_sigma_deg
    AlarmMessage.model_validate(payload)
    return payload


def status_payload(
    tower_id: str, lat: float, lon: float, state: str = "online", detection_range_m: float = 20000.0
) -> dict[str, Any]:
    message = StatusMessage.model_validate(
        {
            "schema": "towerwatch.status/1",
            "tower_id": tower_id,
            "state": state,
            "heartbeat_at": iso_z(time.time()),
            "version": "sim",
            "position": {"lat": lat, "lon": lon, "height_m": 40.0},
            "detection_range_m": detection_range_m,
            "sensors": {"thermal": {"state": "ok"}},
        }
    )
    return message.to_dict()
