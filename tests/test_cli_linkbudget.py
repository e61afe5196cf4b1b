"""`towerwatch linkbudget`: horizon cap, exit code on FAIL, --json, default config and its env var."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.cli_support import CONFIG_ENV, DEFAULT_CONFIG
from edge.commands.linkbudget import horizon_m

ROOT = Path(__file__).resolve().parent.parent
SIM = str(ROOT / "config" / "simulated.yaml")


def test_horizon_of_a_40_m_mast_is_about_24_km() -> None:
    assert horizon_m(40.0, 0.13) == pytest.approx(24_200.0, rel=0.01)
    assert math.isinf(horizon_m(40.0, 1.0))


def test_ranges_are_capped_at_the_horizon_and_json_says_ok() -> None:
    result = CliRunner().invoke(cli, ["linkbudget", "--config", SIM, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["horizon_m"] == pytest.approx(24_200.0, rel=0.01)
    assert doc["ok"] is True
    for row in doc["rows"]:
        assert row["max_range_day_m"] <= doc["horizon_m"] + 1e-6
        assert row["max_range_night_m"] <= doc["horizon_m"] + 1e-6
    # Dry air sees the 6 m fire far beyond 24 km: only the horizon limits it.
    assert any(r["max_range_night_m"] == pytest.approx(doc["horizon_m"]) for r in doc["rows"])


def test_a_fail_in_todays_air_exits_non_zero() -> None:
    humid = ["--set", "weather.air_temp_c=30", "--set", "weather.relative_humidity_pct=80"]
    result = CliRunner().invoke(cli, ["linkbudget", "--config", SIM, *humid])
    assert result.exit_code == 1
    assert "FAIL in today's air" in result.output
    as_json = CliRunner().invoke(cli, ["linkbudget", "--config", SIM, "--json", *humid])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["ok"] is False


def test_a_required_range_beyond_the_horizon_fails() -> None:
    low_mast = ["--set", "tower.mast_height_m=10"]  # horizon ≈ 12 km < 20 km required
    result = CliRunner().invoke(cli, ["linkbudget", "--config", SIM, *low_mast])
    assert result.exit_code == 1
    assert "beyond the horizon" in result.output
    assert "HORIZON" in result.output


def test_default_config_is_the_installed_path_and_the_env_var_overrides_it() -> None:
    assert DEFAULT_CONFIG == "/etc/towerwatch/tower.yaml"
    runner = CliRunner()
    via_env = runner.invoke(cli, ["linkbudget", "--json"], env={CONFIG_ENV: SIM})
    assert via_env.exit_code == 0, via_env.output
    missing = runner.invoke(
        cli, ["linkbudget"], env={CONFIG_ENV: str(ROOT / "no-such-dir" / "tower.yaml")}
    )
    assert missing.exit_code == 2
    assert "no such config file" in missing.output
    assert CONFIG_ENV in missing.output
