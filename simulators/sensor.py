"""The thermal sensor: NETD noise, fixed pattern and its drift, shutter (NUC) events, saturation, AGC."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# The 16-bit radiometric stream and recordings count 0.01 K: 65535 counts = 655.35 K.
SATURATION_K = 655.35


class SensorModel:
    """Adds what a microbolometer adds to the ideal scene, deterministically from a seed.

    Noise is drawn from a generator keyed on (seed, frame time), so a frame is the same
    whatever frames were rendered before it. The fixed pattern grows linearly from its
    post-NUC residual until the next shutter event resets it.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        seed: int,
        netd_k: float,
        fixed_pattern_k: float,
        drift_k_per_min: float,
        nuc_interval_s: float,
        nuc_duration_s: float,
        start_unix: float,
    ) -> None:
        rng = np.random.default_rng([seed, 0x5E5])
        self.netd_k = netd_k
        self._residual = (rng.standard_normal(shape) * fixed_pattern_k).astype(np.float32)
        # Drift is column-structured on real bolometers (readout per column) plus pixel terms.
        cols = rng.standard_normal((1, shape[1]))
        pix = rng.standard_normal(shape)
        self._drift_pattern = ((0.7 * cols + 0.3 * pix) * drift_k_per_min).astype(np.float32)
        self._seed = seed
        self.nuc_interval_s = nuc_interval_s
        self.nuc_duration_s = nuc_duration_s
        self._start = start_unix

    def seconds_since_nuc(self, t_unix: float) -> float:
        return (t_unix - self._start) % self.nuc_interval_s

    def in_nuc(self, t_unix: float) -> bool:
        """True while the shutter covers the sensor (the first nuc_duration_s of each interval)."""
        return (
            t_unix >= self._start + self.nuc_interval_s
            and self.seconds_since_nuc(t_unix) < self.nuc_duration_s
        )

    def apply(self, scene_k: F32, t_unix: float, shutter_k: float) -> F32:
        """Sensor output in Kelvin (float32) for the ideal scene ``scene_k`` at ``t_unix``."""
        if self.in_nuc(t_unix):
            # The flag covers the optics: a flat field at the shutter's temperature.
            frame = np.full(scene_k.shape, shutter_k, dtype=np.float32)
        else:
            minutes = np.float32(self.seconds_since_nuc(t_unix) / 60.0)
            frame = scene_k + self._residual + self._drift_pattern * minutes
        rng = np.random.default_rng([self._seed, int(round(t_unix * 1000.0)) & 0xFFFFFFFFFFFF])
        noise = rng.standard_normal(scene_k.shape, dtype=np.float32)
        noise *= np.float32(self.netd_k)
        frame = frame + noise
        np.clip(frame, 0.0, SATURATION_K, out=frame)
        return frame.astype(np.float32, copy=False)
