"""Simulated smoke lidar on a pty: answers scan commands with backscatter profiles (LIDAR_PROTOCOL.md).

What the lidar sees is an injectable ``profile_fn(azimuth_deg, elevation_deg, t_unix) ->
(first_bin_m, bin_m, bins)`` giving the *expected* mean counts per shot in every range
bin, background included; the simulator draws the photon (shot) noise for the number of
shots the command asked for, so averaging more shots gives a cleaner profile, as on the
real instrument. The default world is ``LidarAtmosphere``: the elastic lidar equation
(docs/physics/smoke-lidar.md) for clean air, plus hard targets and smoke plumes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from drivers import codec_lidar as cl
from simulators.clock import SimClock
from simulators.serial_devices import PtySerialDevice

ProfileFn = Callable[[float, float, float], tuple[float, float, np.ndarray]]


@dataclass(frozen=True)
class HardTarget:
    """An opaque object (ridge, mast, building): a strong one-bin echo and nothing beyond."""

    azimuth_deg: float
    range_m: float
    half_width_deg: float = 0.5
    reflectance: float = 0.3
    max_elevation_deg: float = 1.0  # beams above this pass over it


@dataclass(frozen=True)
class SmokePlume:
    """A smoke column: extra aerosol backscatter (and extinction) around a point.

    Gaussian across the beam (``width_m`` full width) and along it (``depth_m``), present
    between two elevations and from ``start_t`` on.
    """

    azimuth_deg: float
    range_m: float
    width_m: float = 40.0
    depth_m: float = 40.0
    backscatter_per_m_sr: float = 2.0e-5
    lidar_ratio_sr: float = 60.0
    min_elevation_deg: float = -5.0
    max_elevation_deg: float = 10.0
    start_t: float = -math.inf


def _angle_diff_deg(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


class LidarAtmosphere:
    """Expected counts per shot: P(R) = K·O(R)·β(R)·R⁻²·exp(−2∫α dr) + P_bg.

    Defaults describe a 1.5 µm eye-safe lidar in clean air with about 40 km visibility
    (α = 3.912 / V ≈ 1e-4 m⁻¹, aerosol lidar ratio 50 sr), 7.5 m bins (20 MS/s), a
    150 m overlap range and a system constant that gives ~1000 counts per shot at 1 km
    and a few at 10 km, where Utkin et al. put the practical limit.
    """

    def __init__(
        self,
        *,
        n_bins: int = 2000,
        bin_m: float = 7.5,
        first_bin_m: float = 7.5,
        extinction_per_m: float = 1.0e-4,
        lidar_ratio_sr: float = 50.0,
        system_constant: float = 6.0e14,
        overlap_range_m: float = 150.0,
        background_counts: float = 5.0,
        hard_targets: Sequence[HardTarget] = (),
        plumes: Sequence[SmokePlume] = (),
    ) -> None:
        if n_bins < 1 or bin_m <= 0.0 or first_bin_m <= 0.0:
            raise ValueError("lidar atmosphere: need n_bins ≥ 1, bin_m > 0 and first_bin_m > 0")
        self.bin_m = bin_m
        self.first_bin_m = first_bin_m
        self.range_m = first_bin_m + bin_m * np.arange(n_bins, dtype=np.float64)
        self.extinction_per_m = extinction_per_m
        self.backscatter_per_m_sr = extinction_per_m / lidar_ratio_sr
        self.system_constant = system_constant
        self.overlap = 1.0 - np.exp(-((self.range_m / overlap_range_m) ** 2))
        self.background_counts = background_counts
        self.hard_targets = tuple(hard_targets)
        self.plumes = tuple(plumes)

    def __call__(
        self, azimuth_deg: float, elevation_deg: float, t_unix: float
    ) -> tuple[float, float, np.ndarray]:
        r = self.range_m
        beta = np.full_like(r, self.backscatter_per_m_sr)
        alpha = np.full_like(r, self.extinction_per_m)
        for plume in self.plumes:
            if t_unix < plume.start_t or not (
                plume.min_elevation_deg <= elevation_deg <= plume.max_elevation_deg
            ):
                continue
            off_deg = _angle_diff_deg(azimuth_deg, plume.azimuth_deg)
            cross_m = plume.range_m * math.sin(math.radians(min(abs(off_deg), 90.0)))
            across = math.exp(-0.5 * (cross_m / (0.5 * plume.width_m)) ** 2)
            along = np.exp(-0.5 * ((r - plume.range_m) / (0.5 * plume.depth_m)) ** 2)
            extra = plume.backscatter_per_m_sr * across * along
            beta += extra
            alpha += plume.lidar_ratio_sr * extra
        # Two-way transmission to the far edge of each bin's near side (trapezoid-free: bins are small).
        optical_depth = np.cumsum(alpha) * self.bin_m - alpha * self.bin_m * 0.5
        transmission2 = np.exp(-2.0 * optical_depth)
        signal = self.system_constant * self.overlap * beta * transmission2 / r**2
        for target in self.hard_targets:
            if elevation_deg > target.max_elevation_deg:
                continue
            if abs(_angle_diff_deg(azimuth_deg, target.azimuth_deg)) > target.half_width_deg:
                continue
            i = int((target.range_m - self.first_bin_m) // self.bin_m)
            if not 0 <= i < r.size:
                continue
            # A surface echo spread over one bin: (ρ/π)/Δr in place of the volume β.
            signal[i] += (
                self.system_constant
                * self.overlap[i]
                * (target.reflectance / math.pi / self.bin_m)
                * transmission2[i]
                / r[i] ** 2
            )
            signal[i + 1 :] = 0.0
        return self.first_bin_m, self.bin_m, (signal + self.background_counts).astype(np.float32)


@dataclass(frozen=True)
class _Scan:
    seq: int
    azimuth_deg: float
    elevation_deg: float
    shots: int


class LidarSimulator(PtySerialDevice):
    """Acks each scan command, then after ``shots / prf_hz`` of tower time sends the
    profile. Up to ``queue_depth`` scans wait their turn; more are refused as busy."""

    def __init__(
        self,
        clock: SimClock,
        profile_fn: ProfileFn | None = None,
        *,
        prf_hz: float = 1000.0,
        encoding: int = cl.ENCODING_F32,
        queue_depth: int = 8,
        laser_temp_c: float = 32.0,
        seed: int = 0,
        link_path: str | None = None,
    ) -> None:
        super().__init__("lidar", link_path)
        if prf_hz <= 0.0:
            raise ValueError(f"lidar simulator: prf_hz must be > 0, got {prf_hz}")
        self._clock = clock
        self.profile_fn: ProfileFn = profile_fn or LidarAtmosphere()
        self.prf_hz = prf_hz
        self.encoding = encoding
        self.queue_depth = queue_depth
        self.laser_temp_c = laser_temp_c
        self.fault_code = 0
        self._rng = np.random.default_rng(seed)
        self._decoder = cl.LidarDecoder()
        self._queue: deque[_Scan] = deque()
        self._busy = False
        self._corrupt_profiles = 0
        self.scans_received = 0
        self.profiles_sent = 0

    @property
    def crc_errors(self) -> int:
        return self._decoder.crc_errors

    def corrupt_next_profiles(self, n: int = 1) -> None:
        """Corrupt the CRC of the next ``n`` profiles only (acks and statuses stay good)."""
        self._corrupt_profiles += n

    def laser_fault(self, code: int) -> None:
        """Make the laser fail (code > 0) or recover (code 0)."""
        self.fault_code = code

    def on_restore(self) -> None:
        # A replug is a power cycle: the scan queue is lost.
        self._decoder = cl.LidarDecoder()
        self._queue.clear()
        self._busy = False

    def _send(self, message: cl.LidarMessage) -> None:
        self.write(cl.encode(message))

    def handle_bytes(self, data: bytes) -> None:
        for message in self._decoder.feed(data):
            if isinstance(message, cl.StatusRequest):
                state = (
                    cl.STATE_FAULT
                    if self.fault_code
                    else (cl.STATE_SCANNING if self._busy else cl.STATE_IDLE)
                )
                self._send(cl.Status(self._clock.now(), state, self.laser_temp_c, self.fault_code))
            elif isinstance(message, cl.ScanCommand):
                self._accept(message)
            else:
                self._send(cl.ErrorMessage(0, cl.ERROR_UNKNOWN_COMMAND, type(message).__name__))

    def _accept(self, command: cl.ScanCommand) -> None:
        self.scans_received += 1
        if self.fault_code:
            self._send(
                cl.ErrorMessage(command.seq, cl.ERROR_LASER_FAULT, f"laser fault {self.fault_code}")
            )
            return
        if not -90.0 <= command.elevation_deg <= 90.0:
            self._send(cl.ErrorMessage(command.seq, cl.ERROR_BAD_PARAMETER, "elevation"))
            return
        if len(self._queue) >= self.queue_depth:
            self._send(cl.ErrorMessage(command.seq, cl.ERROR_BUSY, "scan queue full"))
            return
        self._send(cl.Ack(command.seq, cl.TYPE_SCAN))
        self._queue.append(
            _Scan(command.seq, command.azimuth_deg % 360.0, command.elevation_deg, command.shots)
        )
        self._next_scan()

    def _next_scan(self) -> None:
        if self._busy or not self._queue:
            return
        self._busy = True
        scan = self._queue[0]
        self.schedule(self._clock.wall_seconds(scan.shots / self.prf_hz), self._finish_scan)

    def _finish_scan(self) -> None:
        if not self._queue:
            self._busy = False
            return
        scan = self._queue.popleft()
        t = self._clock.now()
        first_bin_m, bin_m, expected = self.profile_fn(scan.azimuth_deg, scan.elevation_deg, t)
        # Photon counting: the sum over the shots is Poisson; the device reports the mean.
        lam = np.clip(np.asarray(expected, dtype=np.float64), 0.0, None) * scan.shots
        bins = (self._rng.poisson(lam) / scan.shots).astype(np.float32)
        frame = cl.encode(
            cl.ProfileMessage(
                seq=scan.seq,
                t=t,
                azimuth_deg=scan.azimuth_deg,
                elevation_deg=scan.elevation_deg,
                first_bin_m=first_bin_m,
                bin_m=bin_m,
                shots=scan.shots,
                bins=bins,
                encoding=self.encoding,
            )
        )
        if self._corrupt_profiles > 0:
            self._corrupt_profiles -= 1
            frame = self.corrupt_checksum(frame)
        self.write(frame)
        self.profiles_sent += 1
        self._busy = False
        self._next_scan()
