"""Fuzzing of every payload the hub parses: from towers (status, alarm, alarm state,
snapshot) and from browsers (login, command and acknowledge bodies).

Whatever arrives, the hub answers with one of its outcomes or HTTP status codes and
never raises; a message it refuses is counted against the topic's tower; whatever it
stores, fusion can fuse (an alarm that validates but breaks the triangulation would stop
every fire in the county from updating).
"""

from __future__ import annotations

import copy
import json
import math
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hub.fires import Fuser, FusionSettings
from hub.ingest import Ingest
from hub.store import SqliteStore
from hub.synth import alarm_payload, status_payload
from hub.web import create_app
from tests.hub_helpers import FIRE, OFFICER, TOWER_A, TOWER_B, add_accounts

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OUTCOMES = {"alarm", "duplicate", "status", "snapshot", "malformed", "ignored"}

_GOOD_ALARM = alarm_payload(
    alarm_id="T1-fuzz", seq=1, tower_id="T1", tower_lat=TOWER_A[0], tower_lon=TOWER_A[1],
    fire_lat=FIRE[0], fire_lon=FIRE[1],
)  # fmt: skip
_OTHER_ALARM = alarm_payload(
    alarm_id="T2-fuzz", seq=1, tower_id="T2", tower_lat=TOWER_B[0], tower_lon=TOWER_B[1],
    fire_lat=FIRE[0], fire_lon=FIRE[1],
)  # fmt: skip
_GOOD_STATUS = status_payload("T1", *TOWER_A)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "hub.sqlite3")
    yield s
    s.close()


def _ingest(store: SqliteStore) -> Ingest:
    return Ingest(store, "towerwatch", max_json_bytes=65536, max_snapshot_bytes=100_000)


# Any JSON value, including the numbers JSON cannot carry but Python's json writes
# (NaN, Infinity), huge integers and text with control characters and surrogates' kin.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _leaf_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``doc`` (dict keys and list indices), the containers included."""
    paths = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths += _leaf_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            paths += _leaf_paths(value, (*prefix, index))
    return paths


_ALARM_PATHS = _leaf_paths(_GOOD_ALARM)[1:]
_STATUS_PATHS = _leaf_paths(_GOOD_STATUS)[1:]


