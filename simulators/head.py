"""Simulated pan-tilt-zoom head mechanics: slew limits, acceleration, backlash, settle, presets.

The head is a pure function of the tower clock: every command plans each axis as a
chain of constant-acceleration segments starting at the clock's "now", and every query
evaluates those segments at the clock's "now". No thread runs, so a clock running N×
faster than wall time makes the head slew N× faster too, and tests can step time.

Raw angles are the head's own (its encoder zero and sense). What the camera really
looks at (``true_pose``) differs by the mount offset (a head is never bolted on facing
exactly north) and by gear backlash (the output shaft lags the motor by half the
backlash in the direction of the last motion), so a calibration matters and approaching
a target from the other side leaves a small error, as on a real head.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from simulators.clock import SimClock

# Zoom motors are geared far stiffer than the pan/tilt axes: they reach full zoom speed
# within a few milliseconds, so zoom is modelled with a practically unbounded
# acceleration (in ln(hfov) per s²).
_ZOOM_ACCEL_PER_S2 = 1.0e6


def _wrap360(angle_deg: float) -> float:
    """Angle in [0, 360); a tiny negative angle would otherwise wrap to exactly 360.0."""
    wrapped = angle_deg % 360.0
    return 0.0 if wrapped >= 360.0 else wrapped


@dataclass(frozen=True)
class MountErrors:
    """How the head sits on the mast: what a calibration has to find (all in degrees).

    ``north_deg`` is the true azimuth of the raw pan zero, ``tilt_deg`` the elevation of
    the raw tilt zero; ``level_a_deg``/``level_b_deg`` tilt the pan axis (elevation error
    a·cos ψ + b·sin ψ at true azimuth ψ, the model of drivers.ptz_calibration); ``roll_deg``
    turns the camera about its optical axis (positive turns image x toward image y).
    """

    north_deg: float = 0.0
    tilt_deg: float = 0.0
    level_a_deg: float = 0.0
    level_b_deg: float = 0.0
    roll_deg: float = 0.0

    _KEYS = {"north": "north_deg", "tilt": "tilt_deg", "a": "level_a_deg",
             "b": "level_b_deg", "roll": "roll_deg"}  # fmt: skip

    @classmethod
    def parse(cls, text: str) -> MountErrors:
        """From the command-line form ``north=1.234,tilt=-0.3,a=0.05,b=-0.03,roll=0.4``."""
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            field_name = cls._KEYS.get(key.strip())
            if not sep or field_name is None:
                raise ValueError(
                    f"mount errors: {item!r} is not KEY=DEGREES with KEY one of "
                    f"{', '.join(cls._KEYS)}"
                )
            try:
                values[field_name] = float(value)
            except ValueError:
                raise ValueError(f"mount errors: {key}={value!r} is not a number") from None
        return cls(**values)

    def __post_init__(self) -> None:
        # The small-angle levelling model and a camera that is still roughly upright.
        for name, value, limit in (
            ("level_a_deg", self.level_a_deg, 2.0),
            ("level_b_deg", self.level_b_deg, 2.0),
            ("roll_deg", self.roll_deg, 10.0),
        ):
            if not abs(value) <= limit:
                raise ValueError(f"mount errors: |{name}| must be <= {limit}, got {value}")

    def levelling_deg(self, azimuth_deg: float) -> float:
        psi = math.radians(azimuth_deg)
        return self.level_a_deg * math.cos(psi) + self.level_b_deg * math.sin(psi)


class HeadCommandRefused(ValueError):
    """The head refuses a command (unknown preset, preset memory full, preset while moving)."""


@dataclass(frozen=True)
class HeadState:
    """What the head's own encoders report."""

    raw_pan_deg: float  # [0, 360)
    raw_tilt_deg: float
    hfov_deg: float
    moving: bool  # true from the first command until the head has settled
    t: float  # tower clock, unix seconds


