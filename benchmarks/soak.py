"""Soak: the daemon for hours of simulated time under repeated faults; counts lost alarms.

Runs what production runs, as separate processes on loopback: a private mosquitto, the
simulated tower (``towerwatch simulate tower``, clock at ``--speed`` × wall time) and
the daemon (``towerwatch run``). A hub stand-in subscribes to everything and sends a
``test-alarm`` command every two wall seconds; the scenario's fire gives real alarms.
Every ``--fault-every`` wall seconds the next fault of the cycle is injected:

- broker-restart: the broker stops (SIGTERM) for ``--outage-s`` and comes back;
- daemon-kill-9: the daemon is killed at a random moment and started again;
- devices-unplugged: the simulated tower (camera stream, ONVIF head) goes away for
  ``--outage-s`` and comes back on the same ports.

Afterwards the daemon is stopped and the outbox it left is read. An alarm is *lost*
when the daemon logged it as committed (``alarm`` event) or created it on a command
(``alarm_test`` event, logged just before the commit: one logged within a second before
a kill -9 is counted as *uncommitted at the kill* instead) and the hub never received
it and it is not waiting in the outbox. Time to recover: from the end of a fault to the
first status from a live daemon.

    python benchmarks/soak.py --minutes 10 --speed 30   # 5 hours of tower time
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge.messages import parse_iso_z  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from tests.conftest import MosquittoBroker, MqttCollector  # noqa: E402
from tests.towers import SimTowerRun  # noqa: E402

TOWER = "sim-tower-01"
ROOT_TOPIC = f"towerwatch/{TOWER}"
SCENARIO = REPO / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"
FAULTS = ("broker-restart", "daemon-kill-9", "devices-unplugged")
COMMAND_PERIOD_S = 2.0


@dataclass
class FaultRun:
    name: str
    started_s: float
    ended_s: float
    recovered_s: float | None = None


def _status_times(hub: MqttCollector) -> list[float]:
    return [
        m.received_monotonic_s
        for m in hub.messages(f"{ROOT_TOPIC}/status")
        if m.json().get("version") and m.json().get("state") in ("online", "degraded")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall minutes to run")
    parser.add_argument("--speed", type=float, default=30.0, help="tower clock speed")
    parser.add_argument("--fault-every", type=float, default=40.0, help="wall s between faults")
    parser.add_argument("--outage-s", type=float, default=8.0, help="wall s a fault lasts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="towerwatch-soak-"))
    broker = MosquittoBroker(work / "broker")
    broker.start()
    hub = MqttCollector(broker.host, broker.port, client_id="soak-hub").connect()
    run = SimTowerRun(work, SCENARIO, broker.port, speed=args.speed)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-commands",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    sender.reconnect_delay_set(1, 1)
    sender.connect_async(broker.host, broker.port)
    sender.loop_start()
    faults: list[FaultRun] = []
    kills: list[float] = []  # unix times of kill -9
    commands = 0
    started = time.monotonic()
    try:
        run.start_tower()
        run.start_daemon()
        hub.wait_for(lambda m: m.topic.endswith("/status") and bool(m.json().get("version")), 180)
        end = time.monotonic() + args.minutes * 60.0
        next_fault = time.monotonic() + args.fault_every
        next_command = time.monotonic()
        cycle = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_command:
                commands += 1
                sender.publish(f"{ROOT_TOPIC}/cmd/test-alarm",
                               json.dumps({"request_id": f"soak-{commands}"}), qos=1)  # fmt: skip
                next_command = now + COMMAND_PERIOD_S
            if now >= next_fault:
                name = FAULTS[cycle % len(FAULTS)]
                cycle += 1
                fault_start = time.monotonic()
                if name == "broker-restart":
                    broker.stop()
                    time.sleep(args.outage_s)
                    broker.start()
                elif name == "daemon-kill-9":
                    time.sleep(rng.uniform(0.0, 2.0))
                    kills.append(time.time())
                    run.kill_daemon()
                    run.start_daemon()
                else:
                    assert run.tower is not None
                    run.tower.send_signal(signal.SIGTERM)
                    run.tower.wait(timeout=30)
                    time.sleep(args.outage_s)
                    run.start_tower()
                faults.append(FaultRun(name, fault_start, time.monotonic()))
                next_fault = time.monotonic() + args.fault_every
            time.sleep(0.1)
        sender.loop_stop()
        time.sleep(10.0)  # the last alarms' round trip
        for fault in faults:
            after = [t for t in _status_times(hub) if t > fault.ended_s]
            fault.recovered_s = after[0] - fault.ended_s if after else None
    finally:
        run.stop()
        hub.close()
        broker.stop()

    received = {m.json()["alarm_id"] + f"#{m.json()['seq']}"
                for m in hub.messages(f"{ROOT_TOPIC}/alarm")}  # fmt: skip
    received_ids = {key.split("#")[0] for key in received}
    with Outbox(work / "state" / "outbox.sqlite") as outbox:
        waiting = {f"{r.alarm_id}#{r.seq}" for r in outbox.pending() if r.alarm_id}
    waiting_ids = {key.split("#")[0] for key in waiting}
    committed, created = set(), {}
    for event in run.daemon_events():
        if event.get("event") == "alarm":
            committed.add(f"{event['alarm_id']}#{event['seq']}")
        elif event.get("event") == "alarm_test":
            created[str(event["alarm_id"])] = parse_iso_z(str(event["timestamp"])[:23] + "Z")
    lost = sorted(committed - received - waiting)
    uncommitted = {a for a, t in created.items() if any(0 <= k - t < 1.0 for k in kills)}
    lost_tests = sorted(set(created) - received_ids - waiting_ids - uncommitted)
    tower_hours = (time.monotonic() - started) * args.speed / 3600.0

    print(f"soak: {args.minutes:g} wall min at {args.speed:g}x = {tower_hours:.1f} h of tower "
          f"time, {len(faults)} faults, {commands} test-alarm commands")  # fmt: skip
    print(f"{'fault':<20} {'count':>5} {'recover median s':>17} {'recover max s':>14}")
    for name in FAULTS:
        times = sorted(f.recovered_s for f in faults if f.name == name and f.recovered_s)
        unrecovered = sum(1 for f in faults if f.name == name and f.recovered_s is None)
        median = f"{times[len(times) // 2]:.1f}" if times else "-"
        worst = f"{times[-1]:.1f}" if times else "-"
        count = sum(1 for f in faults if f.name == name)
        note = f"  ({unrecovered} never recovered)" if unrecovered else ""
        print(f"{name:<20} {count:>5} {median:>17} {worst:>14}{note}")
    print(f"alarm messages committed by the daemon: {len(committed)}, received {len(received)}, "
          f"waiting in the outbox {len(waiting)}, lost {len(lost)}")  # fmt: skip
    print(f"test alarms created: {len(created)}, received {len(created.keys() & received_ids)}, "
          f"uncommitted at a kill -9 {len(uncommitted)}, lost {len(lost_tests)}")  # fmt: skip
    if lost or lost_tests:
        print(f"LOST: {lost[:10]} {lost_tests[:10]}")
    print(f"work folder: {work}")
    return 1 if lost or lost_tests else 0


if __name__ == "__main__":
    sys.exit(main())
