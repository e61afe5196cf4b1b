"""`towerwatch doctor`: lists what is missing on a bare machine; passes on the simulated tower."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import MosquittoBroker
from tests.towers import ROOT, SIM_CONFIG, SimTowerRun, _env, towerwatch

SCENARIO = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"


def _doctor(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        towerwatch("doctor", *args),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_the_example_config_on_a_machine_without_devices_lists_what_is_missing() -> None:
    result = _doctor("--config", str(ROOT / "config" / "tower.example.yaml"), "--timeout", "1")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.split()[0] in {"ok", "warn", "fail", "skip"} for line in lines), lines
    failing = {line.split()[1] + " " + line.split()[2] for line in lines if line.startswith("fail")}
    for expected in (
        "file mqtt.tls.ca_file",
        "file mqtt.tls.cert_file",
        "serial lidar.port",
        "serial gnss.port",
        "serial relay.port",
    ):
        assert expected in failing, result.stdout
    assert any(line.startswith("fail  secrets") for line in lines)
    assert any(line.startswith("fail  thermal") for line in lines)
    assert any(line.startswith("fail  ptz (onvif)") for line in lines)
    assert any(line.startswith("ok    config") for line in lines)
    assert "Traceback" not in result.stderr


def test_a_broken_config_is_one_line_per_problem_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "tower.yaml"
    bad.write_text(SIM_CONFIG.read_text() + "\nbogus_key: 1\n")
    result = _doctor("--config", str(bad), "--json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert any("bogus_key" in c["detail"] for c in doc["checks"] if c["verdict"] == "fail")


def test_the_simulated_tower_passes(mqtt_broker: MosquittoBroker, tmp_path: Path) -> None:
    # Secrets laid out as the commissioning guide says: a private folder, owner-only files.
    secrets = tmp_path / "secrets"
    shutil.copytree(ROOT / "config" / "simulated-secrets", secrets)
    secrets.chmod(0o700)
    for path in secrets.iterdir():
        path.chmod(0o600)
    run = SimTowerRun(tmp_path, SCENARIO, mqtt_broker.port, speed=1.0)
    try:
        run.start_tower()
        result = _doctor(
            "--config",
            str(SIM_CONFIG),
            *run.sets(),
            "--set",
            f"secrets.directory={secrets}",
            "--json",
            "--timeout",
            "20",
        )
    finally:
        run.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    verdicts = {c["name"]: c["verdict"] for c in doc["checks"]}
    for name in ("thermal", "thermal radiometric", "ptz (onvif)", "ptz clock", "visible",
                 "lidar", "gnss", "relay", f"broker 127.0.0.1:{mqtt_broker.port}"):  # fmt: skip
        assert verdicts.get(name) == "ok", (name, doc["checks"])
    assert all(v in {"ok", "skip"} for v in verdicts.values()), doc["checks"]


def test_a_world_readable_secret_fails(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "onvif-password").write_text("x")
    os.chmod(secrets / "onvif-password", 0o644)
    from edge.commands.doctor import check_secrets
    from edge.config import load_config

    cfg = load_config(SIM_CONFIG, [f"secrets.directory={secrets}"])
    (check,) = check_secrets(cfg)
    assert check.verdict == "fail"
    assert "readable by everyone" in check.detail
    os.chmod(secrets / "onvif-password", 0o600)
    (check,) = check_secrets(cfg)
    assert check.verdict == "ok"
