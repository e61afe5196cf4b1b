"""Local control socket: JSON lines over a Unix socket in the runtime directory.

The field tools talk to the running daemon through it instead of opening the devices a
second time. One request per line, one reply per line:

    → {"command": "status", "args": {}}
    ← {"ok": true, "result": {...}}            or   {"ok": false, "error": "one line"}

The daemon end is ``ControlServer``: a registry of ``command → handler``; a handler takes
the request's ``args`` (a dict) and returns a JSON-able dict, or raises ``ControlError``
with a message for the user. Handlers run on the server's connection threads, never on
the daemon's main loop: they must only read snapshots the owner publishes, or use
thread-safe objects (``HeadPause``, the drivers). Wiring it into the daemon::

    control = ControlServer(socket_path())
    control.register("status", lambda args: status_document(...))
    head_pause = HeadPause(clock=time.monotonic)
    head_pause.register(control)
    register_ptz_handlers(control, devices.ptz, head_pause)
    register_command_handler(control, self._on_command)   # test-alarm, relay-reset, ...
    if devices.relay is not None:
        register_relay_handlers(control, devices.relay)
    register_thermal_handlers(control, latest_frames)   # main loop: latest_frames.offer(frame)
    control.start()          # after the devices are built
    ...                      # the patrol skips its moves while head_pause.paused()
    control.stop()           # at shutdown

The client end is ``ControlClient`` (used by the CLI); ``DaemonNotRunning`` means no
daemon listens at the socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import structlog

from drivers.base import NamedThread
from edge import __version__

log = structlog.get_logger(__name__)

SOCKET_NAME = "control.sock"
# systemd RuntimeDirectory=towerwatch sets $RUNTIME_DIRECTORY to /run/towerwatch.
DEFAULT_RUNTIME_DIR = Path("/run/towerwatch")
RUNTIME_DIR_ENV = "TOWERWATCH_RUNTIME_DIR"
# A request line larger than this is not a request from our CLI.
MAX_LINE_BYTES = 1 << 20
# Group members (the towerwatch group) may use the socket; others may not.
SOCKET_MODE = 0o660

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(Exception):
    """A request is refused; the message is sent back as the reply's ``error``."""


class DaemonNotRunning(Exception):
    """No daemon answers at the control socket."""


def runtime_dir() -> Path:
    """$TOWERWATCH_RUNTIME_DIR, else systemd's $RUNTIME_DIRECTORY, else /run/towerwatch."""
    for name in (RUNTIME_DIR_ENV, "RUNTIME_DIRECTORY"):
        value = os.environ.get(name)
        if value:
            # RUNTIME_DIRECTORY may list several folders separated by ':'; ours is first.
            return Path(value.split(":")[0])
    return DEFAULT_RUNTIME_DIR


def socket_path(directory: Path | None = None) -> Path:
    return (directory if directory is not None else runtime_dir()) / SOCKET_NAME


def _encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


# --------------------------------------------------------------------------- server


