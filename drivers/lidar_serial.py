"""Smoke lidar over a serial line (type ``serial``), speaking drivers/LIDAR_PROTOCOL.md.

Scan commands are queued to the port's worker thread; profiles arrive on it and wait in
a bounded queue for ``read_profile``. A status request every ``status_interval_s`` is the
heartbeat: a lidar that answers nothing for ``silence_timeout_s`` is reported failed, a
scan unanswered for ``scan_timeout_s`` is counted as a timeout, and a laser fault the
lidar reports moves the driver to failed until a status says it is gone.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Literal

import structlog
from pydantic import Field, model_validator

from drivers import codec_lidar as cl
from drivers.base import DriverError, DriverState, LidarProfile, NewestWinsQueue, SecretStore
from drivers.serial_link import CounterSync, PortIO, SerialDriver, SerialPortSettings

_log = structlog.get_logger(__name__)


class Settings(SerialPortSettings):
    """A smoke lidar on a serial line."""

    type: Literal["serial"] = Field(description="driver type: towerwatch lidar protocol v1")
    baudrate: int = Field(115200, description="line speed in baud")
    status_interval_s: float = Field(
        1.0, ge=0.05, le=60.0, description="heartbeat: how often the lidar's status is asked"
    )
    silence_timeout_s: float = Field(
        5.0, ge=0.2, le=600.0, description="no frame at all for this long marks the lidar failed"
    )
    scan_timeout_s: float = Field(
        30.0, ge=0.1, le=600.0, description="a scan not answered within this counts as lost"
    )
    profile_queue_size: int = Field(
        64, ge=1, le=4096, description="profiles kept for read_profile; the oldest are dropped"
    )
    max_payload_bytes: int = Field(
        cl.MAX_PAYLOAD, ge=64, le=cl.MAX_PAYLOAD, description="largest frame payload accepted"
    )

    @model_validator(mode="after")
    def _order(self) -> Settings:
        if self.silence_timeout_s <= self.status_interval_s:
            raise ValueError("silence_timeout_s must be longer than status_interval_s")
        return self


class Driver(SerialDriver):
    """A smoke lidar. ``request_scan`` raises DeviceUnavailable while the port is down."""

    def __init__(self, settings: Settings, secrets: SecretStore | None = None) -> None:
        super().__init__("lidar", settings)
        self.settings = settings
        self._decoder = cl.LidarDecoder(settings.max_payload_bytes)
        self._counters = CounterSync(
            self._health,
            {
                "crc_errors": "crc_errors",
                "length_errors": "length_errors",
                "malformed": "malformed",
                "garbage_bytes": "garbage_bytes",
            },
        )
        self._profiles: NewestWinsQueue[LidarProfile] = NewestWinsQueue(
            settings.profile_queue_size, self._health, "profiles", "dropped_profiles"
        )
        self._lock = threading.Lock()
        self._seq = 0
        self._pending: dict[int, float] = {}  # seq → monotonic time requested
        self._last_frame_at = time.monotonic()
        self._last_status_request = 0.0
        self._silent = False
        self._fault_code = 0
        self.last_status: cl.Status | None = None

    def request_scan(self, azimuth_deg: float, elevation_deg: float, shots: int) -> None:
        if not math.isfinite(azimuth_deg) or not -90.0 <= elevation_deg <= 90.0:
            raise DriverError(
                f"{self.label}: scan direction {azimuth_deg}, {elevation_deg} is not a bearing "
                "and an elevation within −90…90°"
            )
        if not 1 <= shots <= 0xFFFF:
            raise DriverError(f"{self.label}: shots must be 1…65535, got {shots}")
        with self._lock:
            self._seq = (self._seq + 1) & 0xFFFF
            seq = self._seq
        frame = cl.encode(cl.ScanCommand(seq, azimuth_deg % 360.0, elevation_deg, shots))
        self._link.send(frame)
        with self._lock:
            self._pending[seq] = time.monotonic()

    def read_profile(self, timeout_s: float) -> LidarProfile | None:
        return self._profiles.get(timeout_s)

    # ----------------------------------------------------------------- worker hooks

    def _on_connect(self, io: PortIO) -> None:
        self._decoder = cl.LidarDecoder(self.settings.max_payload_bytes)
        self._counters.forget()
        self._last_frame_at = time.monotonic()
        self._silent = False
        self._request_status(io)

    def _request_status(self, io: PortIO) -> None:
        io.write(cl.encode(cl.StatusRequest()))
        self._last_status_request = time.monotonic()

    def _on_data(self, data: bytes) -> None:
        messages = self._decoder.feed(data)
        self._counters.sync(self._decoder)
        if not messages:
            return
        self._last_frame_at = time.monotonic()
        if self._silent:
            self._silent = False
            _log.info("lidar_frames_resumed", device=self.label)
            if not self._fault_code:
                self._health.set_state(DriverState.OK)
        for message in messages:
            self._handle(message)

    def _handle(self, message: cl.LidarMessage) -> None:
        if isinstance(message, cl.ProfileMessage):
            with self._lock:
                requested = self._pending.pop(message.seq, None)
            if requested is None:
                self._health.count("unsolicited_profiles")
            self._profiles.put(
                LidarProfile(
                    t=message.t,
                    azimuth_deg=message.azimuth_deg,
                    elevation_deg=message.elevation_deg,
                    first_bin_m=message.first_bin_m,
                    bin_m=message.bin_m,
                    bins=message.bins,
                )
            )
        elif isinstance(message, cl.Ack):
            self._health.count("acks")
        elif isinstance(message, cl.ErrorMessage):
            with self._lock:
                self._pending.pop(message.seq, None)
            self._health.error(
                f"{self.label}: lidar refused command {message.seq}: code {message.code} "
                f"({message.text})",
                "device_errors",
            )
        elif isinstance(message, cl.Status):
            self.last_status = message
            self._on_status(message)
        else:
            # Scan commands or status requests coming *from* the lidar: a loop-back or a
            # second master on the line.
            self._health.count("unexpected_frames")

    def _on_status(self, status: cl.Status) -> None:
        if status.state == cl.STATE_FAULT or status.fault_code:
            if status.fault_code != self._fault_code:
                self._health.error(
                    f"{self.label}: lidar reports fault {status.fault_code} "
                    f"(laser {status.laser_temp_c:.1f} °C)",
                    "faults",
                )
                _log.warning("lidar_fault", device=self.label, code=status.fault_code)
            self._fault_code = status.fault_code or -1
            self._health.set_state(DriverState.FAILED)
        elif self._fault_code:
            self._fault_code = 0
            self._health.set_state(DriverState.OK)
            _log.info("lidar_fault_cleared", device=self.label)

    def _on_idle(self, io: PortIO) -> float | None:
        now = time.monotonic()
        if now - self._last_status_request >= self.settings.status_interval_s:
            self._request_status(io)
        if not self._silent and now - self._last_frame_at > self.settings.silence_timeout_s:
            self._silent = True
            self._health.error(
                f"{self.label}: no frame for {self.settings.silence_timeout_s:.1f} s", "silences"
            )
            self._health.set_state(DriverState.FAILED)
            _log.warning("lidar_silent", device=self.label)
        with self._lock:
            expired = [
                seq for seq, at in self._pending.items() if now - at > self.settings.scan_timeout_s
            ]
            for seq in expired:
                del self._pending[seq]
        for seq in expired:
            self._health.error(
                f"{self.label}: no profile for scan {seq} within "
                f"{self.settings.scan_timeout_s:.1f} s",
                "timeouts",
            )
        due = [self._last_status_request + self.settings.status_interval_s]
        if not self._silent:
            due.append(self._last_frame_at + self.settings.silence_timeout_s)
        with self._lock:
            due.extend(at + self.settings.scan_timeout_s for at in self._pending.values())
        return min(due) - time.monotonic()
