"""The daemon end to end against a simulated tower: alarm latency, patrol cycle, CPU, memory, start-up.

Runs what production runs, as separate processes on loopback: a private mosquitto, the
simulated tower (``towerwatch simulate tower``) with the mission-2m-10km scenario and the
daemon (``towerwatch run``). The benchmark subscribes to the broker like the hub does and
reads the daemon's JSON log lines and ``/proc/PID``. Tower times are simulated seconds
(the tower clock runs ``--speed`` × wall time); CPU and start-up are wall/CPU seconds.

Baseline measured in the same run: a trivial process that makes one numpy pass over a
640×512 float32 frame per frame, timed the same way (utime+stime from /proc/PID/stat).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.config import load_config
from simulators.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
CONFIG = "config/simulated.yaml"
SCENARIO = "benchmarks/scenarios/mission-2m-10km.yaml"
MOSQUITTO = "/usr/sbin/mosquitto"
FRAME_BUDGET_50HZ_S = 0.020  # one frame of a 50 Hz camera
FORESTRY_CYCLE_S = 1800.0  # forestry standard: full coverage within 30 minutes
CLK_TCK = os.sysconf("SC_CLK_TCK")
STATUS_INTERVAL_S = 5.0  # wall seconds between status messages (production: 30)
BASELINE_FRAMES = 10_000  # enough CPU ticks (10 ms each) for a ±2 % figure
TERM_GRACE_S = 10.0  # wall seconds a child gets after SIGTERM before SIGKILL

BASELINE_SCRIPT = """
import sys
import numpy as np
n = int(sys.argv[1])
frame = np.random.default_rng(0).normal(290.0, 1.0, (512, 640)).astype(np.float32)
float(frame.max())
print("ready", flush=True)
sys.stdin.readline()
acc = 0.0
for _ in range(n):
    acc += float(frame.max())  # one pass over the frame
print("done", acc > 0, flush=True)
sys.stdin.readline()
"""


# ----------------------------------------------------------------------------- /proc


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    return cpu_s_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_s(pid: int) -> dict[int, float]:
    """utime + stime of each thread of a process, seconds, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(task.name)] = cpu_s_of(task / "stat")
    return out