def _mutated(doc: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> bytes:
    """``doc`` with the element at ``path`` replaced by ``value`` (or deleted)."""
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(out).encode()


def _fuse_all(store: SqliteStore) -> None:
    """A fusion pass over everything stored, as the hub's fusion worker runs it."""
    fires = store.fuse(Fuser(FusionSettings()), time.time())
    for fire in fires:
        assert fire.to_json()  # serialisable
        if fire.position is not None:
            assert math.isfinite(fire.position.lat) and math.isfinite(fire.position.lon)


_examples = iter(range(10**9))


@FUZZ
@given(
    path=st.sampled_from(_ALARM_PATHS),
    # Numbers are what a valid-looking alarm gets wrong most: drawn as often as anything.
    value=json_values | st.floats() | st.integers(),
    delete=st.booleans(),
    on_state_topic=st.booleans(),
)
def test_a_mutated_alarm_is_stored_and_fusable_or_refused_and_counted(
    store: SqliteStore, path: tuple[Any, ...], value: Any, delete: bool, on_state_topic: bool
) -> None:
    ingest = _ingest(store)
    assert ingest.handle("towerwatch/T2/alarm", json.dumps(_OTHER_ALARM).encode()) in {
        "alarm",
        "duplicate",
    }
    # A new alarm id per example, so that every valid mutation is stored and fused.
    alarm_id = f"T1-fuzz{next(_examples)}"
    payload = _mutated({**_GOOD_ALARM, "alarm_id": alarm_id}, path, value, delete)
    topic = f"towerwatch/T1/alarm/{alarm_id}/state" if on_state_topic else "towerwatch/T1/alarm"
    before = {t.tower_id: t.malformed for t in store.towers()}.get("T1", 0)
    outcome = ingest.handle(topic, payload)
    event(outcome)  # --hypothesis-show-statistics: both stored and refused alarms are drawn
    assert outcome in OUTCOMES
    after = {t.tower_id: t.malformed for t in store.towers()}.get("T1", 0)
    assert (after == before + 1) == (outcome == "malformed")
    _fuse_all(store)


@FUZZ
@given(path=st.sampled_from(_STATUS_PATHS), value=json_values, delete=st.booleans())
def test_a_mutated_status_is_stored_or_refused_and_counted(
    store: SqliteStore, path: tuple[Any, ...], value: Any, delete: bool
) -> None:
    ingest = _ingest(store)
    outcome = ingest.handle("towerwatch/T1/status", _mutated(_GOOD_STATUS, path, value, delete))
    assert outcome in {"status", "malformed"}
    assert store.towers()[0].tower_id == "T1"
    # A stored status must not make the next alarm of that tower crash the hub.
    assert ingest.handle("towerwatch/T1/alarm", json.dumps(_GOOD_ALARM).encode()) in OUTCOMES
    _fuse_all(store)


@FUZZ
@given(
    levels=st.lists(
        st.sampled_from(["T1", "alarm", "status", "snapshot", "state", "+", "#", "", "T1-fuzz"])
        | st.text(max_size=8),
        min_size=0,
        max_size=5,
    ),
    payload=st.binary(max_size=300) | st.just(b"\xff\xd8\xff" + b"\x00" * 10),
)
def test_any_bytes_on_any_topic_get_an_outcome(
    store: SqliteStore, levels: list[str], payload: bytes
) -> None:
    outcome = _ingest(store).handle("/".join(["towerwatch", *levels]), payload)
    assert outcome in OUTCOMES
    _fuse_all(store)


@FUZZ
@given(body=json_values, raw=st.binary(max_size=200), use_raw=st.booleans())
def test_any_login_body_is_a_clean_refusal(
    store: SqliteStore, body: Any, raw: bytes, use_raw: bool
) -> None:
    client = TestClient(create_app(store))
    content = raw if use_raw else json.dumps(body).encode()
    response = client.post(
        "/api/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in {400, 401, 422, 429}
    assert "set-cookie" not in response.headers


@pytest.fixture
def officer(store: SqliteStore) -> tuple[TestClient, dict[str, str], list[Any]]:
    add_accounts(store)
    sent: list[Any] = []
    client = TestClient(create_app(store, send_command=lambda *args: sent.append(args)))
    login = client.post("/api/login", json={"name": OFFICER[0], "password": OFFICER[1]})
    assert login.status_code == 200
    return client, {"X-CSRF-Token": login.json()["csrf"]}, sent


@FUZZ
@given(
    verb=st.sampled_from(["recheck", "test-alarm", "goto", "..", "recheck/../x"]),
    tower=st.sampled_from(["T1", "T-2_x", "+", "#", "a" * 70, "é"]),
    body=json_values,
)
def test_any_command_body_is_sent_valid_or_refused(
    officer: tuple[TestClient, dict[str, str], list[Any]], verb: str, tower: str, body: Any
) -> None:
    client, headers, sent = officer
    sent.clear()
    response = client.post(
        f"/api/towers/{tower}/commands/{verb}", content=json.dumps(body), headers=headers
    )
    assert response.status_code in {202, 400, 404, 405, 413, 422}
    if response.status_code == 202:
        ((sent_tower, sent_verb, payload),) = sent
        assert (sent_tower, sent_verb) == (tower, verb)
        json.dumps(payload, allow_nan=False)  # what goes to the tower is plain JSON
    else:
        assert sent == []


@FUZZ
@given(fire_id=st.text(max_size=30), body=json_values)
def test_any_acknowledge_of_any_id_is_answered(
    officer: tuple[TestClient, dict[str, str], list[Any]], fire_id: str, body: Any
) -> None:
    assume(fire_id not in {"", ".", ".."})
    client, headers, _ = officer
    response = client.post(
        f"/api/fires/{urllib.parse.quote(fire_id, safe='')}/acknowledge",
        content=json.dumps(body),
        headers=headers,
    )
    assert response.status_code in {200, 400, 404, 405, 409, 422}