@dataclass(frozen=True)
class _Segment:
    """Constant acceleration from (x0, v0) at t0 for duration_s (may be infinite)."""

    t0: float
    duration_s: float
    x0: float
    v0: float
    accel: float

    def at(self, t: float) -> tuple[float, float]:
        dt = min(max(t - self.t0, 0.0), self.duration_s)
        return self.x0 + self.v0 * dt + 0.5 * self.accel * dt * dt, self.v0 + self.accel * dt

    @property
    def end_t(self) -> float:
        return self.t0 + self.duration_s

    @property
    def direction(self) -> int:
        """Sign of the velocity throughout the segment (segments never cross zero)."""
        v_mid = self.v0 + 0.5 * self.accel * min(self.duration_s, 1.0e9)
        if abs(v_mid) < 1e-12:
            return 0
        return 1 if v_mid > 0 else -1


def _plan_move(
    t0: float, x0: float, v0: float, target: float, vmax: float, accel: float
) -> list[_Segment]:
    """Segments that bring the axis from (x0, v0) to rest at ``target`` within limits.

    A trapezoidal (or triangular) speed profile; an axis moving away from the target,
    or too fast to stop before it, first brakes to rest, as a real servo does.
    """
    segments: list[_Segment] = []
    t, x, v = t0, x0, v0
    distance = target - x
    if v != 0.0:
        stopping = v * v / (2.0 * accel)
        if (v > 0) != (distance > 0) or stopping > abs(distance):
            seg = _Segment(t, abs(v) / accel, x, v, -math.copysign(accel, v))
            segments.append(seg)
            t = seg.end_t
            x, _ = seg.at(t)
            v = 0.0
            distance = target - x
        elif abs(v) > vmax:
            seg = _Segment(t, (abs(v) - vmax) / accel, x, v, -math.copysign(accel, v))
            segments.append(seg)
            t = seg.end_t
            x, v = seg.at(t)
            v = math.copysign(vmax, v)
            distance = target - x
    if abs(distance) < 1e-12 and v == 0.0:
        return segments
    sign = 1.0 if distance > 0 else -1.0
    d = abs(distance)
    u0 = abs(v)
    full_ramps = (vmax * vmax - u0 * u0) / (2.0 * accel) + vmax * vmax / (2.0 * accel)
    if full_ramps <= d:
        v_peak = vmax
        cruise_s = (d - full_ramps) / vmax
    else:
        v_peak = max(math.sqrt((2.0 * accel * d + u0 * u0) / 2.0), u0)
        cruise_s = 0.0
    for duration_s, a in (
        ((v_peak - u0) / accel, sign * accel),
        (cruise_s, 0.0),
        (v_peak / accel, -sign * accel),
    ):
        if duration_s <= 0.0:
            continue
        seg = _Segment(t, duration_s, x, v, a)
        segments.append(seg)
        t = seg.end_t
        x, v = seg.at(t)
    return segments


