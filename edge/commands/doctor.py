"""`towerwatch doctor`: one line per installation check, non-zero exit when any fails.

Checks, in order: the config; every file and folder it names; the secrets and their
permissions; each configured device through its production driver (thermal frames and
their radiometric mode, visible frames, the head's login and clock skew, lidar, GNSS fix
and its distance from the surveyed position, relay read-back, serial port access); the
broker with its TLS files and credentials; disk space; time sync. Devices are opened
once, side by side, each within ``--timeout``, so a tower with nothing attached still
answers within a few seconds. Run it with the daemon stopped: the daemon holds the
serial ports.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
from pydantic import BaseModel

from edge.cli_support import (
    EXIT_FAILURE,
    EXIT_USAGE,
    config_options,
    echo_json,
    json_option,
    tool_logging,
)
from edge.config import ConfigError, TowerConfig, load_config

Verdict = Literal["ok", "warn", "fail", "skip"]

# GNSS against the surveyed camera position: a consumer receiver is good to a few metres,
# and the antenna sits on the same mast; beyond these the survey or the receiver is wrong.
GNSS_WARN_M = 15.0
GNSS_FAIL_M = 100.0
# Outbox, alarm book and snapshots live in the state folder; a week of snapshots of a busy
# tower is a few hundred MB.
DISK_FAIL_BYTES = 200 * 1024**2
DISK_WARN_BYTES = 1024**3
# A camera clock this far off breaks frame time stamps against the gateway's clock (the
# ONVIF driver signs with the device's own time, so login still works).
CAMERA_SKEW_WARN_S = 5.0
# Plausible scene temperatures of a radiometric thermal frame (−70 °C … +80 °C median).
SCENE_MEDIAN_K = (203.0, 353.0)
# adjtimex(2) returns TIME_ERROR while the kernel clock is not synchronised.
_TIME_ERROR = 5


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, "fail", detail)


def _warn(name: str, detail: str) -> Check:
    return Check(name, "warn", detail)


# --------------------------------------------------------------------------- files


def _named_paths(cfg: TowerConfig) -> Iterator[tuple[str, Path, str]]:
    """(key path, path, kind) of every file or folder the config names."""
    if cfg.geolocation.dem_path is not None:
        yield "geolocation.dem_path", cfg.geolocation.dem_path, "file"
    tls = cfg.mqtt.tls
    if tls is not None:
        yield "mqtt.tls.ca_file", tls.ca_file, "file"
        if tls.cert_file is not None:
            yield "mqtt.tls.cert_file", tls.cert_file, "file"


def check_files(cfg: TowerConfig) -> list[Check]:
    out: list[Check] = []
    for key, path, _kind in _named_paths(cfg):
        if not path.is_file():
            out.append(_fail(f"file {key}", f"{path}: no such file"))
        elif not os.access(path, os.R_OK):
            out.append(_fail(f"file {key}", f"{path}: not readable by this user"))
        else:
            out.append(_ok(f"file {key}", str(path)))
    state = cfg.storage.state_dir
    if state.is_dir():
        if os.access(state, os.W_OK | os.X_OK):
            out.append(_ok("folder storage.state_dir", str(state)))
        else:
            out.append(_fail("folder storage.state_dir", f"{state}: not writable by this user"))
    else:
        parent = _existing_parent(state)
        if os.access(parent, os.W_OK | os.X_OK):
            out.append(_ok("folder storage.state_dir", f"{state} (created at start)"))
        else:
            out.append(
                _fail(
                    "folder storage.state_dir",
                    f"{state}: does not exist and {parent} is not writable "
                    "(systemd StateDirectory= creates it)",
                )
            )
    return out


def _existing_parent(path: Path) -> Path:
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


# --------------------------------------------------------------------------- secrets


def _secret_keys(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(key path, secret name) of every ``*_secret`` value in the config.

    Walks the model objects themselves: a device section is its driver's own settings
    class, which a dump of the whole config would reduce to the base section.
    """
    if isinstance(node, BaseModel):
        for key in type(node).model_fields:
            value = getattr(node, key)
            path = f"{prefix}.{key}" if prefix else key
            if key.endswith("_secret") and isinstance(value, str):
                yield path, value
            else:
                yield from _secret_keys(value, path)


