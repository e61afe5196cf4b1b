"""Run `towerwatch simulate tower` and `towerwatch run` as separate processes for scenario tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIM_CONFIG = ROOT / "config" / "simulated.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(runtime_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    env["PYTHONUNBUFFERED"] = "1"
    if runtime_dir is not None:
        env["TOWERWATCH_RUNTIME_DIR"] = str(runtime_dir)
    return env


def short_runtime_dir() -> Path:
    """A private folder for a daemon's control socket (a socket path must be short)."""
    return Path(tempfile.mkdtemp(prefix="tw-run-", dir="/tmp"))


def towerwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *args]


def wait_port(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout_s} s")


@dataclass
class SimTowerRun:
    """A simulated tower and a daemon pointed at it, on private ports and state."""

    workdir: Path
    scenario: Path
    mqtt_port: int
    speed: float = 3.0
    extra: Sequence[str] = ()
    frame_port: int = field(default_factory=free_port)
    onvif_port: int = field(default_factory=free_port)
    tower: subprocess.Popen[bytes] | None = None
    daemon: subprocess.Popen[bytes] | None = None
    runtime_dir: Path = field(default_factory=short_runtime_dir)

    def sets(self) -> list[str]:
        pairs = [
            f"thermal.port={self.frame_port}",
            f"visible.port={self.frame_port}",
            f"ptz.port={self.onvif_port}",
            f"mqtt.port={self.mqtt_port}",
            f"storage.state_dir={self.workdir / 'state'}",
            "mqtt.status_interval_s=5",
            *self.extra,
        ]
        out: list[str] = []
        for pair in pairs:
            out += ["--set", pair]
        return out

    def start_tower(self) -> None:
        log = (self.workdir / "tower.log").open("ab")
        self.tower = subprocess.Popen(
            towerwatch(
                "simulate",
                "tower",
                "--config",
                str(SIM_CONFIG),
                *self.sets(),
                "--scenario",
                str(self.scenario),
                "--speed",
                str(self.speed),
                "--log-level",
                "warning",
            ),  # fmt: skip
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=log,
        )
        wait_port(self.frame_port, 60.0, self.tower)
        wait_port(self.onvif_port, 10.0, self.tower)

    def start_daemon(self, duration_s: float | None = None) -> None:
        log = (self.workdir / "daemon.log").open("ab")
        args = ["run", "--config", str(SIM_CONFIG), *self.sets(), "--log-level", "info"]
        if duration_s is not None:
            args += ["--duration", str(duration_s)]
        self.daemon = subprocess.Popen(
            towerwatch(*args), cwd=ROOT, env=_env(self.runtime_dir), stdout=log, stderr=log
        )

    def wait_daemon(self, timeout_s: float) -> int:
        assert self.daemon is not None
        return self.daemon.wait(timeout=timeout_s)

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait(timeout=10)

    def daemon_events(self) -> list[dict[str, object]]:
        events = []
        for line in (self.workdir / "daemon.log").read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return events

    def stop(self) -> None:
        for process in (self.daemon, self.tower):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


@dataclass
class CountyRun:
    """`towerwatch simulate county` on free ports and private ptys, plus one daemon per tower."""

    workdir: Path
    scenario: Path
    mqtt_port: int
    speed: float = 2.0
    extra: Sequence[str] = ()  # KEY=VALUE for every daemon
    county_args: Sequence[str] = ()  # more options for `simulate county`
    county: subprocess.Popen[bytes] | None = None
    hub: subprocess.Popen[bytes] | None = None
    http_port: int = field(default_factory=free_port)
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def endpoints_file(self) -> Path:
        return self.workdir / "county.json"

    def start_county(self, timeout_s: float = 120.0) -> None:
        log = (self.workdir / "county.log").open("ab")
        self.county = subprocess.Popen(
            towerwatch(
                "simulate",
                "county",
                "--scenario",
                str(self.scenario),
                "--speed",
                str(self.speed),
                "--port-base",
                "0",
                "--run-dir",
                str(self.workdir / "run"),
                "--endpoints-file",
                str(self.endpoints_file),
                "--log-level",
                "warning",
                *self.county_args,
            ),  # fmt: skip
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout_s
        while not self.endpoints_file.exists():
            if self.county.poll() is not None:
                raise AssertionError(
                    f"simulate county exited with {self.county.returncode}:\n"
                    + (self.workdir / "county.log").read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"simulate county wrote no endpoints in {timeout_s} s")
            time.sleep(0.2)
        self.endpoints = json.loads(self.endpoints_file.read_text())["towers"]

    def start_daemons(self, duration_s: float | None = None) -> None:
        for tower_id, where in self.endpoints.items():
            sets = [*where["daemon_sets"], f"mqtt.port={self.mqtt_port}", *self.extra]
            args = ["run", "--config", str(where["config"]), "--log-level", "info"]
            for pair in sets:
                args += ["--set", pair]
            if duration_s is not None:
                args += ["--duration", str(duration_s)]
            log = (self.workdir / f"daemon-{tower_id}.log").open("ab")
            runtime = short_runtime_dir()
            self.daemons[tower_id] = subprocess.Popen(
                towerwatch(*args), cwd=ROOT, env=_env(runtime), stdout=log, stderr=log
            )

    def start_hub(self) -> None:
        """`towerwatch hub --config config/county/hub.yaml` on this run's broker and a free port."""
        log = (self.workdir / "hub.log").open("ab")
        args = ["hub", "--config", str(ROOT / "config" / "county" / "hub.yaml")]
        for pair in (
            f"mqtt.port={self.mqtt_port}",
            f"http.port={self.http_port}",
            f"store.sqlite_path={self.workdir / 'hub.sqlite3'}",
            # The county test reads the API without an account; writes still need one.
            "http.anonymous_read=true",
        ):
            args += ["--set", pair]
        self.hub = subprocess.Popen(towerwatch(*args), cwd=ROOT, env=_env(), stdout=log, stderr=log)
        wait_port(self.http_port, 60.0, self.hub)

    def get_json(self, path: str) -> Any:
        """A GET on the hub's HTTP API."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def logs(self) -> str:
        """Every process's log tail, for a failing assertion's message."""
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        """Daemons first (a daemon losing its devices would log a fault), then the county."""
        for group in (list(self.daemons.values()), [self.hub, self.county]):
            for process in group:
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in group:
                if process is None:
                    continue
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
