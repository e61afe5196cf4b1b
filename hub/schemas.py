"""Writes the JSON Schemas of every MQTT payload into docs/schemas/ from the pydantic models.

python -m hub.schemas            # regenerate docs/schemas/*.schema.json
python -m hub.schemas --check    # exit 1 and name the stale files (what the test does)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from edge.messages import COMMAND_MODELS, AlarmMessage, StatusMessage
from hub.model import FireMessage

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def payload_models() -> dict[str, type[BaseModel]]:
    """File stem → model: the tower's alarm and status, the hub's fire, each command."""
    models: dict[str, type[BaseModel]] = {
        "towerwatch.alarm-1": AlarmMessage,
        "towerwatch.status-1": StatusMessage,
        "towerwatch.fire-1": FireMessage,
    }
    for verb, model in COMMAND_MODELS.items():
        models[f"towerwatch.cmd.{verb.value}"] = model
    return models


def schema_of(stem: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DIALECT, "$id": f"{stem}.schema.json", **schema}


def rendered() -> dict[str, str]:
    return {
        f"{stem}.schema.json": json.dumps(schema_of(stem, model), indent=2, ensure_ascii=False)
        + "\n"
        for stem, model in payload_models().items()
    }


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Files that differ from what the models say now (or are missing, or left over)."""
    wanted = rendered()
    out = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
    out += [p.name for p in directory.glob("*.schema.json") if p.name not in wanted]
    return sorted(out)


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.schema.json"):
        old.unlink()
    for name, text in rendered().items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(rendered())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for name in problems:
            print(f"{SCHEMA_DIR / name}: stale; run python -m hub.schemas", file=sys.stderr)
        return 1 if problems else 0
    for name in write():
        print(SCHEMA_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
