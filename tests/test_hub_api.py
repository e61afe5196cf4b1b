"""The hub's HTTP API over a real store: GeoJSON, CAP 1.2, acknowledge, snapshots, the page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from edge.messages import AlarmMessage
from hub.cap import CAP_NS
from hub.fires import Fuser, FusionSettings
from hub.store import SqliteStore
from hub.synth import alarm_payload, status_payload
from hub.web import create_app
from tests.hub_helpers import FIRE, OFFICER, TOWER_A, TOWER_B, add_accounts

C = f"{{{CAP_NS}}}"
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
# Element order of CAP 1.2 (the schema is a sequence); optional ones may be absent.
ALERT_ORDER = [
    "identifier",
    "sender",
    "sent",
    "status",
    "msgType",
    "source",
    "scope",
    "restriction",
    "addresses",
    "code",
    "note",
    "references",
    "incidents",
    "info",
]
INFO_ORDER = [
    "language",
    "category",
    "event",
    "responseType",
    "urgency",
    "severity",
    "certainty",
    "audience",
    "eventCode",
    "effective",
    "onset",
    "expires",
    "senderName",
    "headline",
    "description",
    "instruction",
    "web",
    "contact",
    "parameter",
    "resource",
    "area",
]
AREA_ORDER = ["areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "hub.sqlite3")
    yield s
    s.close()


@pytest.fixture
def client(store: SqliteStore) -> TestClient:
    """Logged in as an officer, sending the session's CSRF token as the page does."""
    add_accounts(store)
    c = TestClient(create_app(store))
    login = c.post("/api/login", json={"name": OFFICER[0], "password": OFFICER[1]})
    assert login.status_code == 200, login.text
    c.headers["X-CSRF-Token"] = login.json()["csrf"]
    return c


def _feed(store: SqliteStore, state: str = "confirmed", seq: int = 1, towers: int = 2) -> None:
    for k, tower in enumerate((TOWER_A, TOWER_B)[:towers]):
        tid = f"T{k + 1}"
        store.record_status(tid, status_payload(tid, *tower), "online", 1.0)
        alarm = AlarmMessage.model_validate(
            alarm_payload(
                alarm_id=f"{tid}-a",
                seq=seq,
                tower_id=tid,
                tower_lat=tower[0],
                tower_lon=tower[1],
                fire_lat=FIRE[0],
                fire_lon=FIRE[1],
                state=state,
                first_seen_s=1_800_000_000.0,
                sent_at_s=1_800_000_000.0 + seq,
            )
        )
        store.record_alarm(alarm, alarm.to_json(), 1.0)
    store.fuse(Fuser(FusionSettings()), 1_800_000_100.0 + seq)


def _check_order(parent: ET.Element, order: list[str]) -> list[str]:
    tags = [child.tag.removeprefix(C) for child in parent]
    assert all(t in order for t in tags), f"unknown CAP elements {tags}"
    positions = [order.index(t) for t in tags]
    assert positions == sorted(positions), f"CAP elements out of order: {tags}"
    return tags


def _cap(client: TestClient, fire_id: str) -> ET.Element:
    response = client.get(f"/api/fires/{fire_id}/cap")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/cap+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{C}alert"
    tags = _check_order(root, ALERT_ORDER)
    for required in ("identifier", "sender", "sent", "status", "msgType", "scope"):
        assert required in tags
    sent = root.findtext(f"{C}sent")
    assert sent is not None and CAP_TIME.match(sent)
    for info in root.findall(f"{C}info"):
        info_tags = _check_order(info, INFO_ORDER)
        for required in ("category", "event", "urgency", "severity", "certainty"):
            assert required in info_tags
        for area in info.findall(f"{C}area"):
            _check_order(area, AREA_ORDER)
            polygon = (area.findtext(f"{C}polygon") or "").split()
            assert len(polygon) >= 4 and polygon[0] == polygon[-1]
    return root


