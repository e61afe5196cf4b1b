"""Fault injection on the uplink's network path: a blackhole (packets silently dropped,
so connections hang rather than fail) between a tower in its own network namespace and
the broker, and a full disk under the outbox.

The blackhole uses a veth pair into a private network namespace and tc's `blackhole`
qdisc on both ends, which drops every packet (this kernel has no netem; blackhole is
netem with 100 % loss). Needs root and iproute2: skipped with the reason otherwise.
Each test reports the figures the README's reliability table quotes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MosquittoBroker, MqttCollector

from edge.outbox import Outbox

REPO = Path(__file__).resolve().parents[1]
TOWER_SCRIPT = REPO / "tests" / "fault_tower.py"

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and tc need root"),
    pytest.mark.skipif(
        shutil.which("ip") is None or shutil.which("tc") is None,
        reason="iproute2 (ip, tc) is not installed",
    ),  # fmt: skip
]


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@dataclass
class Namespace:
    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def blackhole(self, on: bool) -> None:
        verb = "add" if on else "del"
        _run("tc", "qdisc", verb, "dev", self.host_if, "root", "blackhole")
        _run("ip", "netns", "exec", self.name, "tc", "qdisc", verb, "dev", self.ns_if, "root",
             "blackhole")  # fmt: skip


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    tag = f"{os.getpid() % 10000}"
    octet = 16 + os.getpid() % 200
    ns = Namespace(f"twf{tag}", f"twh{tag}", f"twn{tag}", f"10.213.{octet}.1", f"10.213.{octet}.2")
    try:
        _run("ip", "netns", "add", ns.name)
    except subprocess.CalledProcessError as err:
        pytest.skip(f"cannot create a network namespace here: {err.stderr.decode().strip()}")
    try:
        _run("ip", "netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
        _run("ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        _run("ip", "link", "set", ns.ns_if, "netns", ns.name)
        _run("ip", "addr", "add", f"{ns.host_ip}/24", "dev", ns.host_if)
        _run("ip", "link", "set", ns.host_if, "up")
        _run("ip", "netns", "exec", ns.name, "ip", "addr", "add", f"{ns.ns_ip}/24", "dev", ns.ns_if)
        _run("ip", "netns", "exec", ns.name, "ip", "link", "set", ns.ns_if, "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=20)


@dataclass
class TowerProcess:
    process: subprocess.Popen[str]
    sent: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line)
                if line.startswith("sent "):
                    self.sent.append(int(line.split()[1]))
                elif line.startswith("refused "):
                    self.refused.append(line)

    def sent_now(self) -> list[int]:
        with self._lock:
            return list(self.sent)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_tower(prefix: list[str], outbox: Path, host: str, port: int, *extra: str) -> TowerProcess:
    process = subprocess.Popen(
        [*prefix, sys.executable, str(TOWER_SCRIPT), str(outbox), host, str(port), "0.2", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return TowerProcess(process)


def wait_until(check, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def alarm_seqs(collector: MqttCollector) -> list[int]:
    return [m.json()["seq"] for m in collector.messages("towerwatch/t1/alarm")]


def test_a_network_blackhole_loses_no_alarm(
    tmp_path: Path, namespace: Namespace, capsys: pytest.CaptureFixture[str]
) -> None:
    broker_port = 20000 + os.getpid() % 20000
    broker = MosquittoBroker(
        tmp_path / "broker", extra_config=[f"listener {broker_port} {namespace.host_ip}"]
    )
    broker.start()
    tower: TowerProcess | None = None
    try:
        with MqttCollector(broker.host, broker.port, ["towerwatch/t1/alarm"]) as hub:
            tower = start_tower(["ip", "netns", "exec", namespace.name], tmp_path / "outbox.sqlite",
                                namespace.host_ip, broker_port)  # fmt: skip
            wait_until(lambda: len(alarm_seqs(hub)) >= 5, 30, "alarms before the fault")
            namespace.blackhole(True)
            blackholed_at = time.monotonic()
            # Longer than 1.5 keep-alives (5 s): the tower must notice a hung link itself.
            time.sleep(9.0)
            sent_during = [s for s in tower.sent_now() if s > max(alarm_seqs(hub))]
            namespace.blackhole(False)
            lifted_at = time.monotonic()
            assert len(sent_during) >= 20  # the tower kept committing alarms
            recover_s = wait_until(
                lambda: set(sent_during) <= set(alarm_seqs(hub)), 60, "alarms queued in the outage"
            )
            # The link carries new alarms again, not only the backlog.
            after_outage = tower.sent_now()
            wait_until(
                lambda: set(after_outage) <= set(alarm_seqs(hub)), 30, "alarms after the outage"
            )
            tower.stop()
            sent = tower.sent_now()
            # An alarm committed just before SIGTERM may still be unacknowledged: it waits in
            # the outbox for the next start, which is delivery too, not loss.
            with Outbox(tmp_path / "outbox.sqlite") as outbox:
                waiting = {row.seq for row in outbox.pending()}
            seqs = alarm_seqs(hub)
            first_arrivals = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
            lost = sorted(set(sent) - set(seqs) - waiting)
            assert lost == []
            delivered = [s for s in sorted(sent) if s not in waiting]
            assert first_arrivals[: len(delivered)] == delivered
            with capsys.disabled():
                print(
                    f"\n[fault] blackhole {lifted_at - blackholed_at:.1f} s: {len(sent)} alarms, "
                    f"{len(sent_during)} queued in the outage, {len(waiting)} waiting for the "
                    f"next start, lost {len(lost)}, duplicates {len(seqs) - len(set(seqs))}, "
                    f"recovered {recover_s:.1f} s after the link came back"
                )
    finally:
        if tower is not None:
            tower.stop()
        broker.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True, timeout=20,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)


def test_a_full_disk_refuses_alarms_clearly_and_recovers(
    tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    filler = small_disk / "filler"
    tower: TowerProcess | None = None
    try:
        with MqttCollector(broker.host, broker.port, ["towerwatch/t1/alarm"]) as hub:
            broker.stop()  # alarms pile up in the outbox until the disk is full
            tower = start_tower([], small_disk / "outbox.sqlite", broker.host, broker.port)
            wait_until(lambda: len(tower.sent_now()) >= 3, 30, "first alarms")
            with filler.open("wb") as f, pytest.raises(OSError):
                f.write(b"\0" * (2 * 1024 * 1024))  # take what is left of the disk
            wait_until(lambda: len(tower.refused) >= 2, 30, "refusals on the full disk")
            assert "disk full" in tower.refused[0]
            assert str(small_disk / "outbox.sqlite") in tower.refused[0]
            filler.unlink()
            refused_at = len(tower.refused)
            freed_sent = len(tower.sent_now())
            recover_s = wait_until(
                lambda: len(tower.sent_now()) > freed_sent + 2, 30, "stores again"
            )
            broker.start()
            stored = tower.sent_now()
            wait_until(lambda: set(stored) <= set(alarm_seqs(hub)), 30, "every stored alarm")
            tower.stop()
            sent = tower.sent_now()
            # Alarms stored after that are delivered or still waiting in the outbox.
            with Outbox(small_disk / "outbox.sqlite") as outbox:
                waiting = {row.seq for row in outbox.pending()}
            assert set(sent) <= set(alarm_seqs(hub)) | waiting
            assert tower.process.returncode == 0
            with capsys.disabled():
                print(
                    f"\n[fault] disk full: {refused_at} alarm(s) refused with 'disk full', "
                    f"{len(sent)} stored and all delivered, storing again {recover_s:.1f} s "
                    "after space was freed"
                )
    finally:
        if tower is not None:
            tower.stop()
        broker.stop()
