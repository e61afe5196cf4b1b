"""A full disk under the snapshot folder costs the local copies, never an alarm (reliability).

The fire reporter as the daemon wires it, with `storage.state_dir/snapshots` on a small
tmpfs filled to the last byte: every confirmed fire still closes the relay, is stored,
sent and its snapshot reaches the hub; local copies are kept again once space is freed.
The snapshot the hub gets carries no secret.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.base import Frame
from edge.alarms import AlarmBook
from edge.config import TowerConfig, load_config
from edge.confirm import Verdict
from edge.fire_reporter import FireReporter
from tests.test_fire_reporter import T0, Relay, Sink

ROOT = Path(__file__).resolve().parent.parent
SECRET = (ROOT / "config" / "simulated-secrets" / "onvif-password").read_text().strip()

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


class SnapshotSink(Sink):
    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.jpegs: list[bytes] = []

    def send_snapshot(self, alarm_id: str, jpeg: bytes) -> None:
        super().send_snapshot(alarm_id, jpeg)
        self.jpegs.append(jpeg)


@pytest.fixture
def full_snapshot_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True, timeout=20,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError) as full:
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        assert full.value.errno == errno.ENOSPC
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=20)


def _fire(bearing_deg: float) -> Verdict:
    image = np.full((512, 640), 290.0, dtype=np.float32)
    image[250:262, 310:322] = 330.0
    frame = Frame(image, T0, 1, True, bearing_deg, -0.32, 5.86)
    return Verdict("confirmed", "fire", bearing_deg, -0.32, 60.0, 1e-8, 0.9,
                   {"persistence": 1.0}, frame=frame, hotspot_xy=(316.0, 256.0))  # fmt: skip


@pytest.fixture
def cfg(tmp_path: Path) -> TowerConfig:
    return load_config(ROOT / "config" / "simulated.yaml", [f"storage.state_dir={tmp_path}"])


@needs_root
def test_a_full_snapshot_disk_loses_no_alarm_and_recovers_when_freed(
    cfg: TowerConfig, tmp_path: Path, full_snapshot_disk: Path
) -> None:
    log: list[str] = []
    sink = SnapshotSink(log)
    book = AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm)
    reporter = FireReporter(cfg, book, sink, Relay(log))

    reporter.confirmed(_fire(120.0), T0 - 10.0, None, T0)
    assert log[0] == "relay on" and "alarm confirmed" in log
    assert len(sink.alarms) == 1 and len(sink.jpegs) == 1  # the hub has both
    assert sink.jpegs[0].startswith(b"\xff\xd8")
    assert list(full_snapshot_disk.glob("*.jpg")) == []  # the local copy was lost
    assert book.open_alarms()

    (full_snapshot_disk / "filler").unlink()
    freed = time.monotonic()
    reporter.confirmed(_fire(160.0), T0 + 20.0, None, T0 + 30.0)  # another fire, far off
    assert len(sink.alarms) == 2 and len(sink.jpegs) == 2
    assert len(list(full_snapshot_disk.glob("*.jpg"))) == 1  # kept again
    assert time.monotonic() - freed < 5.0


def test_a_snapshot_carries_no_secret(cfg: TowerConfig, tmp_path: Path) -> None:
    assert SECRET  # the simulator's ONVIF password, which the daemon loads
    sink = SnapshotSink([])
    book = AlarmBook(tmp_path / "alarms.json", cfg.tower.id, cfg.alarm)
    FireReporter(cfg, book, sink, None).confirmed(_fire(120.0), T0 - 10.0, None, T0)
    (jpeg,) = sink.jpegs
    saved = [p.read_bytes() for p in (tmp_path / "snapshots").glob("*.jpg")]
    assert saved == [jpeg]
    for blob in (jpeg, *saved):
        assert SECRET.encode() not in blob
        assert cfg.ptz.model_dump_json().encode() not in blob
