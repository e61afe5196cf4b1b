"""How far the scene has moved up or down the frame since the start of a visit.

A 40 m mast bends in the wind and the head's gears jitter: at a 75 mm lens one pixel is
0.009°, so the whole scene shifts by a pixel or more between frames and a static fire
wanders with it. Motion tests on raw pixel positions would call it a vehicle.

Over flat land the image is a stack of horizontal bands (range compresses the ground,
then the horizon, then sky), so the mean of each row is a profile with strong
structure that moves rigidly with the scene. The shift is the lag that best correlates
the smoothed row-profile derivative of a frame with that of the visit's first frame,
with a parabolic sub-pixel fit. Hot pixels are clipped to the first frame's 99th
percentile so that a fire or a vehicle cannot drag the estimate with it.

Only the vertical axis: the column means of such a scene are dominated by the sensor's
fixed column pattern, which does not move, so a horizontal lag measured the same way
stays near zero whatever the sway (measured on the simulated scenes, see
docs/algorithms/scene-registration.md). A weak correlation gives no estimate.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

MAX_SHIFT_PX = 10  # the largest sway a lag search looks for
MIN_CORRELATION = 0.8  # below this the profile has too little structure to trust
PROFILE_SMOOTHING_PX = 2.0  # σ: suppresses row-wise fixed pattern and temporal noise
CLIP_PERCENTILES = (1.0, 99.0)


class VerticalRegistration:
    """The scene's vertical shift (px, positive = the scene moved down) against a reference."""

    def __init__(self) -> None:
        self._reference: npt.NDArray[np.float64] | None = None
        self._clip = (0.0, 0.0)
        self.estimates = 0
        self.failures = 0
        self._followed = 0
        self.current_px = 0.0  # the latest estimate since begin()
        self._sum_px = 0.0

    def begin(self, frame: npt.NDArray[np.floating]) -> None:
        """Take ``frame`` as the reference: its scene position is shift 0."""
        self.current_px = self._sum_px = 0.0
        self._followed = 0
        sample = np.asarray(frame[::4, ::4], dtype=np.float32)
        finite = sample[np.isfinite(sample)]
        if finite.size == 0:
            self._reference = None
            return
        lo, hi = np.percentile(finite, CLIP_PERCENTILES)
        self._clip = (float(lo), float(hi))
        self._reference = self._profile(frame)

    def shift_px(self, frame: npt.NDArray[np.floating]) -> float | None:
        """The vertical shift of ``frame``'s scene, or None without a trustworthy estimate."""
        if self._reference is None:
            return None
        profile = self._profile(frame)
        if profile.size != self._reference.size or profile.size <= 4 * MAX_SHIFT_PX:
            self.failures += 1
            return None
        lag, correlation = _best_lag(self._reference, profile, MAX_SHIFT_PX)
        if lag is None or correlation < MIN_CORRELATION:
            self.failures += 1
            return None
        self.estimates += 1
        return lag

    def follow(self, frame: npt.NDArray[np.floating]) -> float:
        """The shift of ``frame``; without an estimate the last one (sway is continuous,
        0 would be a jump), which is also what :attr:`mean_px` averages."""
        shift = self.shift_px(frame)
        if shift is not None:
            self.current_px = shift
            self._sum_px += shift
            self._followed += 1
        return self.current_px

    @property
    def mean_px(self) -> float:
        """The mean of the estimates since begin(): the pointing a sway oscillates about."""
        return self._sum_px / self._followed if self._followed else 0.0

    def _profile(self, frame: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        lo, hi = self._clip
        clipped = np.clip(np.nan_to_num(np.asarray(frame, dtype=np.float32), nan=lo), lo, hi)
        rows = cv2.reduce(clipped, 1, cv2.REDUCE_AVG, dtype=cv2.CV_64F)
        smooth = cv2.GaussianBlur(rows, (1, 0), sigmaX=0, sigmaY=PROFILE_SMOOTHING_PX)
        return np.diff(smooth.ravel())


def _best_lag(
    reference: npt.NDArray[np.float64], profile: npt.NDArray[np.float64], max_lag: int
) -> tuple[float | None, float]:
    """Sub-pixel lag s with profile(y) ≈ reference(y − s), and its normalised correlation."""
    n = reference.size
    core = reference[max_lag : n - max_lag]
    core = core - core.mean()
    core_norm = float(np.linalg.norm(core))
    if core_norm == 0.0:
        return None, 0.0
    scores = np.empty(2 * max_lag + 1)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        segment = profile[max_lag + lag : n - max_lag + lag]
        segment = segment - segment.mean()
        norm = float(np.linalg.norm(segment))
        scores[i] = float(core @ segment) / (core_norm * norm) if norm > 0.0 else 0.0
    k = int(np.argmax(scores))
    if k in (0, scores.size - 1):
        return None, float(scores[k])  # at the search's edge: the true lag may lie beyond
    before, peak, after = scores[k - 1], scores[k], scores[k + 1]
    curvature = before - 2.0 * peak + after
    offset = 0.5 * (before - after) / curvature if curvature < 0.0 else 0.0
    return k - max_lag + offset, float(peak)
