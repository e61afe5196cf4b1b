"""Secret files: permissions enforced, values never in log lines or tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.base import DriverError
from edge.secrets import FileSecretStore, redact, remember_secret

REPO = Path(__file__).resolve().parents[1]


def test_a_secret_file_others_may_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("hunter2-long\n")
    secret.chmod(0o644)
    store = FileSecretStore(tmp_path)
    with pytest.raises(DriverError, match=r"readable by others \(mode 0644\); run: chmod 600"):
        store.read("mqtt-password")
    secret.chmod(0o600)
    assert store.read("mqtt-password") == "hunter2-long"
    # The demo store of the simulator accepts it (secrets.allow_readable_files).
    secret.chmod(0o644)
    assert FileSecretStore(tmp_path, require_private=False).read("mqtt-password") == (
        "hunter2-long"
    )


def test_a_key_file_is_checked_too_and_a_missing_one_named(tmp_path: Path) -> None:
    key = tmp_path / "tower-key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o640)
    store = FileSecretStore(tmp_path)
    with pytest.raises(DriverError, match="tower-key"):
        store.private_path("tower-key")
    key.chmod(0o400)
    assert store.private_path("tower-key") == key
    with pytest.raises(DriverError, match="does not exist"):
        store.private_path("absent")


def test_an_empty_secret_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "onvif-password").write_text("\n")
    (tmp_path / "onvif-password").chmod(0o600)
    with pytest.raises(DriverError, match="onvif-password is empty"):
        FileSecretStore(tmp_path).read("onvif-password")


def test_remembered_values_are_blanked() -> None:
    remember_secret("pa55word-xyz")
    assert redact("login with pa55word-xyz failed") == "login with *** failed"
    remember_secret("abc")  # too short to redact without mangling ordinary text
    assert redact("abc") == "abc"


_LOGGING_PROCESS = """
import sys
from pathlib import Path
import structlog
from edge.logs import setup_logging
from edge.secrets import FileSecretStore
setup_logging("info", "json")
password = FileSecretStore(Path(sys.argv[1])).read("mqtt-password")
log = structlog.get_logger("test")
def connect(payload):
    secret_local = password
    raise ValueError("broker said no to " + password)
try:
    connect("ATTACKER-PAYLOAD-123")
except ValueError:
    log.exception("connect_failed")
log.info("configured", password=password)
"""


def test_logs_carry_no_secret_and_no_local_variables(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cr3t-broker-pass\n")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    result = subprocess.run(
        [sys.executable, "-c", _LOGGING_PROCESS, str(tmp_path)],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    assert set(events) == {"connect_failed", "configured"}
    assert "s3cr3t-broker-pass" not in result.stderr
    assert "ATTACKER-PAYLOAD-123" not in result.stderr  # a local of a traceback frame
    assert events["configured"]["password"] == "***"
    assert "broker said no to ***" in json.dumps(events["connect_failed"])
