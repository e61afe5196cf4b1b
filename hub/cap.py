"""A fused fire as an OASIS CAP 1.2 alert (Alert, then Update, Cancel when cleared)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from edge.messages import parse_iso_z
from hub.model import FireMessage

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "towerwatch-hub"


def cap_time(iso_z_text: str) -> str:
    """CAP wants `2026-12-01T08:00:00+00:00`: seconds, an explicit offset, no `Z`."""
    stamp = dt.datetime.fromtimestamp(parse_iso_z(iso_z_text), tz=dt.UTC).replace(microsecond=0)
    return stamp.isoformat()


def identifier(fire: FireMessage, version: int) -> str:
    return f"{SENDER}.{fire.fire_id}.{version}"


def _sent(fire: FireMessage) -> str:
    # Version 1 is sent when the fire was confirmed; later versions when they changed.
    if fire.version == 1:
        return cap_time(fire.confirmed_at)
    return cap_time(fire.cleared_at or fire.updated_at)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _polygon_text(fire: FireMessage) -> str:
    ring = fire.area.coordinates[0]
    return " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in ring)


def fire_cap(fire: FireMessage) -> str:
    """The CAP 1.2 XML document of the fire's current version."""
    ET.register_namespace("", CAP_NS)
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", identifier(fire, fire.version))
    _sub(alert, "sender", SENDER)
    _sub(alert, "sent", _sent(fire))
    _sub(alert, "status", "Test" if fire.test else "Actual")
    cleared = fire.state == "cleared"
    msg_type = "Cancel" if cleared else ("Alert" if fire.version == 1 else "Update")
    _sub(alert, "msgType", msg_type)
    _sub(alert, "scope", "Public")
    if msg_type != "Alert":
        _sub(alert, "references", f"{SENDER},{identifier(fire, 1)},{cap_time(fire.confirmed_at)}")
    info = _sub(alert, "info")
    _sub(info, "language", "en")
    _sub(info, "category", "Fire")
    _sub(info, "event", "Wildfire")
    _sub(info, "responseType", "AllClear" if cleared else "Monitor")
    _sub(info, "urgency", "Past" if cleared else "Immediate")
    _sub(info, "severity", "Minor" if cleared else "Severe")
    _sub(info, "certainty", "Observed" if len(fire.towers) > 1 else "Likely")
    _sub(info, "effective", cap_time(fire.confirmed_at))
    _sub(info, "senderName", "towerwatch county hub")
    where = (
        f"{fire.position.lat:.5f} N, {fire.position.lon:.5f} E"
        if fire.position is not None
        else "bearing only: see area"
    )
    _sub(info, "headline", f"{'Cleared: ' if cleared else ''}fire {fire.fire_id} at {where}")
    located = {
        "triangulated": "triangulated from towers",
        "single": f"located by one tower ({fire.range_source})",
        "poor": "seen by several towers, geometry too poor to triangulate",
        "bearing_only": "bearing from one tower; position within the wedge",
    }[fire.geometry]
    description = f"Fire seen by {', '.join(fire.towers)}; {located}."
    if fire.uncertainty is not None:
        description += f" 95 % ellipse semi-major {fire.uncertainty.semi_major_m:.0f} m."
    if fire.note:
        description += f" {fire.note}."
    _sub(info, "description", description)
    for name, value in (
        ("fire_id", fire.fire_id),
        ("range_source", fire.range_source),
        ("confidence", f"{fire.confidence:.3f}"),
        ("towers", " ".join(fire.towers)),
    ):
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    area = _sub(info, "area")
    _sub(area, "areaDesc", "95 % ellipse" if fire.uncertainty is not None else "bearing wedge")
    _sub(area, "polygon", _polygon_text(fire))
    if fire.position is not None and fire.uncertainty is not None:
        radius_km = fire.uncertainty.semi_major_m / 1000.0
        _sub(area, "circle", f"{fire.position.lat:.6f},{fire.position.lon:.6f} {radius_km:.3f}")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(alert, encoding="unicode")
