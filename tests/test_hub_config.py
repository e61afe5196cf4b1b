"""The hub config: the shipped file loads, --set overrides, errors name file:line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_hub_config
from tests.hub_helpers import REPO_ROOT

HUB_YAML = REPO_ROOT / "config" / "county" / "hub.yaml"


def test_shipped_hub_config_loads_with_the_documented_defaults() -> None:
    config = load_hub_config(HUB_YAML)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.topic_prefix) == (
        "127.0.0.1",
        1883,
        "towerwatch",
    )
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8090)
    assert config.store.backend == "sqlite"
    assert str(config.store.sqlite_path).startswith("var/hub/")


def test_set_overrides_any_key() -> None:
    config = load_hub_config(
        HUB_YAML,
        ["mqtt.port=18830", "http.port=0", "store.backend=postgresql", "mqtt.shared_group=hubs"],
    )
    assert config.mqtt.port == 18830 and config.http.port == 0
    assert config.store.backend == "postgresql" and config.mqtt.shared_group == "hubs"


def test_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("mqtt:\n  port: 70000\nhttp:\n  colour: red\nstore:\n  backend: oracle\n")
    with pytest.raises(ConfigError) as caught:
        load_hub_config(path)
    problems = caught.value.problems
    assert f"{path}:2: mqtt.port: must be 1-65535, got 70000" in problems
    assert any(p.startswith(f"{path}:4: http.colour: unknown key") for p in problems)
    assert any(p.startswith(f"{path}:6: store.backend:") for p in problems)


def test_duplicate_keys_and_bad_overrides_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("http:\n  port: 1\n  port: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_hub_config(path, ["mqtt.port"])
    text = "\n".join(caught.value.problems)
    assert f"{path}:3: http.port: duplicate key" in text
    assert "--set mqtt.port: expected KEY=VALUE" in text


def test_cli_reports_problems_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "hub",
            "--config",
            str(HUB_YAML),
            "--set",
            "http.port=abc",
            "--check",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--set http.port=abc: http.port: must be a whole number, got 'abc'" in result.stderr
    assert "Traceback" not in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "edge.cli", "hub", "--config", str(HUB_YAML), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