def thread_names(pid: int) -> dict[int, str]:
    """The kernel's name of each thread of a process (the daemon names its own threads)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(task.name)] = (task / "comm").read_text().strip()
    return out


def cpu_s_of(stat_path: Path) -> float:
    text = stat_path.read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of a process, KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ----------------------------------------------------------------------------- processes


class Children:
    """Every process the benchmark starts, each in its own process group; all ended on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, cwd=REPO, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def end(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def end_all(self) -> None:
        for proc in reversed(self.procs):
            self.end(proc)


class Hub:
    """Subscribes to the tower's topics like the county hub; keeps arrival times."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.alarms: list[tuple[float, dict[str, Any]]] = []  # (wall arrival, message)
        self.statuses: list[tuple[float, dict[str, Any]]] = []
        self.snapshots = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-hub")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("towerwatch/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if msg.topic.endswith("/snapshot"):
            with self.lock:
                self.snapshots += 1
            return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic.endswith("/alarm"):
                self.alarms.append((now, payload))
            elif msg.topic.endswith("/status"):
                self.statuses.append((now, payload))

    def reset(self) -> None:
        with self.lock:
            self.alarms.clear()
            self.statuses.clear()
            self.snapshots = 0

    def confirmed(self) -> tuple[float, dict[str, Any]] | None:
        with self.lock:
            return next(((w, a) for w, a in self.alarms if a.get("state") == "confirmed"), None)

    def cycles(self) -> list[float]:
        with self.lock:
            values = [s.get("patrol_cycle_s") for _, s in self.statuses]
        out: list[float] = []
        for v in values:
            if v is not None and (not out or v != out[-1]):
                out.append(float(v))
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class DaemonRun:
    label: str
    started_mono: float
    pid: int
    events: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    cpu_first_frame_s: float | None = None
    cpu_stopping_s: float | None = None
    threads_first_frame: dict[int, float] = field(default_factory=dict)
    threads_stopping: dict[int, float] = field(default_factory=dict)
    thread_names: dict[int, str] = field(default_factory=dict)
    memory_end_kib: dict[str, int] = field(default_factory=dict)
    stopping_counters: dict[str, int] = field(default_factory=dict)
    first_frame_event: threading.Event = field(default_factory=threading.Event)
    stopping_event: threading.Event = field(default_factory=threading.Event)
    candidates: int = 0
    dismissals: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def follow_daemon_log(run: DaemonRun, stream: Any) -> None:
    """Reads the daemon's JSON log lines; samples /proc at the first frame and at the stop."""
    for raw in stream:
        now = time.monotonic()
        line = raw.decode("utf-8", "replace").strip()
        run.lines.append(line)
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event")
        if event == "daemon stopping":
            # The loop has ended; the process is still alive: its CPU and peak memory now.
            with contextlib.suppress(OSError):
                run.cpu_stopping_s = cpu_s(run.pid)
                run.threads_stopping = thread_cpu_s(run.pid)
                run.thread_names = thread_names(run.pid)
                run.memory_end_kib = memory_kib(run.pid)
            run.stopping_counters = dict(entry.get("counters") or {})
            run.stopping_event.set()
        elif event == "first frame" and "first frame" not in run.events:
            with contextlib.suppress(OSError):
                run.cpu_first_frame_s = cpu_s(run.pid)
                run.threads_first_frame = thread_cpu_s(run.pid)
            run.first_frame_event.set()
        elif event == "candidate: confirming":
            run.candidates += 1
        elif event == "candidate dismissed":
            run.dismissals.append(str(entry.get("reason")))
        if isinstance(event, str) and event not in run.events:
            run.events[event] = (now, entry)


# ----------------------------------------------------------------------------- one trial


@dataclass
class Trial:
    label: str
    sector: tuple[float, float]  # azimuth start, span
    run: DaemonRun
    speed: float
    ignition_unix: float
    confirmed: tuple[float, dict[str, Any]] | None
    cycles: list[float]
    snapshots: int
    frames_tower_s: float | None  # tower seconds between first frame and stop
    baseline_cpu_per_frame_s: float | None


def baseline_cpu_per_frame(children: Children, frames: int) -> float:
    proc = children.start(
        [sys.executable, "-c", BASELINE_SCRIPT, str(frames)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdout.readline()
    before = cpu_s(proc.pid)
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    proc.stdout.readline()
    after = cpu_s(proc.pid)
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    proc.wait()
    return (after - before) / frames


def run_trial(
    children: Children,
    hub: Hub,
    workdir: Path,
    *,
    label: str,
    sector: tuple[float, float],
    speed: float,
    fps: float,
    broker_port: int,
    timeout_wall_s: float,
    cycles_wanted: int,
    numba_cache: Path,
    baseline_frames: int,
    numba_threads: int | None,
    overrides: list[str],
) -> Trial:
    """Simulated tower + daemon until the fire is confirmed and a patrol cycle is reported."""
    frame_port, onvif_port = free_port(), free_port()
    while onvif_port == frame_port:
        onvif_port = free_port()
    devices = [f"--set=thermal.port={frame_port}", f"--set=visible.port={frame_port}",
               f"--set=ptz.port={onvif_port}"]  # fmt: skip
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache))
    endpoints = workdir / f"{label}-endpoints.json"
    sim_log = open(workdir / f"{label}-sim.log", "wb")  # noqa: SIM115 (closed with the run)
    sim = children.start(
        [str(REPO / ".venv/bin/towerwatch"), "simulate", "tower", "--config", CONFIG, *devices,
         "--scenario", SCENARIO, "--speed", f"{speed:g}", "--fps", f"{fps:g}",
         "--log-level", "warning", "--endpoints-file", str(endpoints)],
        stdout=sim_log, stderr=sim_log, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60.0
    while not endpoints.exists():
        if sim.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench_daemon: simulated tower did not come up; see {sim_log.name}")
        time.sleep(0.05)
    ignition = min(f.start_s for f in load_scenario(REPO / SCENARIO).fires)
    ignition_unix = load_scenario(REPO / SCENARIO).start_unix + ignition

    hub.reset()
    if numba_threads is not None:
        env["NUMBA_NUM_THREADS"] = str(numba_threads)
    start, span = sector
    argv = [str(REPO / ".venv/bin/towerwatch"), "run", "--config", CONFIG, *devices,
            f"--set=mqtt.port={broker_port}", f"--set=storage.state_dir={workdir / label}",
            f"--set=mqtt.status_interval_s={STATUS_INTERVAL_S:g}",
            f"--set=patrol.azimuth_start_deg={start:g}", f"--set=patrol.azimuth_span_deg={span:g}",
            *(f"--set={o}" for o in overrides),
            "--duration", f"{timeout_wall_s * speed:g}", "--log-level", "info"]  # fmt: skip
    started = time.monotonic()
    daemon = children.start(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    run = DaemonRun(label, started, daemon.pid)
    reader = threading.Thread(target=follow_daemon_log, args=(run, daemon.stderr), daemon=True)
    reader.start()

    baseline = None
    end_by = started + timeout_wall_s
    while time.monotonic() < end_by and daemon.poll() is None:
        if run.first_frame_event.is_set() and baseline is None:
            baseline = baseline_cpu_per_frame(children, baseline_frames)
        if hub.confirmed() is not None and len(hub.cycles()) >= cycles_wanted:
            break
        time.sleep(0.2)
    children.end(daemon)  # SIGTERM: the daemon ends its loop and logs its counters
    reader.join(5.0)
    children.end(sim)
    sim_log.close()
    if daemon.returncode not in (0, -signal.SIGTERM):
        tail = "\n".join(run.lines[-15:])
        raise SystemExit(f"bench_daemon: daemon exited {daemon.returncode}:\n{tail}")
    time.sleep(0.3)  # late retained status / alarm deliveries

    frames_tower_s = None
    if "first frame" in run.events and "daemon stopping" in run.events:
        first_wall = parse_iso(run.events["first frame"][1]["timestamp"])
        stop_wall = parse_iso(run.events["daemon stopping"][1]["timestamp"])
        frames_tower_s = (stop_wall - first_wall) * speed
    return Trial(label, sector, run, speed, ignition_unix, hub.confirmed(), hub.cycles(),
                 hub.snapshots, frames_tower_s, baseline)  # fmt: skip


def cold_start(
    children: Children, workdir: Path, *, label: str, numba_cache: Path, speed: float, fps: float
) -> DaemonRun:
    """Start a tower and the daemon, wait for the first frame and the patrol's first stop, stop."""
    frame_port, onvif_port = free_port(), free_port()
    devices = [f"--set=thermal.port={frame_port}", f"--set=visible.port={frame_port}",
               f"--set=ptz.port={onvif_port}"]  # fmt: skip
    endpoints = workdir / f"{label}-endpoints.json"
    sim_log = open(workdir / f"{label}-sim.log", "wb")  # noqa: SIM115
    sim = children.start(
        [str(REPO / ".venv/bin/towerwatch"), "simulate", "tower", "--config", CONFIG, *devices,
         "--scenario", SCENARIO, "--speed", f"{speed:g}", "--fps", f"{fps:g}",
         "--log-level", "warning", "--endpoints-file", str(endpoints)],
        stdout=sim_log, stderr=sim_log,
    )  # fmt: skip
    while not endpoints.exists():
        if sim.poll() is not None:
            raise SystemExit(f"bench_daemon: simulated tower did not come up; see {sim_log.name}")
        time.sleep(0.05)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache))
    argv = [str(REPO / ".venv/bin/towerwatch"), "run", "--config", CONFIG, *devices,
            f"--set=mqtt.port={free_port()}",  # no broker: the uplink retries, frames flow
            f"--set=storage.state_dir={workdir / label}", "--log-level", "info"]  # fmt: skip
    started, started_unix = time.monotonic(), time.time()
    daemon = children.start(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    run = DaemonRun(label, started, daemon.pid)
    reader = threading.Thread(target=follow_daemon_log, args=(run, daemon.stderr), daemon=True)
    reader.start()
    run.first_frame_event.wait(180.0)
    # The kernels compile (or load from the cache) lazily, on the first frame the detectors
    # see at the first patrol stop: give the patrol a few stops, wait until the numba cache
    # has stopped changing, then stop.
    first = time.monotonic()
    quiet_since, last_sig = time.monotonic(), None
    while (time.monotonic() - first < 30.0 or time.monotonic() - quiet_since < 10.0) and (
        time.monotonic() - started < 180.0
    ):
        files = sorted(numba_cache.rglob("*.nbc")) if numba_cache.exists() else []
        sig = [(f.name, f.stat().st_mtime_ns) for f in files]
        if sig != last_sig:
            last_sig, quiet_since = sig, time.monotonic()
        time.sleep(0.25)
    files = list(numba_cache.rglob("*.nbc")) if numba_cache.exists() else []
    if files:
        newest = max(f.stat().st_mtime for f in files)
        run.events["jit done"] = (started + newest - started_unix, {"n": len(files)})
    children.end(daemon)
    reader.join(5.0)
    children.end(sim)
    sim_log.close()
    return run


# ----------------------------------------------------------------------------- report


def fmt(value: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1.5,
                        help="tower clock speed; above ~1 the renderer, not the camera, sets "
                        "the frame rate on a small machine (see 'tower fps')")  # fmt: skip
    parser.add_argument("--numba-threads", type=int, default=None,
                        help="NUMBA_NUM_THREADS for the daemon (default: unset, as in production)")  # fmt: skip
    parser.add_argument("--fps", type=float, default=9.0, help="simulated camera frame rate")
    parser.add_argument("--sector-span", type=float, default=30.0,
                        help="narrow sector width, centred on the fire's bearing")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="narrow sector only (~3 min)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="daemon config override, e.g. "
                        "patrol.dwell_s=1.2 (repeatable)")  # fmt: skip
    parser.add_argument("--cold", action="store_true",
                        help="also a cold start with an empty NUMBA_CACHE_DIR")  # fmt: skip
    args = parser.parse_args()
    speed = args.speed

    os.chdir(REPO)
    cfg = load_config(CONFIG, args.overrides)  # the report states what the daemon ran with
    scenario = load_scenario(SCENARIO)
    fire = min(scenario.fires, key=lambda f: f.start_s)
    assert fire.at.bearing_deg is not None, "the mission fire is placed by bearing"
    confirm_s = cfg.confirmation.settle_s + cfg.confirmation.dwell_s
    warm_cache = Path(os.environ.get("NUMBA_CACHE_DIR", REPO / ".cache/numba"))

    children = Children()
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    trials: list[Trial] = []
    colds: list[tuple[str, DaemonRun]] = []
    t_bench = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
            work = Path(tmp)
            broker_port = free_port()
            (work / "mosquitto.conf").write_text(
                f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            )
            broker_log = open(work / "mosquitto.log", "wb")  # noqa: SIM115
            children.start([MOSQUITTO, "-c", str(work / "mosquitto.conf")],
                           stdout=broker_log, stderr=broker_log)  # fmt: skip
            time.sleep(0.5)
            hub = Hub(broker_port)
            half = args.sector_span / 2.0
            plans: list[tuple[str, tuple[float, float], float, int]] = []
            if not args.quick:
                plans.append(("360°", (0.0, 360.0), 420.0, 1))
            plans.append((f"{args.sector_span:g}° sector",
                          ((fire.at.bearing_deg - half) % 360.0, args.sector_span),
                          150.0, 2))  # fmt: skip
            for label, sector, timeout_wall_s, cycles in plans:
                print(f"[{time.monotonic() - t_bench:5.0f} s] {label} patrol at {speed:g}x ...",
                      file=sys.stderr, flush=True)  # fmt: skip
                trials.append(run_trial(
                    children, hub, work, label=label.split()[0].rstrip("°") + "deg",
                    sector=sector, speed=speed, fps=args.fps, broker_port=broker_port,
                    timeout_wall_s=timeout_wall_s, cycles_wanted=cycles,
                    numba_cache=warm_cache, baseline_frames=BASELINE_FRAMES,
                    numba_threads=args.numba_threads, overrides=args.overrides,
                ))  # fmt: skip
                trials[-1].label = label
            if args.cold:
                print(f"[{time.monotonic() - t_bench:5.0f} s] cold start (empty numba cache) ...",
                      file=sys.stderr, flush=True)  # fmt: skip
                empty = work / "numba-empty"
                empty.mkdir()
                colds.append(("empty cache", cold_start(children, work, label="cold",
                                                        numba_cache=empty, speed=speed,
                                                        fps=args.fps)))  # fmt: skip
            hub.close()
    finally:
        children.end_all()
        signal.signal(signal.SIGTERM, previous)

    report(trials, colds, cfg=cfg, fire_bearing=fire.at.bearing_deg, fire_start_s=fire.start_s,
           confirm_s=confirm_s, speed=speed, fps=args.fps, numba_threads=args.numba_threads,
           wall_s=time.monotonic() - t_bench)  # fmt: skip


def report(
    trials: list[Trial], colds: list[tuple[str, DaemonRun]], *, cfg: Any, fire_bearing: float,
    fire_start_s: float, confirm_s: float, speed: float, fps: float, numba_threads: int | None,
    wall_s: float,
) -> None:  # fmt: skip
    print(f"daemon end to end: {SCENARIO} (fire at {fire_bearing:g}°, ignites at "
          f"+{fire_start_s:g} s), tower at {speed:g}x, camera {fps:g} fps, "
          f"confirmation settle+dwell {confirm_s:g} s, {wall_s:.0f} s wall")  # fmt: skip
    threads = os.environ.get("NUMBA_NUM_THREADS", f"unset: {os.cpu_count()} CPUs")
    print(f"daemon NUMBA_NUM_THREADS={numba_threads if numba_threads is not None else threads}")
    print()
    print("ignition → confirmed alarm on the broker (tower seconds)")
    head = (f"{'patrol':<13}{'stops':>6}{'cycle_s':>9}{'target_s':>10}{'1st frame':>10}"
            f"{'confirmed':>11}{'on broker':>11}{'÷ target':>10}{'broker ms':>10}"
            f"{'  cand/dism':<13}{'snap':>5}")  # fmt: skip
    print(head)
    for t in trials:
        stops = t.run.events.get("daemon started", (0, {}))[1].get("stops")
        cycle = t.cycles[0] if t.cycles else None
        target = cycle + confirm_s if cycle is not None else None
        confirmed = arrived = first = delay = None
        if t.confirmed is not None:
            arrival_wall, alarm = t.confirmed
            confirmed = parse_iso(alarm["confirmed_at"]) - t.ignition_unix
            logged = t.run.events.get("alarm")
            if logged is not None:
                # Wall log time ↔ tower time through the alarm: tower = sent_at + speed × Δwall.
                logged_wall = parse_iso(logged[1]["timestamp"])
                delay = max(arrival_wall - logged_wall, 0.0)
                arrived = parse_iso(alarm["sent_at"]) - t.ignition_unix + delay * speed
                ff = t.run.events.get("first frame")
                if ff is not None:
                    first = (parse_iso(alarm["sent_at"]) - t.ignition_unix
                             - (logged_wall - parse_iso(ff[1]["timestamp"])) * speed)  # fmt: skip
        ratio = arrived / target if arrived is not None and target else None
        dism = f"{t.run.candidates} / {len(t.run.dismissals)}"
        print(f"{t.label:<13}{fmt(stops, 'd'):>6}{fmt(cycle):>9}{fmt(target):>10}{fmt(first):>10}"
              f"{fmt(confirmed):>11}{fmt(arrived):>11}{fmt(ratio, '.2f'):>10}"
              f"{fmt(delay and delay * 1e3, '.0f'):>10}  {dism:<11}{t.snapshots:>5}")  # fmt: skip
    for t in trials:
        reasons = Counter(t.run.dismissals)
        if reasons:
            print(f"  {t.label} dismissed: "
                  + ", ".join(f"{n} {why}" for why, n in reasons.most_common()))  # fmt: skip
    print("  target = the first patrol cycle reported in status + confirmation settle + dwell;")
    print("  1st frame = when the daemon got its first frame (after ignition: it starts after the "
          "tower); broker ms = wall delay from the daemon's 'alarm' log line to arrival")  # fmt: skip
    print()
    print("patrol cycle (status patrol_cycle_s, tower seconds)")
    print(f"{'patrol':<13}{'cycles':>28}{'vs 30-min standard':>20}{'tower fps':>11}")
    for t in trials:
        cycles = ", ".join(f"{c:.1f}" for c in t.cycles) or "— (no cycle completed)"
        share = f"{t.cycles[0] / FORESTRY_CYCLE_S:.3f}" if t.cycles else "—"
        frames = t.run.stopping_counters.get("frames")
        tower_fps = frames / t.frames_tower_s if frames and t.frames_tower_s else None
        limited = tower_fps is not None and tower_fps * cfg.patrol.dwell_s < cfg.patrol.min_frames
        print(f"{t.label:<13}{cycles:>28}{share:>20}{fmt(tower_fps):>11}"
              f"{'  frame-limited' if limited else ''}")  # fmt: skip
    print(f"  tower fps = thermal frames the daemon got per tower second; at fewer than "
          f"{cfg.patrol.min_frames} / {cfg.patrol.dwell_s:g} s a stop waits for frames and "
          "the cycle is longer than with the real camera")  # fmt: skip
    print()
    print("CPU per processed frame (utime+stime from /proc/PID/stat, first frame → stop)")
    print(f"{'process':<28}{'frames':>8}{'CPU s':>8}{'ms/frame':>10}{'of 20 ms':>10}"
          f"{'× baseline':>12}")  # fmt: skip
    for t in trials:
        r = t.run
        frames = r.stopping_counters.get("frames")
        if frames and r.cpu_first_frame_s is not None and r.cpu_stopping_s is not None:
            used = r.cpu_stopping_s - r.cpu_first_frame_s
            per = used / max(frames - 1, 1)
            base = t.baseline_cpu_per_frame_s
            times = f"{per / base:.0f}" if base else "—"
            print(f"{'daemon, ' + t.label:<28}{frames:>8}{used:>8.2f}{per * 1e3:>10.2f}"
                  f"{per / FRAME_BUDGET_50HZ_S:>10.2f}{times:>12}")  # fmt: skip
            by_thread = sorted(
                ((tid, cpu - r.threads_first_frame.get(tid, 0.0))
                 for tid, cpu in r.threads_stopping.items()),
                key=lambda x: -x[1],
            )  # fmt: skip
            parts = [f"{'main' if tid == r.pid else r.thread_names.get(tid, 'thread')}"
                     f" {c / max(frames - 1, 1) * 1e3:.1f}"
                     for tid, c in by_thread if c > 0]  # fmt: skip
            print(f"    ms/frame by thread: {', '.join(parts[:6])}"
                  f"{f' (+{len(parts) - 6} more)' if len(parts) > 6 else ''}")  # fmt: skip
        if t.baseline_cpu_per_frame_s:
            b = t.baseline_cpu_per_frame_s
            print(f"{'  baseline: 1 numpy pass':<28}{BASELINE_FRAMES:>8}{b * BASELINE_FRAMES:>8.2f}"
                  f"{b * 1e3:>10.3f}"
                  f"{b / FRAME_BUDGET_50HZ_S:>10.3f}{'1':>12}")  # fmt: skip
    print()
    print("resident memory of the daemon at the end (/proc/PID/status)")
    for t in trials:
        m = t.run.memory_end_kib
        print(f"  {t.label:<13} VmRSS {fmt(m.get('VmRSS', 0) / 1024, '.0f')} MiB, "
              f"VmHWM {fmt(m.get('VmHWM', 0) / 1024, '.0f')} MiB "
              f"(anonymous {fmt(m.get('RssAnon', 0) / 1024, '.0f')} MiB, "
              f"file-backed {fmt(m.get('RssFile', 0) / 1024, '.0f')} MiB)")  # fmt: skip
    print("  file-backed pages are shared libraries (libLLVM for numba, OpenCV, lxml): shared"
          " between processes and dropped under memory pressure")
    print()
    print("cold start to the first frame")
    print(f"{'run':<24}{'startup_s (log)':>17}{'wall from exec':>16}{'kernels ready':>15}")
    rows = [(f"warm cache, {t.label}", t.run) for t in trials] + colds
    for name, r in rows:
        ff = r.events.get("first frame")
        startup = ff[1].get("startup_s") if ff else None
        wall = ff[0] - r.started_mono if ff else None
        jit = r.events.get("jit done")
        ready = "—" if jit is None else f"{jit[0] - r.started_mono:.1f} s ({jit[1]['n']} fn)"
        print(f"{name:<24}{fmt(startup, '.2f', ' s'):>17}{fmt(wall, '.2f', ' s'):>16}{ready:>15}")
    print(
        "  startup_s is logged when the first frame arrives, before the detectors run; "
        "numba loads or compiles the kernels on the first frame they see"
    )


if __name__ == "__main__":
    main()
