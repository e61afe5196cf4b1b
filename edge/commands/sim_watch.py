"""`towerwatch simulate watch`: what the hub's broker carries, one readable line per change."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

from edge.cli_support import EXIT_FAILURE, fail


def _ns(lat: float) -> str:
    return f"{abs(lat):.4f} {'N' if lat >= 0 else 'S'}"


def _ew(lon: float) -> str:
    return f"{abs(lon):.4f} {'E' if lon >= 0 else 'W'}"


def _size(size: dict[str, Any] | None) -> str | None:
    if not size:
        return None
    growth = float(size.get("growth_m2_per_min") or 0.0)
    trend = "growing" if growth > 0.05 else "shrinking" if growth < -0.05 else "steady"
    return f"{float(size['a_eq_m2']):.1f} m² {trend}"


def _km(metres: float) -> str:
    return f"{metres / 1000:.1f}"


def alarm_line(alarm: dict[str, Any], snapshot_bytes: int | None = None) -> str:
    """``ALARM tw-01 · confirmed · 48.59° · 9.7 km (7.2–30.0 km, earth) · 2.6 m² growing``."""
    parts = [f"ALARM {alarm['tower']['id']}", str(alarm["state"])]
    parts.append(f"bearing {float(alarm['bearing_deg']):.2f}°")
    lo, mid, hi = alarm.get("range_min_m"), alarm.get("range_m"), alarm.get("range_max_m")
    if mid is not None:
        interval = f" ({_km(lo)}–{_km(hi)} km" if lo is not None and hi is not None else " ("
        parts.append(f"{_km(mid)} km{interval}, {alarm.get('range_source')})")
    size = _size(alarm.get("size")) if alarm["state"] != "cleared" else "out"
    if size:
        parts.append(size)
    if snapshot_bytes:
        parts.append(f"snapshot {snapshot_bytes / 1000:.0f} kB")
    parts.append(str(alarm["alarm_id"]))
    return " · ".join(parts)


def fire_line(fire: dict[str, Any], snapshot_bytes: int | None = None) -> str:
    """``FIRE f-3 · confirmed by tw-02, tw-05 · 41.1234 N 121.9876 E ± 18 m · 2.0 m² growing``."""
    towers = ", ".join(fire.get("towers") or [])
    said = {"active": "confirmed by", "cleared": "cleared, last seen by"}
    parts = [
        f"FIRE {fire['fire_id']}",
        f"{said.get(fire['state'], fire['state'] + ' by')} {towers}",
    ]
    position, ellipse = fire.get("position"), fire.get("uncertainty")
    if position:
        where = f"{_ns(position['lat'])} {_ew(position['lon'])}"
        if ellipse:
            where += f" ± {float(ellipse['semi_major_m']):.0f} m"
        parts.append(where)
    else:
        parts.append("bearing only")
    parts.append(str(fire.get("range_source")))
    if fire.get("test"):
        parts.append("TEST")
    size = _size(fire.get("size")) if fire["state"] != "cleared" else "out"
    if size:
        parts.append(size)
    if snapshot_bytes:
        parts.append(f"snapshot {snapshot_bytes / 1000:.0f} kB")
    return " · ".join(parts)


@dataclass
class Story:
    """What has been seen: each tower's alarm states, the hub's fires, snapshot sizes."""

    alarm_states: dict[str, set[str]] = field(default_factory=dict)  # tower → states
    fire_states: dict[str, set[str]] = field(default_factory=dict)  # fire → states
    triangulated: set[str] = field(default_factory=set)
    snapshots: dict[str, int] = field(default_factory=dict)  # alarm_id → bytes
    fire_alarms: dict[str, list[str]] = field(default_factory=dict)
    last_line: dict[str, str] = field(default_factory=dict)  # topic → last printed line

    def towers_done(self, towers: list[str]) -> bool:
        """Every named tower confirmed an alarm and later cleared it."""
        return all({"confirmed", "cleared"} <= self.alarm_states.get(t, set()) for t in towers)

    def hub_done(self) -> bool:
        """A fire the hub triangulated has been cleared."""
        return any("cleared" in self.fire_states.get(f, set()) for f in self.triangulated)

    def fire_snapshot(self, fire_id: str) -> int | None:
        sizes = [
            self.snapshots[a] for a in self.fire_alarms.get(fire_id, []) if a in self.snapshots
        ]
        return max(sizes) if sizes else None


def _utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%H:%M:%S")


class Watcher:
    """Turns each message into at most one line (only when what it says changed)."""

    def __init__(self, prefix: str, raw: TextIO | None, out: TextIO | None = None) -> None:
        self.prefix = prefix
        self.raw = raw
        self.out = out
        self.story = Story()
        self.lock = threading.Lock()

    def _say(self, key: str, line: str) -> None:
        if self.story.last_line.get(key) == line:
            return
        self.story.last_line[key] = line
        click.echo(f"{_utc()} {line}", file=self.out)

    def handle(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self._handle(topic, payload)

    def _handle(self, topic: str, payload: bytes) -> None:
        levels = topic.split("/")
        if self.raw is not None:
            shown = (
                f"<JPEG, {len(payload)} bytes>"
                if levels[-1] == "snapshot"
                else payload.decode("utf-8", "replace")
            )
            self.raw.write(f"{dt.datetime.now(dt.UTC).isoformat()} {topic} {shown}\n")
            self.raw.flush()
        if levels[-1] == "snapshot" and len(levels) >= 4:
            self.story.snapshots[levels[-2]] = len(payload)
            self._say(topic, f"SNAPSHOT {levels[1]} · {levels[-2]} · {len(payload) / 1000:.0f} kB")
            return
        if not payload:
            return
        try:
            data = json.loads(payload)
        except json.JSONDecodeError:
            self._say(topic, f"? {topic}: not JSON ({len(payload)} bytes)")
            return
        if not isinstance(data, dict):
            return
        schema = str(data.get("schema", ""))
        if schema.startswith("towerwatch.fire/"):
            self._fire(topic, data)
        elif schema.startswith("towerwatch.alarm/"):
            tower = data["tower"]["id"]
            self.story.alarm_states.setdefault(tower, set()).add(str(data["state"]))
            line = alarm_line(data, self.story.snapshots.get(str(data["alarm_id"])))
            summary = data.get("summary")
            self._say(topic, f"{line}\n           {summary}" if summary else line)
        elif schema.startswith("towerwatch.status/"):
            reasons = "; ".join(data.get("reasons") or [])
            line = f"TOWER {data.get('tower_id')} · {data.get('state')}"
            self._say(topic, f"{line} · {reasons}" if reasons else line)

    def _fire(self, topic: str, fire: dict[str, Any]) -> None:
        fire_id = str(fire["fire_id"])
        self.story.fire_states.setdefault(fire_id, set()).add(str(fire["state"]))
        if fire.get("range_source") == "triangulated":
            self.story.triangulated.add(fire_id)
        self.story.fire_alarms[fire_id] = [str(a.get("alarm_id")) for a in fire.get("alarms", [])]
        self._say(topic, fire_line(fire, self.story.fire_snapshot(fire_id)))


@click.command("watch")
@click.option("--mqtt-host", default="127.0.0.1", show_default=True)
@click.option("--mqtt-port", type=click.IntRange(1, 65535), default=1883, show_default=True)
@click.option("--prefix", default="towerwatch", show_default=True, help="Topic prefix.")
@click.option("--raw", "raw_path", type=click.Path(dir_okay=False), default=None,
              help="Append every message (time, topic, payload) to this file.")  # fmt: skip
@click.option("--until-cleared", "towers", default=None, metavar="TOWER[,TOWER…]",
              help="Exit 0 once each of these towers has confirmed and cleared an alarm.")  # fmt: skip
@click.option("--hub/--no-hub", "want_hub", default=False,
              help="With --until-cleared: also wait for a triangulated hub fire to clear.")  # fmt: skip
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=None,
              help="Give up (exit 1, saying what was missing) after this many wall seconds.")  # fmt: skip
def watch(
    mqtt_host: str,
    mqtt_port: int,
    prefix: str,
    raw_path: str | None,
    towers: str | None,
    want_hub: bool,
    timeout_s: float | None,
) -> None:
    """Print the towers' status and alarms and the hub's fires as one line each, as they change."""
    with contextlib.ExitStack() as files:
        raw = files.enter_context(Path(raw_path).open("a", encoding="utf-8")) if raw_path else None
        _watch(Watcher(prefix, raw), mqtt_host, mqtt_port, towers, want_hub, timeout_s)


def _watch(
    watcher: Watcher,
    mqtt_host: str,
    mqtt_port: int,
    towers: str | None,
    want_hub: bool,
    timeout_s: float | None,
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    prefix = watcher.prefix
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if not reason.is_failure:
            c.subscribe([(f"{prefix}/+/status", 1), (f"{prefix}/+/alarm", 1),
                         (f"{prefix}/+/alarm/+/snapshot", 1), (f"{prefix}/hub/fire/+", 1)])  # fmt: skip
            connected.set()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            watcher.handle(message.topic, bytes(message.payload))
        except (KeyError, TypeError, ValueError) as exc:
            click.echo(f"{_utc()} ? {message.topic}: unexpected payload ({exc})")

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(mqtt_host, mqtt_port)
    except OSError as exc:
        fail(f"broker {mqtt_host}:{mqtt_port}: {exc}")
    client.loop_start()
    wanted = [t for t in (towers or "").split(",") if t]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            time.sleep(0.2)
            with watcher.lock:
                done = bool(wanted) and watcher.story.towers_done(wanted)
                done = done and (not want_hub or watcher.story.hub_done())
                story = watcher.story
            if done:
                return
            if deadline is not None and time.monotonic() > deadline:
                missing = [t for t in wanted if not story.towers_done([t])]
                what = [f"{t} confirmed and cleared" for t in missing]
                if want_hub and not story.hub_done():
                    what.append("a triangulated hub fire cleared")
                if not connected.is_set():
                    what = [f"a connection to the broker {mqtt_host}:{mqtt_port}"]
                fail(f"watch: after {timeout_s:g} s still no {', '.join(what) or 'end'}",
                     EXIT_FAILURE)  # fmt: skip
    except KeyboardInterrupt:
        return
    finally:
        client.loop_stop()
        client.disconnect()
