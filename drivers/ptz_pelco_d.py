"""Pan-tilt-zoom head over Pelco-D on RS-485 (type ``pelco_d``), with absolute position extensions.

RS-485 is half duplex: one query at a time, each waiting for its reply; motion commands
get no reply. Positions are read with the 0x51/0x53/0x55 queries and set with
0x4B/0x4D/0x4F (codec_pelco_d documents the encodings); the calibration turns the head's
own angles into true azimuth/elevation. A Pelco-D head has no "moving" flag, so
``moving`` is derived from successive position readings and from the target of the last
absolute move. Continuous moves carry a deadline of our own and end with an explicit
stop, because a head keeps turning until told otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import structlog
from pydantic import Field, field_validator, model_validator

from drivers import codec_pelco_d as pd
from drivers.base import DeviceUnavailable, DriverError, PtzStatus, SecretStore
from drivers.ptz_calibration import PtzCalibration
from drivers.serial_link import CounterSync, PortIO, SerialDriver, SerialPortSettings

_log = structlog.get_logger(__name__)

# Preset numbers many Pelco-D heads reserve for functions (33 flip, 34 pan zero,
# 95 on-screen menu, 96–99 scan/pattern control): storing a pose there runs the
# function instead, so set_preset never allocates them.
RESERVED_PRESETS = frozenset({33, 34, 95, 96, 97, 98, 99})

# A previous reading older than this says nothing about motion now.
_MOTION_WINDOW_S = 1.0
# Gap between the two readings taken when there is no recent one: long enough to see
# a slow slew through the 0.01° resolution, short enough not to stall the caller.
_SECOND_READING_GAP_S = 0.05


class Settings(SerialPortSettings):
    """A Pelco-D head on an RS-485 line."""

    type: Literal["pelco_d"] = Field(description="driver type: Pelco-D over RS-485")
    port: str = Field(min_length=1, description="serial device or pyserial URL (e.g. /dev/ttyUSB0)")
    baudrate: int = Field(9600, description="line speed in baud (Pelco-D: 2400, 4800 or 9600)")
    address: int = Field(1, ge=1, le=255, description="the head's Pelco-D address (DIP switches)")
    reply_timeout_s: float = Field(
        0.3, ge=0.02, le=5.0, description="how long to wait for the reply to one query"
    )
    query_retries: int = Field(
        1, ge=0, le=5, description="extra attempts for a query that got no reply"
    )
    zoom: bool = Field(True, description="the head has a motorised zoom (0x4F/0x55)")
    hfov_wide_deg: float = Field(
        25.0, gt=0.0, lt=180.0, description="horizontal field of view at zoom position 0"
    )
    hfov_tele_deg: float = Field(
        3.0, gt=0.0, lt=180.0, description="horizontal field of view at full zoom"
    )
    zoom_position_max: int = Field(
        pd.ZOOM_POSITION_MAX, ge=1, le=0xFFFF, description="the head's full-zoom position value"
    )
    moving_speed_deg_s: float = Field(
        0.5, gt=0.0, le=10.0, description="angular speed above which the head counts as moving"
    )
    target_tolerance_deg: float = Field(
        0.2, gt=0.0, le=5.0, description="an absolute move is done within this of its target"
    )
    move_timeout_s: float = Field(
        30.0, gt=0.0, le=300.0, description="longest an absolute move may take to arrive"
    )
    presets: dict[str, str] = Field(
        default_factory=dict, description="presets stored on the head: number → name"
    )
    calibration: PtzCalibration = Field(
        default_factory=lambda: PtzCalibration.model_validate({}),
        description="head angles ↔ true azimuth/elevation",
    )

    @field_validator("presets")
    @classmethod
    def _preset_numbers(cls, value: dict[str, str]) -> dict[str, str]:
        for token in value:
            if not token.isdigit() or not 1 <= int(token) <= 255:
                raise ValueError(f"preset {token!r} must be a number 1…255")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        if self.hfov_tele_deg >= self.hfov_wide_deg:
            raise ValueError("hfov_tele_deg must be smaller than hfov_wide_deg")
        return self


@dataclass(frozen=True)
class _Reading:
    raw_pan_deg: float
    raw_tilt_deg: float
    hfov_deg: float
    at: float  # monotonic seconds


def _pan_delta(a: float, b: float) -> float:
    return (b - a + 180.0) % 360.0 - 180.0


class Driver(SerialDriver):
    """A Pelco-D head. Methods raise DeviceUnavailable when the head is absent or silent
    (the link reconnects by itself) and DriverError for a request it cannot express."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        super().__init__("ptz", settings)
        self.settings = settings
        self._decoder = pd.PelcoDDecoder()
        self._counters = CounterSync(
            self._health, {"crc_errors": "crc_errors", "garbage_bytes": "garbage_bytes"}
        )
        self._lock = threading.Lock()
        self._presets: dict[str, str] = dict(settings.presets)
        self._last: _Reading | None = None
        self._target: tuple[float, float, float] | None = None  # raw pan, raw tilt, when
        self._continuous_until: float | None = None

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        if self._link.connected and self._continuous_until is not None:
            try:
                self.stop()
            except DeviceUnavailable as exc:
                _log.warning("ptz_stop_on_close_failed", device=self.label, error=str(exc))
        super().close()

    # ----------------------------------------------------------------- motion

    def _send(self, *frames: pd.PelcoFrame) -> None:
        data = b"".join(f.encode() for f in frames)
        self._link.call(lambda io: io.write(data), self._call_timeout_s(0))

    def _call_timeout_s(self, queries: int) -> float:
        per_query = self.settings.reply_timeout_s * (1 + self.settings.query_retries)
        return 1.0 + queries * per_query + 2 * _SECOND_READING_GAP_S

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> None:
        if not (math.isfinite(pan_deg) and math.isfinite(tilt_deg)):
            raise DriverError(
                f"{self.label}: absolute move needs finite angles, got {pan_deg}, {tilt_deg}"
            )
        raw_pan, raw_tilt = self.settings.calibration.to_device(pan_deg, tilt_deg)
        try:
            frames = [
                pd.set_pan(self.settings.address, raw_pan),
                pd.set_tilt(self.settings.address, raw_tilt),
            ]
            if hfov_deg is not None and self.settings.zoom:
                position = pd.hfov_to_zoom_position(
                    hfov_deg,
                    self.settings.hfov_wide_deg,
                    self.settings.hfov_tele_deg,
                    self.settings.zoom_position_max,
                )
                frames.append(pd.set_zoom(self.settings.address, position))
        except pd.PelcoDError as exc:
            raise DriverError(
                f"{self.label}: cannot move to {pan_deg}, {tilt_deg}: {exc}"
            ) from None
        with self._lock:
            self._continuous_until = None
        self._send(*frames)
        with self._lock:
            self._target = (raw_pan, raw_tilt, time.monotonic())

    def relative_move(self, dpan_deg: float, dtilt_deg: float) -> None:
        now = self.status()
        self.absolute_move(now.pan_deg + dpan_deg, now.tilt_deg + dtilt_deg)

    def continuous_move(self, pan_speed: float, tilt_speed: float, deadline_s: float) -> None:
        if not (-1.0 <= pan_speed <= 1.0 and -1.0 <= tilt_speed <= 1.0):
            raise DriverError(
                f"{self.label}: speeds must be within [-1, 1], got {pan_speed}, {tilt_speed}"
            )
        if not (math.isfinite(deadline_s) and deadline_s > 0.0):
            raise DriverError(
                f"{self.label}: continuous move needs a deadline > 0 s, got {deadline_s}"
            )
        cal = self.settings.calibration
        frame = pd.move(self.settings.address, cal.pan_sign * pan_speed, cal.tilt_sign * tilt_speed)
        self._send(frame)
        with self._lock:
            self._target = None
            self._continuous_until = time.monotonic() + deadline_s if frame.cmd2 else None
        self._wake_worker()  # the worker sleeps until a deadline it knows of

    def stop(self) -> None:
        with self._lock:
            self._continuous_until = None
            self._target = None
        self._send(pd.stop(self.settings.address))

    # ----------------------------------------------------------------- status

    def _query(self, io: PortIO, cmd2: int) -> int:
        """Send one query and wait for its reply (the half-duplex turn); returns the value."""
        address = self.settings.address
        expected = pd.REPLY_FOR_QUERY[cmd2]
        request = pd.query(address, cmd2).encode()
        for _ in range(1 + self.settings.query_retries):
            io.drain()
            io.write(request)
            deadline = time.monotonic() + self.settings.reply_timeout_s
            while (remaining := deadline - time.monotonic()) > 0:
                frames = self._decoder.feed(io.read(remaining))
                self._counters.sync(self._decoder)
                for frame in frames:
                    if frame.address == address and frame.cmd2 == expected:
                        return frame.value
                    self._health.count("unexpected_frames")
            self._health.count("timeouts")
        message = (
            f"{self.label}: no reply to query {cmd2:02X} from address {address} "
            f"within {self.settings.reply_timeout_s:.2f} s"
        )
        self._health.error(message, "failed_queries")
        raise DeviceUnavailable(message)

    def _read(self, io: PortIO) -> _Reading:
        try:
            raw_pan = pd.decode_pan(self._query(io, pd.QUERY_PAN))
            raw_tilt = pd.decode_tilt(self._query(io, pd.QUERY_TILT))
        except pd.PelcoDError as exc:
            self._health.error(
                f"{self.label}: head reported an impossible angle: {exc}", "bad_values"
            )
            raise DeviceUnavailable(f"{self.label}: {exc}") from None
        if self.settings.zoom:
            hfov = pd.zoom_position_to_hfov(
                self._query(io, pd.QUERY_ZOOM),
                self.settings.hfov_wide_deg,
                self.settings.hfov_tele_deg,
                self.settings.zoom_position_max,
            )
        else:
            hfov = self.settings.hfov_wide_deg
        return _Reading(raw_pan, raw_tilt, hfov, time.monotonic())

    def _read_pair(self, io: PortIO) -> tuple[_Reading | None, _Reading]:
        previous = self._last
        first = self._read(io)
        if previous is None or first.at - previous.at > _MOTION_WINDOW_S:
            # Nothing recent to compare with: a second reading shows whether it moves.
            time.sleep(_SECOND_READING_GAP_S)
            previous, first = first, self._read(io)
        return previous, first

    def status(self) -> PtzStatus:
        queries = 6 if self.settings.zoom else 4
        previous, reading = self._link.call(self._read_pair, self._call_timeout_s(queries))
        self._last = reading
        moving = False
        if previous is not None:
            dt = max(reading.at - previous.at, 1e-3)
            step = max(
                abs(_pan_delta(previous.raw_pan_deg, reading.raw_pan_deg)),
                abs(reading.raw_tilt_deg - previous.raw_tilt_deg),
            )
            # 0.01° is the encoding's resolution: one count of jitter is not motion.
            moving = step > 0.011 and step / dt > self.settings.moving_speed_deg_s
        with self._lock:
            if self._continuous_until is not None:
                moving = True
            if self._target is not None:
                pan_t, tilt_t, since = self._target
                off = max(
                    abs(_pan_delta(pan_t, reading.raw_pan_deg)), abs(tilt_t - reading.raw_tilt_deg)
                )
                if off <= self.settings.target_tolerance_deg and not moving:
                    self._target = None
                elif reading.at - since > self.settings.move_timeout_s:
                    self._health.error(
                        f"{self.label}: head stopped {off:.2f}° from its target after "
                        f"{self.settings.move_timeout_s:.0f} s",
                        "move_timeouts",
                    )
                    self._target = None
                else:
                    moving = True
        pan, tilt = self.settings.calibration.to_true(reading.raw_pan_deg, reading.raw_tilt_deg)
        return PtzStatus(pan, tilt, reading.hfov_deg, moving, time.time())

    # ----------------------------------------------------------------- presets

    def presets(self) -> Mapping[str, str]:
        """Presets known to this driver (configured or stored this session): a Pelco-D
        head cannot list what it holds."""
        with self._lock:
            return dict(self._presets)

    def _preset_number(self, token: str) -> int:
        if not token.isdigit() or not 1 <= int(token) <= 255:
            raise DriverError(f"{self.label}: preset token must be a number 1…255, got {token!r}")
        return int(token)

    def goto_preset(self, token: str) -> None:
        number = self._preset_number(token)
        with self._lock:
            self._continuous_until = None
            self._target = None
        self._send(pd.preset(self.settings.address, pd.PRESET_GO, number))

    def set_preset(self, name: str) -> str:
        """Store the current pose under the first free, non-reserved number. The head
        does not confirm; heads ignore it while moving, so call it when status() is idle."""
        with self._lock:
            used = {int(t) for t in self._presets}
            free = [n for n in range(1, 256) if n not in used and n not in RESERVED_PRESETS]
        if not free:
            raise DriverError(f"{self.label}: no free preset number left")
        number = free[0]
        self._send(pd.preset(self.settings.address, pd.PRESET_SET, number))
        with self._lock:
            self._presets[str(number)] = name
        return str(number)

    def remove_preset(self, token: str) -> None:
        number = self._preset_number(token)
        self._send(pd.preset(self.settings.address, pd.PRESET_CLEAR, number))
        with self._lock:
            self._presets.pop(token, None)

    # ----------------------------------------------------------------- worker hooks

    def _on_data(self, data: bytes) -> None:
        # Bytes outside a query: late replies or line noise. Counted, never acted on.
        stale = self._decoder.feed(data)
        self._counters.sync(self._decoder)
        if stale:
            self._health.count("stale_replies", len(stale))

    def _on_connect(self, io: PortIO) -> None:
        self._decoder = pd.PelcoDDecoder()
        self._counters.forget()
        with self._lock:
            expired = (
                self._continuous_until is not None and time.monotonic() >= self._continuous_until
            )
        if expired:
            self._stop_now(io, "deadline passed while disconnected")

    def _on_idle(self, io: PortIO) -> float | None:
        with self._lock:
            until = self._continuous_until
        if until is None:
            return None
        left_s = until - time.monotonic()
        if left_s > 0:
            return left_s
        self._stop_now(io, "continuous-move deadline")
        return None

    def _stop_now(self, io: PortIO, reason: str) -> None:
        io.write(pd.stop(self.settings.address).encode())
        with self._lock:
            self._continuous_until = None
        self._health.count("deadline_stops")
        _log.info("ptz_deadline_stop", device=self.label, reason=reason)