def test_fires_are_rfc7946_features_with_lon_lat(client: TestClient, store: SqliteStore) -> None:
    _feed(store)
    response = client.get("/api/fires")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    (feature,) = collection["features"]
    lon, lat = feature["geometry"]["coordinates"]
    assert abs(lon - FIRE[1]) < 1e-3 and abs(lat - FIRE[0]) < 1e-3
    p = feature["properties"]
    assert p["range_source"] == "triangulated" and p["state"] == "active"
    assert p["towers"] == ["T1", "T2"]
    assert set(p["uncertainty"]) == {"semi_major_m", "semi_minor_m", "orientation_deg"}
    assert p["area"]["type"] == "Polygon"
    ring = p["area"]["coordinates"][0]
    assert ring[0] == ring[-1]
    assert all(121.0 < pt[0] < 123.0 and 40.0 < pt[1] < 42.0 for pt in ring)


def test_one_tower_fire_has_no_point_but_a_wedge(client: TestClient, store: SqliteStore) -> None:
    _feed(store, towers=1)
    (feature,) = client.get("/api/fires").json()["features"]
    assert feature["geometry"] is None
    assert feature["properties"]["uncertainty"] is None
    assert feature["properties"]["geometry"] == "bearing_only"


def test_towers_carry_state_and_position(client: TestClient, store: SqliteStore) -> None:
    _feed(store)
    store.record_malformed("T2", "alarm: bad")
    towers = {f["id"]: f for f in client.get("/api/towers").json()["features"]}
    assert towers["T1"]["geometry"]["coordinates"] == [TOWER_A[1], TOWER_A[0]]
    assert towers["T1"]["properties"]["state"] == "online"
    assert towers["T2"]["properties"]["malformed"] == 1


def test_cap_goes_alert_update_cancel(client: TestClient, store: SqliteStore) -> None:
    _feed(store)
    fire_id = client.get("/api/fires").json()["features"][0]["id"]
    first = _cap(client, fire_id)
    assert first.findtext(f"{C}msgType") == "Alert"
    assert first.findtext(f"{C}status") == "Actual"
    assert first.find(f"{C}references") is None
    _feed(store, state="updated", seq=2)
    update = _cap(client, fire_id)
    assert update.findtext(f"{C}msgType") == "Update"
    references = update.findtext(f"{C}references") or ""
    assert references.split(",")[1] == first.findtext(f"{C}identifier")
    _feed(store, state="cleared", seq=3)
    cancel = _cap(client, fire_id)
    assert cancel.findtext(f"{C}msgType") == "Cancel"
    assert client.get("/api/fires").json()["features"] == []
    assert len(client.get("/api/fires?all=1").json()["features"]) == 1


def test_test_alarms_make_a_test_cap(client: TestClient, store: SqliteStore) -> None:
    _feed(store, state="test")
    fire_id = client.get("/api/fires").json()["features"][0]["id"]
    assert _cap(client, fire_id).findtext(f"{C}status") == "Test"


def test_acknowledge_route(client: TestClient, store: SqliteStore) -> None:
    _feed(store)
    fire_id = client.get("/api/fires").json()["features"][0]["id"]
    assert client.post("/api/fires/Fnope/acknowledge").status_code == 404
    # The name is the session's: a body claiming another is ignored.
    response = client.post(f"/api/fires/{fire_id}/acknowledge", json={"by": "Li"})
    assert response.status_code == 200 and response.json()["by"] == OFFICER[0]
    props = client.get("/api/fires").json()["features"][0]["properties"]
    assert props["acknowledged"]["by"] == OFFICER[0]
    assert client.get(f"/api/fires/{fire_id}/acknowledge").status_code == 405


def test_snapshot_is_served_and_linked(client: TestClient, store: SqliteStore) -> None:
    _feed(store)
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg-body"
    store.record_snapshot("T1-a", "T1", jpeg, 1.0)
    props = client.get("/api/fires").json()["features"][0]["properties"]
    assert props["snapshot"] == "/api/alarms/T1-a/snapshot"
    response = client.get(props["snapshot"])
    assert response.content == jpeg and response.headers["content-type"] == "image/jpeg"
    assert client.get("/api/alarms/T2-a/snapshot").status_code == 404


def test_unknown_ids_are_404_not_errors(client: TestClient) -> None:
    for path in ("/api/fires/Fx", "/api/fires/Fx/cap", "/api/fires/..%2Fx/cap", "/static/nope.js"):
        assert client.get(path).status_code == 404


def test_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    texts = [page.text, client.get("/static/app.js").text, client.get("/static/app.css").text]
    for text in texts:
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text)
        assert 'fetch("http' not in text
