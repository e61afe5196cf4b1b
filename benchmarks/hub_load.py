"""Hub load: lightweight simulated towers against a private Mosquitto and 1 or 2 hubs on PostgreSQL.

Each simulated tower publishes what a tower publishes (retained status, alarm state
changes with increasing seq) at a realistic rate and at a storm rate; pairs of
neighbouring towers see the same fire, so the hubs fuse and triangulate as in the
field. Measured: messages per second handled, latency from a tower's publish to the
alarm stored (every alarm) and to the fused fire published (the alarms a fire message
carries), and losses: alarms published and acknowledged by the broker but never stored.
Bounded in time; prints one table. Needs mosquitto and PostgreSQL on 127.0.0.1:5432.

    python benchmarks/hub_load.py [--towers 200] [--duration-s 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.geodesy import destination  # noqa: E402
from hub.synth import alarm_payload, status_payload  # noqa: E402

POSTGRES_DSN = os.environ.get("TOWERWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "towerwatch"
GRID_SPACING_M = 15_000.0
ORIGIN = (40.60, 121.00)
# Towers share MQTT connections (a tower is one connection in the field; here 200 client
# threads would measure this machine's scheduler, not the hub).
TOWERS_PER_CONNECTION = 10


@dataclass(frozen=True)
class Rate:
    name: str
    status_period_s: float
    alarm_period_s: float
    towers_in_alarm_fraction: float


RATES = {
    # A fire season day: one tower in ten follows a fire, status twice a minute.
    "realistic": Rate("realistic", 30.0, 10.0, 0.1),
    # Every tower reports a fire and updates it every second.
    "storm": Rate("storm", 10.0, 1.0, 1.0),
}


@dataclass
class Tower:
    tower_id: str
    lat: float
    lon: float
    fire: tuple[float, float]
    alarm_id: str
    in_alarm: bool
    seq: int = 0
    first_seen_s: float = 0.0


@dataclass
class Sent:
    alarms: dict[tuple[str, int], float] = field(default_factory=dict)
    messages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"user {os.environ.get('USER') or 'root'}",
                # A hub must never lose a message to the broker's default queue cap.
                "max_queued_messages 0",
                "max_inflight_messages 100",
                f"log_dest file {workdir / 'mosquitto.log'}",
            ]
        )
        + "\n"
    )
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    wait_until(lambda: port_open(port), 10.0, "mosquitto")
    return process, port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not ready in {timeout_s} s")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def start_hub(
    n: int, broker_port: int, schema: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    http_port = free_port()
    log = (workdir / f"hub-{n}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "hub",
            "--config",
            "config/county/hub.yaml",
            "--log-level",
            "warning",
            "--set",
            f"mqtt.port={broker_port}",
            "--set",
            f"mqtt.client_id=loadhub-{n}",
            "--set",
            "mqtt.shared_group=hubs",
            "--set",
            f"http.port={http_port}",
            "--set",
            "store.backend=postgresql",
            "--set",
            f"store.postgresql_dsn={POSTGRES_DSN}",
            "--set",
            f"store.postgresql_schema={schema}",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"hub {n} exited: {(workdir / f'hub-{n}.log').read_text()[-2000:]}")
        try:
            return bool(get_json(f"http://127.0.0.1:{http_port}/api/health")["mqtt_connected"])
        except OSError:
            return False

    wait_until(ready, 30.0, f"hub {n}")
    return process, http_port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def county(n_towers: int, rate: Rate, rng: random.Random) -> list[Tower]:
    """Towers on a grid 15 km apart; each east-west pair watches one fire 10 km from both."""
    columns = 20
    towers = []
    for k in range(n_towers):
        row, col = divmod(k, columns)
        lat, lon = destination(
            *destination(*ORIGIN, 0.0, row * GRID_SPACING_M), 90.0, col * GRID_SPACING_M
        )
        pair_west = destination(
            *destination(*ORIGIN, 0.0, row * GRID_SPACING_M), 90.0, (col - col % 2) * GRID_SPACING_M
        )
        fire = destination(*destination(*pair_west, 90.0, GRID_SPACING_M / 2.0), 0.0, 6_614.4)
        pair = k // 2
        towers.append(
            Tower(
                tower_id=f"L{k:03d}",
                lat=lat,
                lon=lon,
                fire=fire,
                alarm_id=f"L{k:03d}-{uuid.uuid4().hex[:8]}",
                in_alarm=(pair * 2 / max(n_towers, 1)) < rate.towers_in_alarm_fraction,
            )
        )
    return towers


def publisher(
    towers: list[Tower], port: int, rate: Rate, until: float, sent: Sent, rng: random.Random
) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    next_status = {t.tower_id: time.time() + rng.uniform(0, rate.status_period_s) for t in towers}
    next_alarm = {t.tower_id: time.time() + rng.uniform(0, rate.alarm_period_s) for t in towers}
    try:
        while True:
            now = time.time()
            if now >= until:
                break
            for t in towers:
                if now >= next_status[t.tower_id]:
                    payload = json.dumps(status_payload(t.tower_id, t.lat, t.lon))
                    infos.append(
                        client.publish(f"{PREFIX}/{t.tower_id}/status", payload, qos=1, retain=True)
                    )
                    next_status[t.tower_id] += rate.status_period_s
                    with sent.lock:
                        sent.messages += 1
                if t.in_alarm and now >= next_alarm[t.tower_id]:
                    t.seq += 1
                    sent_at = time.time()
                    if t.seq == 1:
                        t.first_seen_s = sent_at - 60.0
                    payload = json.dumps(
                        alarm_payload(
                            alarm_id=t.alarm_id,
                            seq=t.seq,
                            tower_id=t.tower_id,
                            tower_lat=t.lat,
                            tower_lon=t.lon,
                            fire_lat=t.fire[0],
                            fire_lon=t.fire[1],
                            state="confirmed" if t.seq == 1 else "updated",
                            bearing_noise_deg=rng.gauss(0.0, 0.05),
                            sent_at_s=sent_at,
                            first_seen_s=t.first_seen_s,
                        )
                    )
                    infos.append(client.publish(f"{PREFIX}/{t.tower_id}/alarm", payload, qos=1))
                    with sent.lock:
                        sent.alarms[(t.alarm_id, t.seq)] = sent_at
                        sent.messages += 1
                    next_alarm[t.tower_id] += rate.alarm_period_s
            time.sleep(0.01)
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()


class FireWatcher:
    """Records when each (alarm_id, seq) first appears in a published fire."""

    def __init__(self, port: int) -> None:
        self.first_seen: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{PREFIX}/hub/fire/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = time.time()
        fire = json.loads(message.payload)
        with self._lock:
            for alarm in fire["alarms"]:
                self.first_seen.setdefault((alarm["alarm_id"], alarm["seq"]), now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_case(
    rate: Rate, n_hubs: int, n_towers: int, duration_s: float, seed: int
) -> dict[str, Any]:
    import psycopg

    rng = random.Random(seed)
    schema = f"hubload_{uuid.uuid4().hex[:10]}"
    workdir = Path(tempfile.mkdtemp(prefix="hub_load_"))
    broker, port = start_broker(workdir)
    hubs: list[tuple[subprocess.Popen[bytes], int]] = []
    admin = psycopg.connect(POSTGRES_DSN, autocommit=True)
    try:
        for n in range(n_hubs):
            hubs.append(start_hub(n + 1, port, schema, workdir))
        watcher = FireWatcher(port)
        towers = county(n_towers, rate, rng)
        sent = Sent()
        start = time.time()
        until = start + duration_s
        groups = [
            towers[i : i + TOWERS_PER_CONNECTION]
            for i in range(0, len(towers), TOWERS_PER_CONNECTION)
        ]
        threads = [
            threading.Thread(
                target=publisher, args=(g, port, rate, until, sent, random.Random(rng.random()))
            )
            for g in groups
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = len(sent.alarms)

        def stored() -> list[tuple[str, int, float]]:
            return admin.execute(
                f'SELECT alarm_id, seq, received_s FROM "{schema}".alarm_messages'
            ).fetchall()

        drain_deadline = time.time() + 60.0
        rows = stored()
        while len(rows) < expected and time.time() < drain_deadline:
            time.sleep(0.2)
            rows = stored()
        # Fusion runs after ingest: give the last pass time to publish.
        fire_deadline = time.time() + 30.0
        while time.time() < fire_deadline:
            with watcher._lock:
                last = {k for k in watcher.first_seen if k in sent.alarms}
            latest = {(t.alarm_id, t.seq) for t in towers if t.in_alarm and t.seq}
            if latest <= last:
                break
            time.sleep(0.2)
        watcher.close()
        handled = 0
        for _, http_port in hubs:
            outcomes = get_json(f"http://127.0.0.1:{http_port}/api/health")["messages"]
            handled += sum(v for k, v in outcomes.items() if k in ("alarm", "status", "duplicate"))
        ingest_ms = [
            1000.0 * (received - sent.alarms[(a, s)])
            for a, s, received in rows
            if (a, s) in sent.alarms
        ]
        fire_ms = [
            1000.0 * (t - sent.alarms[k]) for k, t in watcher.first_seen.items() if k in sent.alarms
        ]
        end = max((r[2] for r in rows), default=until)
        fires = admin.execute(
            f"SELECT COUNT(*) FROM \"{schema}\".fires WHERE state = 'active'"
        ).fetchone()
        return {
            "rate": rate.name,
            "hubs": n_hubs,
            "towers": n_towers,
            "offered_per_s": sent.messages / duration_s,
            "handled_per_s": handled / max(end - start, 1e-9),
            "messages": sent.messages,
            "handled": handled,
            "alarms": expected,
            "stored": len(rows),
            "lost": expected - len({(a, s) for a, s, _ in rows} & set(sent.alarms)),
            "lost_messages": sent.messages - handled,
            "ingest_p50_ms": float(np.percentile(ingest_ms, 50)) if ingest_ms else float("nan"),
            "ingest_p99_ms": float(np.percentile(ingest_ms, 99)) if ingest_ms else float("nan"),
            "fire_p50_ms": float(np.percentile(fire_ms, 50)) if fire_ms else float("nan"),
            "fire_p99_ms": float(np.percentile(fire_ms, 99)) if fire_ms else float("nan"),
            "fires": int(fires[0]) if fires else 0,
        }
    finally:
        for process, _ in hubs:
            stop(process)
        stop(broker)
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--towers", type=int, default=200)
    parser.add_argument("--duration-s", type=float, default=20.0, help="publishing time per case")
    parser.add_argument("--quick", action="store_true", help="10 s per case")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    duration_s = 10.0 if args.quick else args.duration_s
    print(
        f"{args.towers} simulated towers ({TOWERS_PER_CONNECTION} per MQTT connection), "
        f"{duration_s:.0f} s of publishing per case, hubs on PostgreSQL with a shared subscription"
    )
    header = (
        f"{'rate':<10} {'hubs':>4} {'offered/s':>9} {'handled/s':>9} {'alarms':>7} {'stored':>7} "
        f"{'lost':>5} {'ingest p50/p99 ms':>18} {'fire p50/p99 ms':>17} {'fires':>6}"
    )
    print(header)
    failed = False
    for rate in RATES.values():
        for n_hubs in (1, 2):
            r = run_case(rate, n_hubs, args.towers, duration_s, args.seed)
            failed |= r["lost"] != 0 or r["lost_messages"] != 0
            print(
                f"{r['rate']:<10} {r['hubs']:>4} {r['offered_per_s']:>9.1f} {r['handled_per_s']:>9.1f} "
                f"{r['alarms']:>7} {r['stored']:>7} {r['lost']:>5} "
                f"{r['ingest_p50_ms']:>8.1f} / {r['ingest_p99_ms']:<7.1f} "
                f"{r['fire_p50_ms']:>7.0f} / {r['fire_p99_ms']:<7.0f} {r['fires']:>6}",
                flush=True,
            )
    print(
        "lost = alarms the broker acknowledged that no hub stored"
        + ("  (LOSSES)" if failed else ": 0")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
