"""The simulated tower serves every device of the config on its real transport.

Each device is reached with the daemon's own production driver, built from the same
config by edge.devices: frames over TCP, the head over ONVIF HTTP or Pelco-D on a pty,
lidar, GNSS and relay on ptys whose symlinks sit at the configured ``port`` paths.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from detectors.lidar_returns import analyse_profile
from drivers import relay_gpio
from drivers.base import DriverState
from edge.commands.sim_tower import SpecError, tower_spec
from edge.config import TowerConfig, load_config
from edge.devices import Devices, build_devices
from edge.secrets import FileSecretStore
from simulators.geo import earth_drop_m
from simulators.scenario import load_scenario
from simulators.tower import DevicePathError, SimulatedTower
from tests.towers import ROOT, _env, free_port, towerwatch

SCENARIO = ROOT / "benchmarks" / "scenarios" / "mission-2m-10km.yaml"
SPEED = 10.0


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s")


def config_for(base: str, tmp: Path, *extra: str) -> TowerConfig:
    port = free_port()
    sets = [
        f"thermal.port={port}",
        f"visible.port={port}",
        f"lidar.port={tmp / 'dev' / 'lidar'}",
        f"gnss.port={tmp / 'dev' / 'gnss'}",
        f"relay.port={tmp / 'dev' / 'relay'}",
        f"storage.state_dir={tmp / 'state'}",
        *extra,
    ]
    return load_config(ROOT / "config" / base, sets)


def start_tower(cfg: TowerConfig) -> SimulatedTower:
    spec = tower_spec(cfg, "test config", FileSecretStore.from_config(cfg))
    sim = SimulatedTower(spec, load_scenario(SCENARIO), speed=SPEED, fps=5.0)
    sim.start()
    return sim


@pytest.fixture
def onvif_tower(tmp_path: Path) -> Iterator[tuple[SimulatedTower, Devices, TowerConfig]]:
    cfg = config_for("simulated.yaml", tmp_path, f"ptz.port={free_port()}")
    sim = start_tower(cfg)
    devices = build_devices(cfg, FileSecretStore.from_config(cfg))
    devices.open_all()
    yield sim, devices, cfg
    devices.close_all()
    sim.stop()


def test_every_device_answers_its_production_driver(
    onvif_tower: tuple[SimulatedTower, Devices, TowerConfig], tmp_path: Path
) -> None:
    sim, devices, cfg = onvif_tower
    ends = sim.endpoints()
    for section in ("lidar", "gnss", "relay"):
        path = getattr(cfg, section).port
        assert ends[section]["port"] == path and os.path.islink(path)
        assert os.readlink(path) == ends[section]["tty"]
    assert ends["onvif"].startswith(f"http://127.0.0.1:{cfg.ptz.port}/")  # type: ignore[attr-defined]

    # Frames over TCP, stamped with the tower's clock.
    frame = devices.thermal.read(timeout_s=20.0)
    assert frame is not None and frame.radiometric and frame.image.shape == (512, 640)
    assert abs(frame.t - sim.clock.now()) < 5.0 * SPEED

    # The head over ONVIF, once its session is up (it connects in the background).
    wait_for(lambda: devices.ptz.health().state is DriverState.OK, 20.0)
    devices.ptz.absolute_move(90.0, 0.5)
    wait_for(lambda: abs(sim.head.true_pose()[0] - 90.0) < 0.5, 10.0)
    status = wait_for(lambda: (s := devices.ptz.status()) and not s.moving and s, 10.0)
    assert status.pan_deg == pytest.approx(90.0, abs=0.2)  # type: ignore[attr-defined]

    # A GNSS fix at the tower's position: lat, lon, ground + mast.
    assert devices.gnss is not None
    fix = wait_for(devices.gnss.latest_fix, 10.0)
    assert fix.lat == pytest.approx(cfg.tower.lat, abs=1e-6)  # type: ignore[attr-defined]
    assert fix.lon == pytest.approx(cfg.tower.lon, abs=1e-6)  # type: ignore[attr-defined]
    assert fix.alt_m == pytest.approx(cfg.tower.camera_altitude_m, abs=0.5)  # type: ignore[attr-defined]

    # The relay coil closes and opens.
    assert devices.relay is not None and sim.relay is not None
    devices.relay.set_output(True)
    wait_for(lambda: sim.relay.coil(0) and devices.relay.output() is True, 5.0)  # type: ignore[union-attr]
    devices.relay.set_output(False)
    wait_for(lambda: not sim.relay.coil(0), 5.0)  # type: ignore[union-attr]

    # The lidar, aimed into the fire's smoke, sees a plume near the fire's range.
    assert devices.lidar is not None
    wait_for(lambda: sim.clock.now() > sim.scenario.start_unix + 30.0, 10.0)
    az, el, fire_range_m = aim_at_smoke(sim, height_m=30.0)
    shots = 300
    devices.lidar.request_scan(az, el, shots)
    profile = devices.lidar.read_profile(timeout_s=10.0)
    assert profile is not None, devices.lidar.health()
    assert abs(profile.t - sim.clock.now()) < 5.0 * SPEED
    analysis = analyse_profile(profile.bins, profile.first_bin_m, profile.bin_m, shots=shots)
    assert analysis.plume is not None, analysis.returns
    assert analysis.plume.range_m == pytest.approx(fire_range_m, abs=300.0)
    # The same beam a little off the smoke, in clear air, sees nothing there.
    devices.lidar.request_scan(az + 3.0, el, shots)
    clear = devices.lidar.read_profile(timeout_s=10.0)
    assert clear is not None
    assert analyse_profile(clear.bins, clear.first_bin_m, clear.bin_m, shots=shots).plume is None


def aim_at_smoke(sim: SimulatedTower, height_m: float) -> tuple[float, float, float]:
    """Azimuth and elevation of the densest smoke at ``height_m`` above the fire's ground,
    found by sampling the world's smoke field; and the fire's ground range."""
    t = sim.clock.now()
    (fire,) = [th for th in sim.world.things_at(t) if th.kind == "fire"]
    fire_range = math.hypot(fire.x_m, fire.y_m)
    fire_az = math.degrees(math.atan2(fire.x_m, fire.y_m))
    az = fire_az + np.linspace(-1.0, 1.0, 801)
    rng = fire_range + np.linspace(-300.0, 300.0, 121)
    az_g, r_g = np.meshgrid(np.radians(az), rng)
    x, y = r_g * np.sin(az_g), r_g * np.cos(az_g)
    smoke = sim.world.smoke_extinction_per_m(x, y, np.full_like(x, height_m), t)
    i, j = np.unravel_index(int(np.argmax(smoke)), smoke.shape)
    assert smoke[i, j] > 1e-4
    ground = float(rng[i])
    drop = float(earth_drop_m(ground)) + sim.world.eye_height_m
    return float(az[j]) % 360.0, math.degrees(math.atan2(height_m - drop, ground)), fire_range


def test_a_pelco_d_head_on_a_pty_in_place_of_onvif(tmp_path: Path) -> None:
    cfg = config_for(
        "simulated-serial.yaml",
        tmp_path,
        f"ptz.port={tmp_path / 'dev' / 'ptz'}",
    )
    sim = start_tower(cfg)
    try:
        assert sim.onvif is None and "onvif" not in sim.endpoints()
        assert sim.endpoints()["ptz"]["port"] == str(tmp_path / "dev" / "ptz")
        devices = build_devices(cfg, FileSecretStore.from_config(cfg))
        devices.ptz.open()
        try:
            assert devices.ptz.wait_connected(5.0)  # type: ignore[attr-defined]
            devices.ptz.absolute_move(200.0, -1.0)
            wait_for(lambda: abs(sim.head.true_pose()[0] - 200.0) < 0.2, 10.0)
            status = wait_for(lambda: (s := devices.ptz.status()) and not s.moving and s, 10.0)
            assert status.pan_deg == pytest.approx(200.0, abs=0.2)  # type: ignore[attr-defined]
            assert status.tilt_deg == pytest.approx(-1.0, abs=0.2)  # type: ignore[attr-defined]
        finally:
            devices.ptz.close()
    finally:
        sim.stop()
    assert not os.path.lexists(tmp_path / "dev" / "ptz")  # the link goes with the tower


def test_a_device_path_that_is_a_real_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "dev" / "gnss"
    blocker.parent.mkdir()
    blocker.write_text("not a tty\n")
    cfg = config_for("simulated.yaml", tmp_path, f"ptz.port={free_port()}")
    spec = tower_spec(cfg, "test config", FileSecretStore.from_config(cfg))
    with pytest.raises(DevicePathError, match=r"gnss \(gnss.port=.*\): the path exists"):
        SimulatedTower(spec, load_scenario(SCENARIO))
    assert blocker.read_text() == "not a tty\n"


def test_a_device_type_the_tower_cannot_serve_is_named(tmp_path: Path) -> None:
    cfg = config_for("simulated.yaml", tmp_path)
    gpio = relay_gpio.Settings.model_validate({"type": "gpio", "line": 4})
    cfg = cfg.model_copy(update={"relay": gpio})
    with pytest.raises(SpecError, match=r"relay.type: the simulated tower serves 'modbus_rtu'"):
        tower_spec(cfg, "test config", FileSecretStore.from_config(cfg))


def test_the_command_writes_every_endpoint(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.json"
    dev = tmp_path / "dev"
    port = free_port()
    sets = [
        f"thermal.port={port}",
        f"visible.port={port}",
        f"ptz.port={free_port()}",
        f"lidar.port={dev / 'lidar'}",
        f"gnss.port={dev / 'gnss'}",
        f"relay.port={dev / 'relay'}",
    ]
    args = ["simulate", "tower", "--config", str(ROOT / "config" / "simulated.yaml")]
    for pair in sets:
        args += ["--set", pair]
    args += ["--scenario", str(SCENARIO), "--duration", "3", "--speed", "5"]
    args += ["--endpoints-file", str(endpoints), "--log-level", "warning"]
    done = subprocess.run(
        towerwatch(*args), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(endpoints.read_text())
    assert written["frame_stream"] == f"127.0.0.1:{port}"
    assert written["onvif"].startswith("http://127.0.0.1:")
    for section in ("lidar", "gnss", "relay"):
        assert written[section]["port"] == str(dev / section)
        assert written[section]["tty"].startswith("/dev/pts/")
        assert f"{section}: {dev / section} -> /dev/pts/" in done.stderr
        assert not os.path.lexists(dev / section)  # removed on the way out