class _Axis:
    """One axis: a plan of segments, its resting point, and the last direction moved."""

    def __init__(
        self,
        position: float,
        vmax: float,
        accel: float,
        lower: float | None = None,
        upper: float | None = None,
    ) -> None:
        self.vmax = vmax
        self.accel = accel
        self.lower = lower
        self.upper = upper
        self._segments: list[_Segment] = []
        self._rest = position  # where the axis ends (exactly) when the plan finishes
        self._last_dir_before_plan = 0
        self._motion_end_t = -math.inf

    def evaluate(self, t: float) -> tuple[float, float]:
        for seg in self._segments:
            if t < seg.end_t:
                return seg.at(t)
        return self._rest, 0.0

    def last_direction(self, t: float) -> int:
        direction = self._last_dir_before_plan
        for seg in self._segments:
            if seg.t0 >= t:
                break
            if seg.direction != 0:
                direction = seg.direction
        return direction

    def motion_end_t(self) -> float:
        return self._motion_end_t

    def _replan(self, t: float, segments: list[_Segment], rest: float) -> None:
        self._last_dir_before_plan = self.last_direction(t)
        self._segments = segments
        self._rest = rest
        if segments:
            self._motion_end_t = segments[-1].end_t
        else:
            self._motion_end_t = min(self._motion_end_t, t)

    def clamp(self, x: float) -> float:
        if self.lower is not None:
            x = max(self.lower, x)
        if self.upper is not None:
            x = min(self.upper, x)
        return x

    def move_to(self, t: float, target: float, speed_frac: float = 1.0) -> None:
        target = self.clamp(target)
        x, v = self.evaluate(t)
        segments = _plan_move(t, x, v, target, self.vmax * speed_frac, self.accel)
        self._replan(t, segments, target if segments else x)

    def run_at(self, t: float, velocity: float) -> None:
        """Velocity mode: bounded axes run to their end stop and brake there."""
        velocity = max(-self.vmax, min(self.vmax, velocity))
        x, v = self.evaluate(t)
        if velocity == 0.0:
            self.stop(t)
            return
        if self.lower is not None and self.upper is not None:
            self.move_to(t, self.upper if velocity > 0 else self.lower, abs(velocity) / self.vmax)
            return
        t_plan = t
        segments: list[_Segment] = []
        if v != 0.0 and (v > 0) != (velocity > 0):
            # Brake to zero first so every segment keeps one direction (the backlash side).
            brake = _Segment(t, abs(v) / self.accel, x, v, -math.copysign(self.accel, v))
            segments.append(brake)
            t = brake.end_t
            x, v = brake.at(t)
            v = 0.0
        if v != velocity:
            ramp = _Segment(
                t, abs(velocity - v) / self.accel, x, v, math.copysign(self.accel, velocity - v)
            )
            segments.append(ramp)
            t = ramp.end_t
            x, _ = ramp.at(t)
        segments.append(_Segment(t, math.inf, x, velocity, 0.0))
        self._replan(t_plan, segments, x)
        self._motion_end_t = math.inf

    def stop(self, t: float) -> None:
        x, v = self.evaluate(t)
        if v == 0.0:
            self._replan(t, [], x)
            return
        seg = _Segment(t, abs(v) / self.accel, x, v, -math.copysign(self.accel, v))
        rest, _ = seg.at(seg.end_t)
        self._replan(t, [seg], rest)

    def rebase(self, t: float, period: float) -> None:
        """Keep an endless axis's numbers small: restart the plan from x mod ``period``."""
        x, v = self.evaluate(t)
        if 0.0 <= x < period and 0.0 <= self._rest < period:
            return
        shift = math.floor(x / period) * period
        self._segments = [
            _Segment(s.t0, s.duration_s, s.x0 - shift, s.v0, s.accel) for s in self._segments
        ]
        self._rest -= shift


@dataclass(frozen=True)
class _Preset:
    name: str
    raw_pan_deg: float
    raw_tilt_deg: float
    hfov_deg: float


