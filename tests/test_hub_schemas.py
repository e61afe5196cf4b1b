"""The JSON Schemas in docs/schemas/ are what the payload models say today."""

from __future__ import annotations

import json
from pathlib import Path

from hub.schemas import SCHEMA_DIR, payload_models, stale, write
from hub.synth import alarm_payload
from tests.hub_helpers import FIRE, TOWER_A


def test_committed_schemas_are_current() -> None:
    problems = stale()
    assert problems == [], f"stale JSON Schemas {problems}: run python -m hub.schemas"


def test_a_changed_model_makes_the_check_fail(tmp_path: Path) -> None:
    write(tmp_path)
    assert stale(tmp_path) == []
    victim = tmp_path / "towerwatch.alarm-1.schema.json"
    data = json.loads(victim.read_text())
    data["properties"].pop("seq")
    victim.write_text(json.dumps(data, indent=2) + "\n")
    (tmp_path / "towerwatch.old-0.schema.json").write_text("{}\n")
    assert stale(tmp_path) == ["towerwatch.alarm-1.schema.json", "towerwatch.old-0.schema.json"]


def test_every_payload_model_has_a_schema_file() -> None:
    names = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert names == {f"{stem}.schema.json" for stem in payload_models()}


def test_alarm_schema_names_what_a_tower_sends() -> None:
    schema = json.loads((SCHEMA_DIR / "towerwatch.alarm-1.schema.json").read_text())
    payload = alarm_payload(
        alarm_id="T1-a",
        seq=1,
        tower_id="T1",
        tower_lat=TOWER_A[0],
        tower_lon=TOWER_A[1],
        fire_lat=FIRE[0],
        fire_lon=FIRE[1],
    )
    assert set(payload) <= set(schema["properties"])
    assert set(schema["required"]) <= set(payload)
    assert schema["additionalProperties"] is False
