"""Config loading: every shipped file passes; every mistake is named with its line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_is_valid(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.schema_version == 1
    assert cfg.tower.id


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tower.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_four_mistakes_give_four_messages_with_file_line_and_key(tmp_path: Path) -> None:
    text = BASE.replace("  port: 1883\n", "  port: 70000\n  keepalive_s: fast\n  colour: red\n")
    text = text.replace("  mast_height_m: 40.0\n", "  mast_height_m: 40.0\n  mast_height_m: 41.0\n")
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 4, problems
    expected = {
        "tower.mast_height_m": _line_of(text, "mast_height_m: 41.0"),
        "mqtt.port": _line_of(text, "port: 70000"),
        "mqtt.keepalive_s": _line_of(text, "keepalive_s: fast"),
        "mqtt.colour": _line_of(text, "colour: red"),
    }
    for key, line in expected.items():
        matching = [p for p in problems if f": {key}:" in p]
        assert matching, (key, problems)
        assert matching[0].startswith(f"{path}:{line}: {key}: "), matching[0]
    assert any("must be 1-65535, got 70000" in p for p in problems)
    assert any("duplicate key" in p for p in problems)
    assert any("unknown key" in p for p in problems)


def test_cli_config_check_prints_the_problems_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("  port: 1883\n", "  port: 70000\n"))
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}:" in result.output and "mqtt.port: must be 1-65535, got 70000" in result.output
    assert "Traceback" not in result.output


def test_set_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    cfg = load_config(path, ["mqtt.port=1884", "patrol.dwell_s=3.5"])
    assert cfg.mqtt.port == 1884 and cfg.patrol.dwell_s == 3.5
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["mqtt.port=0"])
    assert caught.value.problems == ["--set mqtt.port=0: mqtt.port: must be 1-65535, got 0"]
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["mqtt.port"])


def test_a_tower_may_not_take_the_hubs_identity(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["tower.id=hub"])
    (problem,) = caught.value.problems
    assert "tower.id" in problem and "the county hub's own identity" in problem


def test_device_sections_are_checked_by_their_driver(tmp_path: Path) -> None:
    text = BASE.replace("  stream: thermal\n", "  stream: thermal\n  fps_wish: 9\n", 1)
    text = text.replace("  type: onvif\n", "  type: teleport\n")
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert any(
        p.startswith(f"{path}:{_line_of(text, 'fps_wish')}: thermal.fps_wish: unknown key")
        for p in problems
    ), problems
    assert any(
        "ptz.type: unknown type 'teleport'; expected one of: onvif, pelco_d" in p for p in problems
    ), problems


def test_missing_file_and_bad_yaml_are_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")
    path = _write(tmp_path, "tower: [unclosed\n")
    with pytest.raises(ConfigError, match=r"tower\.yaml:\d+: YAML syntax error"):
        load_config(path)


def test_configs_are_frozen(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE))
    with pytest.raises(ValueError):
        cfg.mqtt.port = 1  # type: ignore[misc]


def test_cli_help_is_quick_to_import_and_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("run", "config", "simulate", "replay", "record", "linkbudget"):
        assert name in result.output


def test_unknown_subcommand_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2


@pytest.mark.parametrize("name", ["tower.example.yaml", "simulated.yaml"])
def test_config_show_prints_every_device_section_in_full(name: str, tmp_path: Path) -> None:
    source = ROOT / "config" / name
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(source)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    cfg = load_config(source)
    for section in ("thermal", "visible", "ptz", "lidar", "gnss", "relay"):
        device = getattr(cfg, section)
        if device is None:
            assert shown[section] is None
            continue
        assert shown[section]["type"] == device.type
        assert set(shown[section]) == set(type(device).model_fields), section
    # what `show` prints is a config that loads back to the same one
    again = tmp_path / "shown.yaml"
    again.write_text(result.output, encoding="utf-8")
    assert load_config(again) == cfg


@pytest.mark.parametrize(
    ("sets", "key", "other"),
    [
        (["relay.hardware_max_on_s=600"], "alarm_output.on_time_s", "relay.hardware_max_on_s"),
        (["relay.hardware_max_on_s=600", "alarm_output.on_time_s=900",
          "alarm_output.hold_while_open=false"],
         "alarm_output.on_time_s", "relay.hardware_max_on_s"),
        (["relay.hardware_max_on_s=600", "alarm_output.on_time_s=300"],
         "alarm_output.hold_while_open", "relay.hardware_max_on_s"),
        (["relay.min_on_s=5", "alarm_output.on_time_s=3"], "alarm_output.on_time_s",
         "relay.min_on_s"),
    ],
    ids=["hold-until-reset", "longer-than-hardware", "hold-while-open", "below-minimum"],
)  # fmt: skip
def test_relay_timings_that_disagree_with_alarm_output_are_refused_naming_both_keys(
    tmp_path: Path, sets: list[str], key: str, other: str
) -> None:
    path = _write(tmp_path, BASE)
    with pytest.raises(ConfigError) as caught:
        load_config(path, sets)
    [problem] = caught.value.problems
    assert f": {key}: " in problem and other in problem, problem


def test_one_relay_rule_when_the_timings_agree(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    cfg = load_config(path, ["relay.hardware_max_on_s=600", "alarm_output.on_time_s=300",
                             "alarm_output.hold_while_open=false"])  # fmt: skip
    assert cfg.alarm_output.on_time_s == 300.0
    assert getattr(cfg.relay, "hardware_max_on_s", None) == 600.0
    with pytest.raises(ConfigError, match="unknown key") as caught:
        load_config(path, ["relay.max_on_s=600"])  # the old driver key is gone
    assert "relay.max_on_s" in caught.value.problems[0]