class SimulatedHead:
    """A thermal PTZ head whose motion follows the tower clock. Thread-safe."""

    MAX_PRESETS = 64

    def __init__(
        self,
        clock: SimClock,
        *,
        pan_speed_deg_s: float = 40.0,
        tilt_speed_deg_s: float = 20.0,
        accel_deg_s2: float = 80.0,
        backlash_deg: float = 0.05,
        settle_s: float = 0.4,
        hfov_min_deg: float = 3.0,
        hfov_max_deg: float = 25.0,
        zoom_full_travel_s: float = 3.0,
        tilt_min_deg: float = -30.0,
        tilt_max_deg: float = 30.0,
        mount_pan_offset_deg: float = 0.0,
        mount_tilt_offset_deg: float = 0.0,
        mount: MountErrors | None = None,
        initial_raw_pan_deg: float = 0.0,
        initial_raw_tilt_deg: float = 0.0,
        initial_hfov_deg: float | None = None,
    ) -> None:
        if not 0.0 < hfov_min_deg < hfov_max_deg < 180.0:
            raise ValueError(
                f"head: need 0 < hfov_min_deg < hfov_max_deg < 180, got {hfov_min_deg}, {hfov_max_deg}"
            )
        if not tilt_min_deg < tilt_max_deg:
            raise ValueError(
                f"head: tilt_min_deg {tilt_min_deg} must be < tilt_max_deg {tilt_max_deg}"
            )
        for name, value in (
            ("pan_speed_deg_s", pan_speed_deg_s),
            ("tilt_speed_deg_s", tilt_speed_deg_s),
            ("accel_deg_s2", accel_deg_s2),
            ("zoom_full_travel_s", zoom_full_travel_s),
        ):
            if value <= 0.0:
                raise ValueError(f"head: {name} must be > 0, got {value}")
        self._clock = clock
        self._lock = threading.Lock()
        self.pan_speed_deg_s = pan_speed_deg_s
        self.tilt_speed_deg_s = tilt_speed_deg_s
        self.backlash_deg = backlash_deg
        self.settle_s = settle_s
        self.hfov_min_deg = hfov_min_deg
        self.hfov_max_deg = hfov_max_deg
        self.tilt_min_deg = tilt_min_deg
        self.tilt_max_deg = tilt_max_deg
        # ``mount`` carries every planted error; the two offsets alone remain for callers
        # that only turn the head.
        self.mount = (
            mount
            if mount is not None
            else MountErrors(north_deg=mount_pan_offset_deg, tilt_deg=mount_tilt_offset_deg)
        )
        self.mount_pan_offset_deg = self.mount.north_deg
        self.mount_tilt_offset_deg = self.mount.tilt_deg
        hfov0 = hfov_max_deg if initial_hfov_deg is None else initial_hfov_deg
        ln_min, ln_max = math.log(hfov_min_deg), math.log(hfov_max_deg)
        self._pan = _Axis(initial_raw_pan_deg % 360.0, pan_speed_deg_s, accel_deg_s2)
        self._tilt = _Axis(
            min(max(initial_raw_tilt_deg, tilt_min_deg), tilt_max_deg),
            tilt_speed_deg_s,
            accel_deg_s2,
            tilt_min_deg,
            tilt_max_deg,
        )
        # Zoom runs in ln(hfov) so a zoom step looks the same at every focal length.
        self._zoom = _Axis(
            min(max(math.log(hfov0), ln_min), ln_max),
            (ln_max - ln_min) / zoom_full_travel_s,
            _ZOOM_ACCEL_PER_S2,
            ln_min,
            ln_max,
        )
        self._presets: dict[str, _Preset] = {}

    # ----------------------------------------------------------------- commands

    def command_absolute(
        self,
        raw_pan_deg: float | None,
        raw_tilt_deg: float | None,
        hfov_deg: float | None = None,
        *,
        speed_frac: float = 1.0,
    ) -> None:
        """Slew to head angles (None leaves that axis alone); pan takes the shortest way."""
        speed_frac = min(max(speed_frac, 0.01), 1.0)
        with self._lock:
            t = self._clock.now()
            self._pan.rebase(t, 360.0)
            if raw_pan_deg is not None:
                x, _ = self._pan.evaluate(t)
                delta = (raw_pan_deg - x + 180.0) % 360.0 - 180.0
                self._pan.move_to(t, x + delta, speed_frac)
            if raw_tilt_deg is not None:
                self._tilt.move_to(t, raw_tilt_deg, speed_frac)
            if hfov_deg is not None:
                self._zoom.move_to(t, math.log(max(hfov_deg, 1e-6)))

    def command_relative(
        self, dpan_deg: float, dtilt_deg: float, dhfov_factor: float | None = None
    ) -> None:
        """Move by a step from where the head is now (pan may turn more than 180°)."""
        with self._lock:
            t = self._clock.now()
            self._pan.rebase(t, 360.0)
            if dpan_deg:
                x, _ = self._pan.evaluate(t)
                self._pan.move_to(t, x + dpan_deg)
            if dtilt_deg:
                y, _ = self._tilt.evaluate(t)
                self._tilt.move_to(t, y + dtilt_deg)
            if dhfov_factor is not None and dhfov_factor > 0.0:
                z, _ = self._zoom.evaluate(t)
                self._zoom.move_to(t, z + math.log(dhfov_factor))

    def command_velocity(self, pan_frac: float, tilt_frac: float, zoom_frac: float = 0.0) -> None:
        """Run at fractions in [-1, 1] of full speed until stopped; zoom > 0 narrows the view."""
        pan_frac, tilt_frac, zoom_frac = (
            min(max(f, -1.0), 1.0) for f in (pan_frac, tilt_frac, zoom_frac)
        )
        with self._lock:
            t = self._clock.now()
            self._pan.rebase(t, 360.0)
            self._pan.run_at(t, pan_frac * self._pan.vmax)
            self._tilt.run_at(t, tilt_frac * self._tilt.vmax)
            self._zoom.run_at(t, -zoom_frac * self._zoom.vmax)

    def stop(self) -> None:
        """Brake every axis to rest (at full deceleration)."""
        with self._lock:
            t = self._clock.now()
            for axis in (self._pan, self._tilt, self._zoom):
                axis.stop(t)

    # ----------------------------------------------------------------- queries

    def _state_locked(self, t: float) -> HeadState:
        pan, _ = self._pan.evaluate(t)
        tilt, _ = self._tilt.evaluate(t)
        ln_hfov, _ = self._zoom.evaluate(t)
        end_t = max(a.motion_end_t() for a in (self._pan, self._tilt, self._zoom))
        return HeadState(
            raw_pan_deg=_wrap360(pan),
            raw_tilt_deg=tilt,
            hfov_deg=math.exp(ln_hfov),
            moving=t < end_t + self.settle_s,
            t=t,
        )

    def state(self) -> HeadState:
        with self._lock:
            return self._state_locked(self._clock.now())

    def true_pose(self) -> tuple[float, float, float]:
        """(true azimuth [0, 360), elevation, hfov) the camera really looks at, in degrees.

        The mount errors apply as the calibration model describes them: north and tilt
        offsets, then the pan axis' levelling at the true azimuth. The camera's roll does
        not move the line of sight; it is ``mount.roll_deg``.
        """
        with self._lock:
            t = self._clock.now()
            state = self._state_locked(t)
            half = 0.5 * self.backlash_deg
            pan = state.raw_pan_deg - half * self._pan.last_direction(t)
            tilt = state.raw_tilt_deg - half * self._tilt.last_direction(t)
        azimuth = _wrap360(pan + self.mount.north_deg)
        return (
            azimuth,
            tilt + self.mount.tilt_deg + self.mount.levelling_deg(azimuth),
            state.hfov_deg,
        )

    # ----------------------------------------------------------------- presets

    def set_preset(self, name: str, token: str | None = None) -> str:
        """Store the current pose; returns its token. Refused while the head moves."""
        with self._lock:
            state = self._state_locked(self._clock.now())
            if state.moving:
                raise HeadCommandRefused("head: cannot store a preset while moving")
            if token is None:
                used = set(self._presets)
                token = next(str(n) for n in range(1, self.MAX_PRESETS + 2) if str(n) not in used)
            if token not in self._presets and len(self._presets) >= self.MAX_PRESETS:
                raise HeadCommandRefused(f"head: preset memory full ({self.MAX_PRESETS} presets)")
            self._presets[token] = _Preset(
                name, state.raw_pan_deg, state.raw_tilt_deg, state.hfov_deg
            )
            return token

    def goto_preset(self, token: str, *, speed_frac: float = 1.0) -> None:
        with self._lock:
            preset = self._presets.get(token)
        if preset is None:
            raise HeadCommandRefused(f"head: no preset with token {token!r}")
        self.command_absolute(
            preset.raw_pan_deg, preset.raw_tilt_deg, preset.hfov_deg, speed_frac=speed_frac
        )

    def remove_preset(self, token: str) -> None:
        with self._lock:
            if self._presets.pop(token, None) is None:
                raise HeadCommandRefused(f"head: no preset with token {token!r}")

    def presets(self) -> dict[str, str]:
        """Preset token → name."""
        with self._lock:
            return {token: p.name for token, p in self._presets.items()}