class ControlServer:
    """Serves JSON-line requests on a Unix socket from a registry of handlers."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler] | None = None) -> None:
        self.path = Path(path)
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self.requests = 0
        self.errors = 0
        self.register("ping", lambda _args: {"version": __version__, "pid": os.getpid()})
        self.register("commands", lambda _args: {"commands": sorted(self._handlers)})
        for name, handler in (handlers or {}).items():
            self.register(name, handler)

    def register(self, command: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[command] = handler

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and serve on a background thread."""
        if self._sock is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise ControlError(f"{self.path}: another daemon already serves this socket")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, SOCKET_MODE)
            sock.listen(8)
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.2)
        self._sock = sock
        self._stop.clear()
        self._thread = NamedThread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()
        log.info("control_socket_listening", path=str(self.path))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def handle(self, request: Any) -> dict[str, Any]:
        """The reply to one decoded request (also usable without a socket)."""
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'a request is {"command": NAME, "args": {...}}'}
        args = request.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        command = request["command"]
        with self._lock:
            handler = self._handlers.get(command)
            self.requests += 1
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}"}
        try:
            return {"ok": True, "result": handler(args)}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            # A handler's outer boundary: the daemon keeps serving, the cause is logged.
            with self._lock:
                self.errors += 1
            log.exception("control_handler_failed", command=command)
            return {"ok": False, "error": f"{command}: internal error: {exc}"}

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("control_accept_failed")
                time.sleep(0.2)
                continue
            NamedThread(target=self._serve, args=(conn,), name="control-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
        try:
            conn.settimeout(None)
            reader = conn.makefile("rb")
            while not self._stop.is_set():
                line = reader.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return
                if len(line) > MAX_LINE_BYTES:
                    conn.sendall(_encode({"ok": False, "error": "request line too long"}))
                    return
                try:
                    request = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    reply: dict[str, Any] = {"ok": False, "error": "request is not JSON"}
                else:
                    reply = self.handle(request)
                try:
                    data = _encode(reply)
                except (TypeError, ValueError) as exc:
                    data = _encode({"ok": False, "error": f"reply is not JSON-able: {exc}"})
                conn.sendall(data)
        except OSError:
            return  # the client went away
        except Exception:
            log.exception("control_connection_failed")
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


# --------------------------------------------------------------------------- client


class ControlClient:
    """Sends requests to the daemon's control socket and returns their results."""

    def __init__(self, path: Path | None = None, timeout_s: float = 10.0) -> None:
        self.path = Path(path) if path is not None else socket_path()
        self.timeout_s = timeout_s

    def call(self, command: str, **args: Any) -> dict[str, Any]:
        """The handler's result; raises DaemonNotRunning or ControlError (the refusal)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
                raise DaemonNotRunning(
                    f"no daemon running (nothing listens at {self.path})"
                ) from exc
            except PermissionError as exc:
                raise DaemonNotRunning(
                    f"cannot use {self.path}: permission denied (join the towerwatch group)"
                ) from exc
            sock.sendall(_encode({"command": command, "args": args}))
            line = sock.makefile("rb").readline(MAX_LINE_BYTES + 1)
        except TimeoutError as exc:
            raise ControlError(
                f"the daemon did not answer {command!r} in {self.timeout_s:g} s"
            ) from exc
        finally:
            sock.close()
        if not line:
            raise ControlError(f"the daemon closed the connection during {command!r}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error", "refused")))
        result = reply.get("result", {})
        if not isinstance(result, dict):
            raise ControlError(f"{command!r}: malformed reply")
        return result


# --------------------------------------------------------------------------- head pause


class HeadPause:
    """Lets a field tool borrow the head from the patrol, with an expiry.

    The patrol asks ``paused()`` before each move and leaves the head alone while a
    lease is held. A lease ends with ``resume`` or by itself after its ``timeout_s``, so
    a tool that crashed cannot leave the tower blind.
    """

    MAX_LEASE_S = 3600.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._owner: str | None = None
        self._until = 0.0

    def pause(self, owner: str, timeout_s: float) -> float:
        """Grant or extend ``owner``'s lease; returns its remaining seconds."""
        if not 0.0 < timeout_s <= self.MAX_LEASE_S:
            raise ControlError(f"timeout_s must be in (0, {self.MAX_LEASE_S:g}], got {timeout_s}")
        with self._lock:
            now = self._clock()
            if self._owner not in (None, owner) and now < self._until:
                raise ControlError(
                    f"the head is paused by {self._owner!r} for {self._until - now:.0f} s more"
                )
            self._owner, self._until = owner, now + timeout_s
            return timeout_s

    def resume(self, owner: str) -> None:
        with self._lock:
            if self._owner not in (None, owner) and self._clock() < self._until:
                raise ControlError(f"the head is paused by {self._owner!r}, not {owner!r}")
            self._owner, self._until = None, 0.0

    def paused(self) -> bool:
        with self._lock:
            return self._owner is not None and self._clock() < self._until

    def state(self) -> dict[str, Any]:
        with self._lock:
            remaining = self._until - self._clock()
            if self._owner is None or remaining <= 0.0:
                return {"paused": False}
            return {"paused": True, "owner": self._owner, "remaining_s": remaining}

    def register(self, server: ControlServer) -> None:
        """``head.pause`` {owner, timeout_s}, ``head.resume`` {owner}, ``head.state``."""

        def pause(args: dict[str, Any]) -> dict[str, Any]:
            owner = _text(args, "owner")
            self.pause(owner, _number(args, "timeout_s"))
            return self.state()

        def resume(args: dict[str, Any]) -> dict[str, Any]:
            self.resume(_text(args, "owner"))
            return self.state()

        server.register("head.pause", pause)
        server.register("head.resume", resume)
        server.register("head.state", lambda _args: self.state())


class _Head(Protocol):
    def absolute_move(
        self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None
    ) -> None: ...
    def relative_move(self, dpan_deg: float, dtilt_deg: float) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> Any: ...


def register_ptz_handlers(server: ControlServer, head: _Head, pause: HeadPause) -> None:
    """``ptz.where``, and ``ptz.goto`` / ``ptz.jog`` / ``ptz.stop`` while the head is paused.

    Moves are refused unless a tool holds the pause, so they never fight the patrol.
    The head's own driver is thread-safe; these run on the control threads.
    """

    def where(_args: dict[str, Any]) -> dict[str, Any]:
        s = head.status()
        return {"pan_deg": s.pan_deg, "tilt_deg": s.tilt_deg, "hfov_deg": s.hfov_deg,
                "moving": s.moving, "t": s.t}  # fmt: skip

    def require_pause() -> None:
        if not pause.paused():
            raise ControlError("pause the head first (head.pause): the patrol owns it")

    def goto(args: dict[str, Any]) -> dict[str, Any]:
        require_pause()
        hfov = args.get("hfov_deg")
        head.absolute_move(
            _number(args, "pan_deg"),
            _number(args, "tilt_deg"),
            None if hfov is None else _number(args, "hfov_deg"),
        )
        return where({})

    def jog(args: dict[str, Any]) -> dict[str, Any]:
        require_pause()
        head.relative_move(_number(args, "dpan_deg"), _number(args, "dtilt_deg"))
        return where({})

    def stop(_args: dict[str, Any]) -> dict[str, Any]:
        head.stop()
        return where({})

    server.register("ptz.where", where)
    server.register("ptz.goto", goto)
    server.register("ptz.jog", jog)
    server.register("ptz.stop", stop)


def register_command_handler(
    server: ControlServer, on_command: Callable[[str, bytes], dict[str, Any]]
) -> None:
    """``command`` {verb, payload}: the hub's command path (same verbs, same validation).

    ``on_command`` is the daemon's MQTT command handler: it validates and queues the
    command for the main loop, raising edge.messages.CommandError to refuse it.
    """
    from edge.messages import CommandError

    def run(args: dict[str, Any]) -> dict[str, Any]:
        verb = _text(args, "verb")
        payload = args.get("payload", {})
        if not isinstance(payload, dict):
            raise ControlError("payload must be an object")
        try:
            return on_command(verb, json.dumps(payload).encode("utf-8"))
        except CommandError as exc:
            raise ControlError(str(exc)) from None

    server.register("command", run)


class _Relay(Protocol):
    def set_output(self, on: bool) -> None: ...
    def output(self) -> bool | None: ...


# The longest siren test a command may ask for.
MAX_RELAY_TEST_S = 30.0


def relay_pulse(
    relay: _Relay,
    on_s: float,
    *,
    confirm_timeout_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Close the relay for ``on_s`` and open it again, confirming each state on read-back."""
    if not 0.0 < on_s <= MAX_RELAY_TEST_S:
        raise ControlError(f"on_s must be in (0, {MAX_RELAY_TEST_S:g}], got {on_s}")

    def confirm(state: bool) -> float:
        started = time.monotonic()
        while relay.output() is not state:
            if time.monotonic() - started > confirm_timeout_s:
                raise ControlError(
                    f"relay did not confirm {'closed' if state else 'open'} within "
                    f"{confirm_timeout_s:g} s (read back {relay.output()})"
                )
            sleep(0.02)
        return time.monotonic() - started

    relay.set_output(True)
    try:
        closed_s = confirm(True)
        sleep(on_s)
    finally:
        relay.set_output(False)
    opened_s = confirm(False)
    return {"closed_confirmed_s": closed_s, "opened_confirmed_s": opened_s, "on_s": on_s}


def register_relay_handlers(server: ControlServer, relay: _Relay) -> None:
    """``relay.state`` and ``relay.test`` {on_s}: a siren pulse with read-back."""
    server.register("relay.state", lambda _args: {"closed": relay.output()})
    server.register("relay.test", lambda args: relay_pulse(relay, _number(args, "on_s")))


# --------------------------------------------------------------------------- thermal window

# Limits of a `thermal.window` request: a small window averaged over a few seconds of frames.
MAX_WINDOW_HALF_PX = 16
MAX_WINDOW_FRAMES = 200
MAX_WINDOW_WAIT_S = 60.0


class _ThermalFrame(Protocol):
    @property
    def image(self) -> Any: ...
    @property
    def t(self) -> float: ...
    @property
    def radiometric(self) -> bool: ...
    @property
    def shutter(self) -> bool: ...


class LatestFrames:
    """The newest thermal frame, handed over by the main loop for the control threads.

    The main loop only stores a reference (``offer``); a field tool's request waits on
    the connection thread for the frames it needs, so the camera is opened once, by the
    daemon, and the main loop never waits for a tool.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._frame: _ThermalFrame | None = None
        self._count = 0

    def offer(self, frame: _ThermalFrame) -> None:
        with self._ready:
            self._frame = frame
            self._count += 1
            self._ready.notify_all()

    def next_after(self, count: int, timeout_s: float) -> tuple[int, _ThermalFrame | None]:
        """(its number, the first frame offered after frame number ``count``), or None on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._ready:
            while self._count <= count:
                left = deadline - time.monotonic()
                if left <= 0.0 or not self._ready.wait(left):
                    return self._count, None
            return self._count, self._frame

    @property
    def count(self) -> int:
        with self._ready:
            return self._count

    def window(
        self, u_px: float | None, v_px: float | None, half_px: int, frames: int, timeout_s: float
    ) -> dict[str, Any]:
        """Mean temperature of a (2·half+1)² window around (u, v) (default: the centre) in
        each of the next ``frames`` radiometric frames (shutter frames skipped)."""
        if not 0 <= half_px <= MAX_WINDOW_HALF_PX:
            raise ControlError(f"half_px must be 0-{MAX_WINDOW_HALF_PX}, got {half_px}")
        if not 1 <= frames <= MAX_WINDOW_FRAMES:
            raise ControlError(f"frames must be 1-{MAX_WINDOW_FRAMES}, got {frames}")
        if not 0.0 < timeout_s <= MAX_WINDOW_WAIT_S:
            raise ControlError(f"timeout_s must be in (0, {MAX_WINDOW_WAIT_S:g}], got {timeout_s}")
        deadline = time.monotonic() + timeout_s
        seen = self.count
        means: list[float] = []
        times: list[float] = []
        u = v = 0
        shape: tuple[int, ...] = ()
        while len(means) < frames:
            seen, frame = self.next_after(seen, deadline - time.monotonic())
            if frame is None:
                raise ControlError(f"thermal: {len(means)} of {frames} frames in {timeout_s:g} s")
            if frame.shutter:
                continue
            if not frame.radiometric:
                raise ControlError("thermal: the stream is not radiometric; no temperatures")
            image = frame.image
            shape = tuple(image.shape)
            height, width = shape[:2]
            u = round((width - 1) / 2.0 if u_px is None else u_px)
            v = round((height - 1) / 2.0 if v_px is None else v_px)
            if not (half_px <= u < width - half_px and half_px <= v < height - half_px):
                raise ControlError(
                    f"window at ({u}, {v}) ± {half_px} px leaves the {width}x{height} image"
                )
            patch = image[v - half_px : v + half_px + 1, u - half_px : u + half_px + 1]
            means.append(float(patch.mean()))
            times.append(float(frame.t))
        return {"u_px": u, "v_px": v, "half_px": half_px, "width_px": shape[1],
                "height_px": shape[0], "mean_k": means, "t": times}  # fmt: skip


def register_thermal_handlers(server: ControlServer, frames: LatestFrames) -> None:
    """``thermal.window`` {u_px?, v_px?, half_px, frames, timeout_s}: window means per frame."""

    def window(args: dict[str, Any]) -> dict[str, Any]:
        u = None if args.get("u_px") is None else _number(args, "u_px")
        v = None if args.get("v_px") is None else _number(args, "v_px")
        return frames.window(u, v, int(_number(args, "half_px")), int(_number(args, "frames")),
                             _number(args, "timeout_s"))  # fmt: skip

    server.register("thermal.window", window)


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{key} must be a non-empty string")
    return value


def _number(args: dict[str, Any], key: str) -> float:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{key} must be a number")
    return float(value)


# --------------------------------------------------------------------------- status


def process_usage() -> dict[str, float]:
    """This process's CPU seconds and resident memory, for the status document."""
    usage: dict[str, float] = {"cpu_s": time.process_time()}
    # Without /proc (not Linux) the status simply has no memory figure.
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        usage["memory_mb"] = pages * os.sysconf("SC_PAGE_SIZE") / 1024**2
    return usage


def socket_is_private(path: Path) -> bool:
    """True when only owner and group may use the socket."""
    return not stat.S_IMODE(path.stat().st_mode) & 0o007


STATUS_STATES = ("online", "degraded", "offline")


def status_document(
    *,
    tower_id: str,
    state: str,
    reasons: tuple[str, ...] | list[str] = (),
    uptime_s: float,
    devices: Mapping[str, Any],
    broker: Mapping[str, Any],
    outbox_depth: int,
    patrol: Mapping[str, Any],
    detection_range_m: float | None,
    open_alarms: list[Mapping[str, Any]],
    frame_rate_hz: float | None,
    drift: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The reply of the daemon's ``status`` handler, which ``towerwatch status`` shows.

    ``devices`` maps a config section to its ``DriverHealth`` (or its ``as_dict()``);
    ``broker`` holds ``connected`` and ``last_error``; ``patrol`` holds ``pan_deg``,
    ``tilt_deg`` and ``cycle_s``; each open alarm at least ``alarm_id`` and
    ``bearing_deg``. CPU, memory and version are filled in here.
    """
    if state not in STATUS_STATES:
        raise ValueError(f"state must be one of {STATUS_STATES}, got {state!r}")
    device_rows = {
        name: health.as_dict() if hasattr(health, "as_dict") else dict(health)
        for name, health in devices.items()
    }
    return {
        "tower_id": tower_id,
        "state": state,
        "reasons": list(reasons),
        "version": __version__,
        "uptime_s": uptime_s,
        "devices": device_rows,
        "broker": dict(broker),
        "outbox_depth": outbox_depth,
        "patrol": dict(patrol),
        "detection_range_m": detection_range_m,
        "open_alarms": [dict(a) for a in open_alarms],
        "frame_rate_hz": frame_rate_hz,
        "drift": None if drift is None else dict(drift),
        **process_usage(),
    }