def check_secrets(cfg: TowerConfig) -> list[Check]:
    names = list(_secret_keys(cfg))
    if not names:
        return [Check("secrets", "skip", "the config names no secrets")]
    directory = cfg.secrets_directory()
    if directory is None:
        return [
            _fail(
                "secrets",
                f"{', '.join(k for k, _ in names)} need a secrets folder: set "
                "secrets.directory or run under systemd with LoadCredential=",
            )
        ]
    out: list[Check] = []
    if not directory.is_dir():
        return [_fail("secrets", f"secrets folder {directory} does not exist")]
    dir_mode = directory.stat().st_mode
    if dir_mode & stat.S_IWOTH:
        out.append(_fail("secrets folder", f"{directory} is writable by everyone: chmod o-w"))
    for key, name in names:
        path = directory / name
        label = f"secret {key}"
        if not path.is_file():
            out.append(_fail(label, f"{path} does not exist"))
            continue
        mode = path.stat().st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            out.append(_fail(label, f"{path} is readable by everyone: chmod 0600 {path}"))
        elif not os.access(path, os.R_OK):
            out.append(_fail(label, f"{path} is not readable by this user"))
        elif mode & stat.S_IWGRP:
            out.append(_warn(label, f"{path} is group-writable: chmod g-w {path}"))
        elif not path.read_text(encoding="utf-8", errors="replace").strip():
            out.append(_fail(label, f"{path} is empty"))
        else:
            out.append(_ok(label, f"{path} ({stat.filemode(mode)})"))
    return out


# --------------------------------------------------------------------------- devices


def _make_driver(cfg: TowerConfig, section: str) -> Any:
    from drivers.registry import driver_module
    from edge.secrets import FileSecretStore

    settings = getattr(cfg, section)
    return driver_module(section, settings.type).Driver(
        settings, FileSecretStore.from_config(cfg)
    )


