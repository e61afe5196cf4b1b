"""Fires and towers as RFC 7946 GeoJSON ([lon, lat]) for the API and the page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge.messages import parse_iso_z
from hub.model import FireMessage
from hub.store import Acknowledgement, TowerRow


def urgency_key(fire: FireMessage, acknowledged: bool) -> tuple[int, int, float]:
    """Sort key, most urgent first: active real fires not yet acknowledged, newest first."""
    return (
        0 if fire.state == "active" else 1,
        (1 if acknowledged else 0) + (2 if fire.test else 0),
        -parse_iso_z(fire.confirmed_at),
    )


def fire_feature(
    fire: FireMessage, ack: Acknowledgement | None, snapshot_alarm: str | None
) -> dict[str, Any]:
    data = fire.to_dict()
    geometry = (
        None
        if fire.position is None
        else {"type": "Point", "coordinates": [fire.position.lon, fire.position.lat]}
    )
    uncertainty = data["uncertainty"]
    if uncertainty is not None:
        uncertainty = {
            k: uncertainty[k] for k in ("semi_major_m", "semi_minor_m", "orientation_deg")
        }
    properties = {
        "fire_id": fire.fire_id,
        "version": fire.version,
        "state": fire.state,
        "test": fire.test,
        "range_source": fire.range_source,
        "geometry": fire.geometry,
        "note": fire.note,
        "towers": list(fire.towers),
        "uncertainty": uncertainty,
        "area": data["area"],
        "first_seen": fire.first_seen,
        "confirmed_at": fire.confirmed_at,
        "updated_at": fire.updated_at,
        "cleared_at": fire.cleared_at,
        "confidence": fire.confidence,
        "size": data["size"],
        "alarms": data["alarms"],
        "merged_into": fire.merged_into,
        "acknowledged": None if ack is None else {"by": ack.by_name, "at_s": ack.at_s},
        "snapshot": None if snapshot_alarm is None else f"/api/alarms/{snapshot_alarm}/snapshot",
        "cap": f"/api/fires/{fire.fire_id}/cap",
    }
    return {"type": "Feature", "id": fire.fire_id, "geometry": geometry, "properties": properties}


def fire_collection(
    fires: Iterable[FireMessage],
    acks: Mapping[str, Acknowledgement],
    snapshot_ids: set[str],
) -> dict[str, Any]:
    ordered = sorted(fires, key=lambda f: urgency_key(f, f.fire_id in acks))
    features = []
    for fire in ordered:
        with_snapshot = [a.alarm_id for a in fire.alarms if a.alarm_id in snapshot_ids]
        features.append(
            fire_feature(fire, acks.get(fire.fire_id), with_snapshot[-1] if with_snapshot else None)
        )
    return {"type": "FeatureCollection", "features": features}


def tower_feature(row: TowerRow) -> dict[str, Any]:
    status = row.status or {}
    position = status.get("position")
    geometry = (
        None
        if not position
        else {"type": "Point", "coordinates": [position["lon"], position["lat"]]}
    )
    return {
        "type": "Feature",
        "id": row.tower_id,
        "geometry": geometry,
        "properties": {
            "tower_id": row.tower_id,
            "state": row.state or "unknown",
            "reasons": status.get("reasons", []),
            "heartbeat_at": status.get("heartbeat_at"),
            "detection_range_m": status.get("detection_range_m"),
            "patrol_cycle_s": status.get("patrol_cycle_s"),
            "malformed": row.malformed,
            "last_error": row.last_error,
        },
    }


def tower_collection(rows: Iterable[TowerRow]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [tower_feature(r) for r in rows]}
