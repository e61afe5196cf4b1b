"""Shared pieces of the hub tests: a store of either backend, and a two-tower county."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge.geodesy import destination
from hub.auth import hash_password
from hub.store import PostgresStore, SqliteStore, Store

REPO_ROOT = Path(__file__).resolve().parents[1]
# The development and CI machines run PostgreSQL here (trust auth, database `test`).
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"

TOWER_A = (41.08, 121.90)
TOWER_B = destination(*TOWER_A, 90.0, 15_000.0)
FIRE = destination(*destination(*TOWER_A, 90.0, 7_500.0), 0.0, 6_614.4)


def postgres_schema() -> Iterator[str]:
    """A private schema for one test, dropped afterwards; fails clearly without a server."""
    import psycopg

    schema = f"hubtest_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_DSN} is needed for the hub tests: {exc}")
    try:
        yield schema
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


# Accounts every test hub has: the tests read as the viewer and act as the officer.
VIEWER = ("watch", "viewer-password-1")
OFFICER = ("li.officer", "officer-password-1")


def add_accounts(store: Store) -> None:
    store.add_user(VIEWER[0], "viewer", hash_password(VIEWER[1]), time.time())
    store.add_user(OFFICER[0], "officer", hash_password(OFFICER[1]), time.time())


def make_store(backend: str, tmp_path: Path, schema: str | None) -> Store:
    if backend == "sqlite":
        return SqliteStore(tmp_path / "hub.sqlite3")
    assert schema is not None
    return PostgresStore(POSTGRES_DSN, schema)


class HubProcess:
    """`towerwatch hub` as its own process against a test broker, with a private store."""

    def __init__(self, broker_port: int, workdir: Path, *extra_sets: str) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.http_port = int(sock.getsockname()[1])
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "hub.log"
        self.args = [
            sys.executable,
            "-m",
            "edge.cli",
            "hub",
            "--config",
            "config/county/hub.yaml",
            "--set",
            f"mqtt.port={broker_port}",
            "--set",
            f"http.port={self.http_port}",
            "--set",
            f"store.sqlite_path={workdir / 'hub.sqlite3'}",
            "--set",
            "http.refresh_s=0.3",
            *(item for s in extra_sets for item in ("--set", s)),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.cookie = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def login(self, name: str, password: str) -> tuple[str, str]:
        """(Cookie header value, CSRF token) of a new session."""
        request = urllib.request.Request(
            self.url + "/api/login",
            data=json.dumps({"name": name, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            cookie = response.headers["Set-Cookie"].split(";")[0]
            return cookie, json.loads(response.read())["csrf"]

    def get_json(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Cookie": self.cookie})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def start(self, timeout_s: float = 30.0) -> HubProcess:
        store = SqliteStore(self.workdir / "hub.sqlite3")
        try:
            add_accounts(store)
        finally:
            store.close()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log_path.read_text()[-3000:]}")
            try:
                if self.get_json("/api/health")["mqtt_connected"]:
                    self.cookie = self.login(*VIEWER)[0]
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hub not ready in {timeout_s} s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        code = self.process.returncode
        self.process = None
        return code

    def wait_for(self, predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"waited {timeout_s} s for {what}; last: {last!r}")


def publish(port: int, messages: Sequence[tuple[str, bytes | str, bool]]) -> None:
    """Publish (topic, payload, retain) at QoS 1 and wait until the broker has each."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=r) for t, p, r in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