def _wait_until(predicate: Callable[[], Any], timeout_s: float, poll_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(poll_s)


def _last_error(driver: Any, fallback: str) -> str:
    return str(driver.health().last_error or fallback)


def _serial_access(cfg: TowerConfig, section: str) -> Check | None:
    """A failing check when the section's serial port path cannot be used, else None."""
    port = str(getattr(getattr(cfg, section), "port", "") or "")
    if not port or "://" in port:
        return None
    label = f"serial {section}.port"
    if not os.path.exists(port):
        return _fail(label, f"{port}: no such device (udev rule for /dev/towerwatch-*?)")
    if not stat.S_ISCHR(os.stat(port).st_mode):
        return _fail(label, f"{port}: not a serial device")
    if not os.access(port, os.R_OK | os.W_OK):
        return _fail(label, f"{port}: permission denied (group of the udev rule?)")
    return None


def _frames(cfg: TowerConfig, section: str, timeout_s: float) -> list[Check]:
    from drivers.base import DriverError

    label = section
    driver = _make_driver(cfg, section)
    try:
        driver.open()
        frame = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = driver.read(max(deadline - time.monotonic(), 0.01))
            if frame is not None and not frame.shutter:
                break
        if frame is None:
            return [_fail(label, f"no frame in {timeout_s:g} s: {_last_error(driver, 'silent')}")]
        shape = f"{frame.image.shape[1]}x{frame.image.shape[0]}"
        out = [_ok(label, f"frames arrive ({shape})")]
        if section == "thermal":
            out.append(_thermal_mode(cfg, frame))
        return out
    except DriverError as exc:
        return [_fail(label, str(exc))]
    finally:
        driver.close()


def _thermal_mode(cfg: TowerConfig, frame: Any) -> Check:
    label = "thermal radiometric"
    cam = cfg.camera
    height, width = frame.image.shape[:2]
    if (width, height) != (cam.width_px, cam.height_px):
        return _fail(
            label,
            f"frames are {width}x{height} but camera.width_px/height_px say "
            f"{cam.width_px}x{cam.height_px}",
        )
    if not frame.radiometric:
        if cam.radiometric:
            return _fail(
                label,
                "frames are not radiometric but camera.radiometric is true: choose the "
                "camera's 16-bit temperature stream",
            )
        return _warn(label, "8-bit video (camera.radiometric: false): the tower runs degraded")
    median_k = float(np.median(frame.image))
    low, high = SCENE_MEDIAN_K
    if not low <= median_k <= high:
        return _fail(
            label,
            f"scene median {median_k:.1f} K is implausible: check counts_gain_k/counts_offset_k",
        )
    return _ok(label, f"temperatures, scene median {median_k - 273.15:.1f} °C")


def _ptz(cfg: TowerConfig, timeout_s: float) -> list[Check]:
    from drivers.base import DriverError

    settings: Any = cfg.ptz
    kind = str(settings.type)
    label = f"ptz ({kind})"
    access = _serial_access(cfg, "ptz") if kind == "pelco_d" else None
    if access is not None:
        return [access]
    driver = _make_driver(cfg, "ptz")
    try:
        driver.open()
        if not driver.wait_connected(timeout_s):
            return [_fail(label, f"no session in {timeout_s:g} s: {_last_error(driver, 'silent')}")]
        status = driver.status()
        where = f"pan {status.pan_deg:.2f}°, tilt {status.tilt_deg:.2f}°"
        if kind != "onvif":
            return [_ok(label, f"answers: {where}")]
        out = [_ok(label, f"login ok as {settings.username!r}: {where}")]
        skew_s = status.t - time.time()
        if cfg.time_source == "camera":
            out.append(
                _ok("ptz clock", f"skew {skew_s:+.1f} s (the tower follows the camera's clock)")
            )
        elif abs(skew_s) > CAMERA_SKEW_WARN_S:
            out.append(_warn("ptz clock", f"camera clock {skew_s:+.1f} s off: set its NTP server"))
        else:
            out.append(_ok("ptz clock", f"skew {skew_s:+.1f} s"))
        return out
    except DriverError as exc:
        return [_fail(label, str(exc))]
    finally:
        driver.close()


def _serial_device(cfg: TowerConfig, section: str, timeout_s: float) -> list[Check]:
    from drivers.base import DriverError, DriverState

    access = _serial_access(cfg, section)
    if access is not None:
        return [access]
    driver = _make_driver(cfg, section)
    try:
        driver.open()
        if section == "gnss":
            return _gnss_fix(cfg, driver, timeout_s)
        if section == "relay":
            state = _wait_until(lambda: driver.output() is not None, timeout_s)
            if not state:
                return [
                    _fail(
                        "relay", f"no read-back in {timeout_s:g} s: {_last_error(driver, 'silent')}"
                    )
                ]
            return [_ok("relay", f"answers; output {'closed' if driver.output() else 'open'}")]
        up = _wait_until(lambda: driver.health().state == DriverState.OK, timeout_s)
        if not up:
            return [
                _fail(section, f"not answering in {timeout_s:g} s: {_last_error(driver, 'silent')}")
            ]
        return [_ok(section, "answers")]
    except DriverError as exc:
        return [_fail(section, str(exc))]
    finally:
        driver.close()


def _gnss_fix(cfg: TowerConfig, driver: Any, timeout_s: float) -> list[Check]:
    from edge.geodesy import geodesic_inverse

    fix = _wait_until(driver.latest_fix, timeout_s)
    if fix is None:
        return [_fail("gnss", f"no fix in {timeout_s:g} s: {_last_error(driver, 'no valid fix')}")]
    distance, _, _ = geodesic_inverse(cfg.tower.lat, cfg.tower.lon, fix.lat, fix.lon)
    distance_m = float(distance)
    detail = (
        f"fix quality {fix.fix_quality}, {fix.satellites} satellites, HDOP {fix.hdop:g}; "
        f"{distance_m:.1f} m from tower.lat/lon"
    )
    if distance_m > GNSS_FAIL_M:
        return [_fail("gnss", detail + f" (> {GNSS_FAIL_M:g} m: wrong survey or receiver)")]
    if distance_m > GNSS_WARN_M:
        return [_warn("gnss", detail + f" (> {GNSS_WARN_M:g} m)")]
    return [_ok("gnss", detail)]


def check_devices(cfg: TowerConfig, timeout_s: float) -> list[Check]:
    jobs: list[Callable[[], list[Check]]] = [
        lambda: _frames(cfg, "thermal", timeout_s),
        lambda: _ptz(cfg, timeout_s),
    ]
    if cfg.visible is not None:
        jobs.append(lambda: _frames(cfg, "visible", timeout_s))
    for section in ("lidar", "gnss", "relay"):
        if getattr(cfg, section) is not None:
            jobs.append(lambda s=section: _serial_device(cfg, s, timeout_s))  # type: ignore[misc]
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="doctor") as pool:
        results = [pool.submit(job) for job in jobs]
        return [check for future in results for check in future.result()]


# --------------------------------------------------------------------------- broker


