"""The shipped unit stays hardened: `systemd-analyze security` exposure at most 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "towerwatch.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_the_unit_exposure_score_is_at_most_2() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for towerwatch.service: ([0-9.]+)", result.stdout)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    assert float(found.group(1)) <= 2.0


def test_only_the_mqtt_password_is_loaded_by_the_unit_itself() -> None:
    credentials = re.findall(r"^LoadCredential=([^:]+):", UNIT.read_text(), re.MULTILINE)
    assert credentials == ["mqtt-password"]


def test_the_gpio_relay_can_reach_its_chip_under_the_unit() -> None:
    text = UNIT.read_text()
    assert "DeviceAllow=char-gpiochip rw" in text
    assert "DevicePolicy=closed" in text
