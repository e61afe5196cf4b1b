"""The ONVIF PTZ driver against the simulated ONVIF head over HTTP, including failure paths."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from drivers.base import DeviceUnavailable, DriverError, DriverState, PtzHead
from drivers.ptz_calibration import PtzCalibration
from drivers.ptz_onvif import Driver, Settings, ZoomMap, ZoomPoint
from simulators.clock import SimClock
from simulators.head import SimulatedHead
from simulators.onvif_server import OnvifPtzServer

pytestmark = pytest.mark.timeout(60)


class Secrets:
    def __init__(self, **values: str) -> None:
        self._values = values

    def read(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            raise DriverError(f"secret {name!r} is missing") from None


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def tower() -> Iterator[tuple[SimClock, SimulatedHead, OnvifPtzServer]]:
    # A tower clock an hour off ours and ten times faster: signing must follow it.
    clock = SimClock(time.time() + 3600.0, speed=10.0)
    head = SimulatedHead(clock, mount_pan_offset_deg=12.0, backlash_deg=0.0)
    server = OnvifPtzServer(head, clock, username="admin", password="s3cret")
    server.start()
    yield clock, head, server
    server.stop()


def make_driver(server: OnvifPtzServer, password: str = "s3cret", **overrides: object) -> Driver:
    fields: dict[str, object] = {
        "type": "onvif",
        "host": "127.0.0.1",
        "port": server.port,
        "username": "admin",
        "password_secret": "ptz_password",
        "timeout_s": 1.0,
        "reconnect_max_s": 0.5,
        "calibration": {"pan_offset_deg": 12.0},
    }
    fields.update(overrides)
    return Driver(Settings.model_validate(fields), Secrets(ptz_password=password))


def settled(driver: Driver) -> Callable[[], bool]:
    return lambda: not driver.status().moving


def test_moves_and_status_are_in_true_azimuth_through_the_calibration(tower) -> None:
    _, head, server = tower
    with make_driver(server) as driver:
        assert isinstance(driver, PtzHead)
        assert driver.wait_connected(10.0)
        driver.absolute_move(100.0, -3.0, hfov_deg=8.0)
        eventually(settled(driver))
        status = driver.status()
        assert status.pan_deg == pytest.approx(100.0, abs=1e-3)
        assert status.tilt_deg == pytest.approx(-3.0, abs=1e-3)
        assert status.hfov_deg == pytest.approx(8.0, abs=1e-3)
        assert head.true_pose()[0] == pytest.approx(100.0, abs=1e-3), "the head really looks there"
        assert head.state().raw_pan_deg == pytest.approx(88.0, abs=1e-3)
        assert abs(status.t - server.clock.now()) < 5.0, "t is the device's clock"
        driver.relative_move(-20.0, 2.0)
        eventually(settled(driver))
        status = driver.status()
        assert (status.pan_deg, status.tilt_deg) == pytest.approx((80.0, -1.0), abs=1e-3)
        assert driver.health().state is DriverState.OK


def test_pan_across_north_and_generic_only_device(tower) -> None:
    clock, head, _ = tower
    generic = OnvifPtzServer(head, clock, username="admin", password="s3cret", degrees_space=False)
    generic.start()
    try:
        with make_driver(generic) as driver:
            assert driver.wait_connected(10.0)
            driver.absolute_move(355.0, 4.5)
            eventually(settled(driver))
            status = driver.status()
            assert status.pan_deg == pytest.approx(355.0, abs=1e-3)
            assert status.tilt_deg == pytest.approx(4.5, abs=1e-3)
            with pytest.raises(DriverError, match="tilt out of the head's range"):
                driver.absolute_move(10.0, 45.0)
    finally:
        generic.stop()


def test_continuous_move_is_stopped_by_our_own_deadline_when_the_head_ignores_timeout(
    tower,
) -> None:
    _, head, server = tower
    server.faults.ignore_move_timeout = True
    with make_driver(server) as driver:
        assert driver.wait_connected(10.0)
        driver.status()
        time.sleep(1.1)  # a second status sample gives the driver the tower clock's rate
        driver.status()
        driver.continuous_move(0.5, 0.0, deadline_s=3.0)  # 3 s tower time = 0.3 s wall
        assert head.state().moving
        eventually(lambda: server.operations["Stop"] >= 1, timeout_s=2.0)
        eventually(lambda: not head.state().moving, timeout_s=2.0)


def test_presets_round_trip(tower) -> None:
    _, _, server = tower
    with make_driver(server) as driver:
        assert driver.wait_connected(10.0)
        driver.absolute_move(45.0, 0.0)
        eventually(settled(driver))
        token = driver.set_preset("reed bed east")
        assert driver.presets() == {token: "reed bed east"}
        driver.absolute_move(200.0, 5.0)
        eventually(settled(driver))
        driver.goto_preset(token)
        eventually(settled(driver))
        assert driver.status().pan_deg == pytest.approx(45.0, abs=1e-3)
        driver.remove_preset(token)
        assert driver.presets() == {}
        with pytest.raises(DriverError, match="NoToken"):
            driver.goto_preset(token)
        assert driver.health().counters["soap_faults"] == 1


def test_device_absent_at_start_then_appearing(tower) -> None:
    _, _, server = tower
    server.drop()
    with make_driver(server) as driver:
        eventually(lambda: driver.health().counters.get("connect_failures", 0) >= 1)
        assert driver.health().state is DriverState.FAILED
        with pytest.raises(
            DeviceUnavailable, match=r"ptz \(ptz.host=127.0.0.1:\d+\): not connected"
        ):
            driver.status()
        server.restore()
        assert driver.wait_connected(10.0)
        assert driver.status().pan_deg == pytest.approx(12.0, abs=1e-3)


def test_device_lost_and_back(tower) -> None:
    _, _, server = tower
    with make_driver(server) as driver:
        assert driver.wait_connected(10.0)
        server.drop()
        with pytest.raises(DeviceUnavailable, match="unreachable"):
            driver.status()
        assert driver.health().state is DriverState.FAILED
        server.restore()
        # the reconnect loop may need more than one try on a loaded machine
        eventually(lambda: driver.health().counters.get("reconnects", 0) >= 1, timeout_s=30.0)
        driver.absolute_move(30.0, 0.0)
        assert driver.health().state is DriverState.OK


def test_slow_soap_becomes_a_timeout_naming_the_setting(tower) -> None:
    _, _, server = tower
    with make_driver(server, timeout_s=0.3) as driver:
        assert driver.wait_connected(10.0)
        server.faults.slow_reply_s = 0.8
        with pytest.raises(
            DeviceUnavailable, match=r"no reply to GetStatus within 0.3 s \(ptz.timeout_s\)"
        ):
            driver.status()
        # The reconnect that follows may time out too while the device stays slow.
        assert driver.health().counters["timeouts"] >= 1
        server.faults.slow_reply_s = 0.0
        assert driver.wait_connected(10.0)
        driver.status()


def test_a_dripping_reply_is_cut_at_the_overall_deadline(tower) -> None:
    _, _, server = tower
    with make_driver(server, timeout_s=0.5) as driver:
        assert driver.wait_connected(10.0)
        # Each byte arrives well within the per-read timeout; the whole reply never would.
        server.faults.drip_reply_s = 0.05
        started = time.monotonic()
        with pytest.raises(DeviceUnavailable, match="GetStatus not complete within 1 s"):
            driver.status()
        # one deadline plus one byte interval, with slack for a loaded machine
        assert time.monotonic() - started < 4.0
        server.faults.drip_reply_s = 0.0
        assert driver.wait_connected(10.0)
        driver.status()


def test_a_reply_cut_mid_chunk_is_a_transport_error(tower) -> None:
    _, _, server = tower
    with make_driver(server) as driver:
        assert driver.wait_connected(10.0)
        server.faults.cut_chunked_reply = True
        with pytest.raises(DeviceUnavailable, match="transport failed: ChunkedEncodingError"):
            driver.status()
        assert driver.health().counters["connection_errors"] >= 1
        server.faults.cut_chunked_reply = False
        assert driver.wait_connected(10.0)
        driver.status()


def test_garbage_replies_are_reported_not_raised_as_crashes(tower) -> None:
    _, _, server = tower
    with make_driver(server) as driver:
        assert driver.wait_connected(10.0)
        server.faults.garbage_replies = True
        with pytest.raises(DeviceUnavailable, match="garbled reply"):
            driver.status()
        server.faults.garbage_replies = False
        driver.status()


@pytest.mark.parametrize("undeclared_prefix", [False, True])
def test_wrong_password_says_so(tower, undeclared_prefix: bool) -> None:
    _, _, server = tower
    server.faults.undeclared_fault_prefix = undeclared_prefix
    with make_driver(server, password="guess") as driver:
        eventually(lambda: driver.health().last_error is not None)
        message = driver.health().last_error or ""
        assert "authentication refused: wrong username or password (ptz.username=admin" in message
        assert "ptz.password_secret=ptz_password" in message
        with pytest.raises(DeviceUnavailable, match="wrong username or password"):
            driver.status()
        assert driver.health().counters["auth_failures"] >= 1


def test_unknown_profile_token_names_the_key(tower) -> None:
    _, _, server = tower
    with make_driver(server, profile_token="visible") as driver:
        eventually(lambda: driver.health().last_error is not None)
        assert "(ptz.profile_token)" in (driver.health().last_error or "")
        assert "thermal_main" in (driver.health().last_error or "")


def test_close_stops_background_work(tower) -> None:
    _, _, server = tower
    server.drop()
    driver = make_driver(server)
    driver.open()
    driver.close()
    assert driver.health().state is DriverState.CLOSED


def test_zoom_map_is_exact_for_a_focal_length_linear_lens() -> None:
    zoom = ZoomMap((ZoomPoint(zoom=0.0, hfov_deg=25.0), ZoomPoint(zoom=1.0, hfov_deg=3.0)))
    clock = SimClock(0.0)
    server = OnvifPtzServer(SimulatedHead(clock), clock, username="u", password="p")
    for z in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert zoom.hfov_deg(z) == pytest.approx(server.zoom_to_hfov(z))
        assert zoom.zoom(zoom.hfov_deg(z)) == pytest.approx(z)
    assert zoom.zoom(1.0) == 1.0, "narrower than the lens can: the tele end"


def test_settings_refuse_bad_values() -> None:
    base = {"type": "onvif", "username": "admin", "password_secret": "p"}
    with pytest.raises(ValueError, match="password"):
        Settings.model_validate({**base, "password": "inline"})
    with pytest.raises(ValueError, match="strictly increase"):
        Settings.model_validate(
            {**base, "zoom_hfov": [{"zoom": 0.5, "hfov_deg": 10}, {"zoom": 0.5, "hfov_deg": 5}]}
        )
    with pytest.raises(ValueError):
        Settings.model_validate({**base, "timeout_s": 0})
    assert Settings.model_validate(base).calibration == PtzCalibration.model_validate({})