def check_broker(cfg: TowerConfig, timeout_s: float) -> list[Check]:
    """Connect to the broker as the tower would (TLS, user, password) under a side client id."""
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from drivers.base import DriverError
    from edge.secrets import FileSecretStore

    m = cfg.mqtt
    label = f"broker {m.host}:{m.port}"
    secrets = FileSecretStore.from_config(cfg)
    # A distinct id, so the daemon's own session (and its queued messages) is left alone.
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{m.client_id or cfg.tower.id}-doctor",
        protocol=mqtt.MQTTv5,
    )
    try:
        if m.username is not None:
            password = secrets.read(m.password_secret) if m.password_secret else None
            client.username_pw_set(m.username, password)
        if m.tls is not None:
            key = secrets.path_of(m.tls.key_secret) if m.tls.key_secret else None
            client.tls_set(
                ca_certs=str(m.tls.ca_file),
                certfile=None if m.tls.cert_file is None else str(m.tls.cert_file),
                keyfile=None if key is None else str(key),
                cert_reqs=ssl.CERT_REQUIRED,
            )
    except DriverError as exc:
        return [_fail(label, str(exc))]
    except (OSError, ssl.SSLError) as exc:
        return [_fail(label, f"cannot load the TLS files of mqtt.tls: {exc}")]
    done = threading.Event()
    outcome: dict[str, str] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        outcome["reason"] = str(reason)
        outcome["ok"] = "yes" if not reason.is_failure else ""
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(m.host, m.port, keepalive=max(m.keepalive_s, 5))
    except ssl.SSLError as exc:
        return [_fail(label, f"TLS handshake failed: {exc}")]
    except OSError as exc:
        return [_fail(label, f"cannot connect: {exc.strerror or exc}")]
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return [_fail(label, f"no CONNACK in {timeout_s:g} s")]
        if not outcome.get("ok"):
            return [_fail(label, f"refused: {outcome.get('reason')} (mqtt.username / password)")]
        tls = "TLS" if m.tls is not None else "no TLS"
        return [_ok(label, f"connected ({tls})")]
    finally:
        client.disconnect()
        client.loop_stop()


# --------------------------------------------------------------------------- host


def check_disk(cfg: TowerConfig) -> list[Check]:
    folder = _existing_parent(cfg.storage.state_dir)
    free = shutil.disk_usage(folder).free
    detail = f"{free / 1024**3:.1f} GiB free at {folder}"
    if free < DISK_FAIL_BYTES:
        return [_fail("disk space", detail)]
    if free < DISK_WARN_BYTES:
        return [_warn("disk space", detail)]
    return [_ok("disk space", detail)]


def clock_synchronised() -> bool | None:
    """Whether the kernel clock is disciplined (NTP, chrony, GNSS); None if unknown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    adjtimex = getattr(libc, "adjtimex", None)
    if adjtimex is None:
        return None
    buffer = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
    state = int(adjtimex(buffer))
    if state < 0:
        return None
    return state != _TIME_ERROR


def check_time(cfg: TowerConfig) -> list[Check]:
    if cfg.time_source == "camera":
        return [Check("time sync", "skip", "time_source: camera (the tower follows the camera)")]
    synced = clock_synchronised()
    if synced is None:
        return [_warn("time sync", "cannot tell whether the system clock is synchronised")]
    if not synced:
        return [
            _fail(
                "time sync",
                "the system clock is not synchronised: enable NTP (timedatectl set-ntp true) "
                "or a GNSS time source",
            )
        ]
    return [_ok("time sync", "the system clock is synchronised")]


# --------------------------------------------------------------------------- command


def run_checks(cfg: TowerConfig, timeout_s: float) -> list[Check]:
    checks = check_files(cfg) + check_secrets(cfg)
    checks += check_devices(cfg, timeout_s)
    checks += check_broker(cfg, timeout_s)
    checks += check_disk(cfg) + check_time(cfg)
    return checks


@click.command("doctor")
@config_options
@json_option
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1, max=120.0),
    default=5.0,
    show_default=True,
    help="How long each device and the broker may take to answer, in seconds.",
)
def command(config: str, sets: tuple[str, ...], as_json: bool, timeout_s: float) -> None:
    """Check the installation: config, files, secrets, devices, broker, disk, time."""
    # Each failing device is already one line of the report; drivers' retries stay quiet.
    tool_logging("error")
    try:
        cfg = load_config(config, sets)
    except ConfigError as exc:
        checks = [_fail("config", problem) for problem in exc.problems]
        _report(checks, as_json)
        raise SystemExit(EXIT_USAGE) from None
    checks = [_ok("config", f"{config} is valid")] + run_checks(cfg, timeout_s)
    _report(checks, as_json)
    _exit(EXIT_FAILURE if any(c.verdict == "fail" for c in checks) else 0)


def _exit(code: int) -> None:
    """Exit with ``code``, even while a driver thread is stuck in native code.

    A camera whose address does not answer leaves the OpenCV reader blocked inside
    FFmpeg's connect for its own timeout; the interpreter's normal shutdown would then
    abort the process ("terminate called without an active exception"). The report is
    complete at this point, so the process ends without waiting for it.
    """
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if not stuck:
        raise SystemExit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _report(checks: list[Check], as_json: bool) -> None:
    failed = sum(c.verdict == "fail" for c in checks)
    if as_json:
        echo_json({"ok": failed == 0, "checks": [asdict(c) for c in checks]})
        return
    width = max(len(c.name) for c in checks)
    for c in checks:
        click.echo(f"{c.verdict:<4}  {c.name:<{width}}  {c.detail}")
    summary = "all checks passed" if not failed else f"{failed} check{'s' * (failed != 1)} failed"
    click.echo(summary, err=True)
