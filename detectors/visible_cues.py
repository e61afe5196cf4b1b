"""Visible-light smoke and flame cues: supporting evidence for the thermal decision.

Smoke (day): a semi-transparent plume softens the texture behind it and adds no colour.
Each block of the image keeps a slowly learned background of its contrast-normalised
high-frequency energy (one level of a Haar transform, as in Töreyin et al. 2005); a
block whose energy falls well below that background, whose colour does not gain
chroma and whose brightness stays in the range of grey smoke is a smoke block. Blocks
that stay so for several seconds form a plume. A change that covers a large part of
the view at once (fog rolling in, haze, a cloud shadow, the camera's exposure) is not
a plume: it is absorbed into the background instead.

Flame (night): pixels of fire colour (Chen et al. 2004: red dominant, R ≥ G > B,
saturation rising as red falls) in a region that stays put and flickers, i.e. whose
lit area fluctuates around its own short-term mean. Headlights are white or steady,
and they move.

Pure code: frames (BGR uint8) and their timestamps in, cues out. docs/algorithms/visible-cues.md
gives the rules and the starting values.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

BGR = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- smoke


@dataclass(frozen=True)
class SmokeSettings:
    block_px: int = 8  # a 20 m plume at 10 km spans ~12 px of a 75 mm visible channel
    background_time_constant_s: float = 30.0  # haze and light change over minutes
    energy_drop_sigmas: float = 4.0  # a block's energy ratio below 1 − k·σ(ratio) …
    energy_ratio_max: float = 0.9  # … and below this: the texture is visibly softened
    energy_ratio_min: float = 0.05  # below this the view is blocked, not veiled
    chroma_gain_max: float = 4.0  # smoke adds no colour (grey levels of 0–255)
    intensity_min: float = 60.0  # grey smoke by day: neither black nor white
    intensity_max: float = 230.0
    min_duration_s: float = 5.0  # a block must stay veiled this long
    max_view_fraction: float = 0.3  # a change over more of the view is global (fog, light)
    min_texture: float = 0.01  # blocks flatter than this (sky, water) tell nothing


@dataclass(frozen=True)
class SmokeCue:
    found: bool
    bbox_px: tuple[int, int, int, int] | None  # x0, y0, x1, y1 of the largest plume
    blocks: int  # veiled blocks in that plume
    duration_s: float  # how long its oldest block has been veiled
    energy_ratio: float  # mean contrast ratio inside it (1 = unchanged texture)
    view_fraction: float  # fraction of textured blocks changed in this frame
    global_change: bool  # the frame changed as a whole (fog, haze, cloud shadow)

    def evidence(self) -> dict[str, float | bool | int]:
        return {
            "smoke": self.found,
            "smoke_blocks": self.blocks,
            "smoke_duration_s": round(self.duration_s, 1),
            "smoke_energy_ratio": round(self.energy_ratio, 3),
        }


def block_features(bgr: BGR, block_px: int) -> tuple[F32, F32, F32]:
    """Per block: contrast-normalised Haar energy, mean intensity and mean chroma.

    Energy is Σ(|LH| + |HL| + |HH|) of one Haar level divided by the block's mean
    intensity, so that a shadow, which scales both, leaves it unchanged.
    """
    h, w = bgr.shape[:2]
    bh, bw = h // block_px, w // block_px
    if bh == 0 or bw == 0:
        raise ValueError(f"frame {w}×{h} is smaller than one {block_px}-pixel block")
    img = bgr[: bh * block_px, : bw * block_px].astype(np.float32)
    grey = img.mean(axis=2)
    a, b = grey[0::2, 0::2], grey[0::2, 1::2]
    c, d = grey[1::2, 0::2], grey[1::2, 1::2]
    detail = 0.5 * (np.abs(a + b - c - d) + np.abs(a - b + c - d) + np.abs(a - b - c + d))
    half = block_px // 2
    energy = detail.reshape(bh, half, bw, half).mean(axis=(1, 3))
    intensity = grey.reshape(bh, block_px, bw, block_px).mean(axis=(1, 3))
    chroma_px = img.max(axis=2) - img.min(axis=2)
    chroma = chroma_px.reshape(bh, block_px, bw, block_px).mean(axis=(1, 3))
    normalised = energy / np.maximum(intensity, 1.0)
    return normalised.astype(np.float32), intensity.astype(np.float32), chroma.astype(np.float32)


class SmokeDetector:
    """Follows one view (one PTZ pose) frame by frame; reset it when the view changes."""

    def __init__(self, settings: SmokeSettings | None = None) -> None:
        self.settings = settings or SmokeSettings()
        self.reset()

    def reset(self) -> None:
        """Forget the learned background (the head moved to another view)."""
        self._energy_bg: F32 | None = None
        self._ratio_var: F32 | None = None
        self._chroma_bg: F32 | None = None
        self._veiled_since: npt.NDArray[np.float64] | None = None
        self._last_t: float | None = None

    def update(self, bgr: BGR, t_s: float) -> SmokeCue:
        s = self.settings
        energy, intensity, chroma = block_features(bgr, s.block_px)
        if self._energy_bg is None or self._energy_bg.shape != energy.shape:
            self._start(energy, chroma, t_s)
            return _no_smoke(0.0, False)
        assert self._ratio_var is not None and self._chroma_bg is not None
        assert self._veiled_since is not None and self._last_t is not None
        dt = max(t_s - self._last_t, 0.0)
        self._last_t = t_s
        textured = self._energy_bg >= s.min_texture
        ratio = (energy / np.maximum(self._energy_bg, 1e-6)).astype(np.float32)
        sigma = np.sqrt(self._ratio_var)
        softened = (ratio < np.minimum(1.0 - s.energy_drop_sigmas * sigma, s.energy_ratio_max)) & (
            ratio > s.energy_ratio_min
        )
        veiled = (
            textured
            & softened
            & (chroma - self._chroma_bg <= s.chroma_gain_max)
            & (intensity >= s.intensity_min)
            & (intensity <= s.intensity_max)
        )
        changed = textured & (np.abs(ratio - 1.0) > np.maximum(s.energy_drop_sigmas * sigma, 0.1))
        n_textured = int(textured.sum())
        view_fraction = float(changed.sum()) / n_textured if n_textured else 0.0
        global_change = view_fraction > s.max_view_fraction
        if global_change:
            # Fog, haze or a change of light: the whole view is the new background, and
            # no block counts as veiled against the old one.
            self._energy_bg[...] = energy
            self._chroma_bg[...] = chroma
            self._veiled_since[...] = np.nan
            return _no_smoke(view_fraction, True)
        self._veiled_since = np.where(
            veiled, np.where(np.isnan(self._veiled_since), t_s, self._veiled_since), np.nan
        )
        self._learn(energy, chroma, ratio, ~veiled, dt)
        return self._cue(ratio, t_s, view_fraction, False)

    def _start(self, energy: F32, chroma: F32, t_s: float) -> None:
        self._energy_bg = energy.copy()
        self._chroma_bg = chroma.copy()
        # Until the noise of each block is learned, assume a few per cent.
        self._ratio_var = np.full(energy.shape, 0.03**2, np.float32)
        self._veiled_since = np.full(energy.shape, np.nan)
        self._last_t = t_s

    def _learn(
        self, energy: F32, chroma: F32, ratio: F32, where: npt.NDArray[np.bool_], dt: float
    ) -> None:
        """Update the background where no plume is forming (a plume is not absorbed)."""
        assert self._energy_bg is not None and self._chroma_bg is not None
        assert self._ratio_var is not None
        alpha = np.float32(1.0 - math.exp(-dt / self.settings.background_time_constant_s))
        self._energy_bg[where] += alpha * (energy[where] - self._energy_bg[where])
        self._chroma_bg[where] += alpha * (chroma[where] - self._chroma_bg[where])
        dev2 = np.minimum((ratio - 1.0) ** 2, 0.25)
        self._ratio_var[where] += alpha * (dev2[where] - self._ratio_var[where])

    def _cue(self, ratio: F32, t_s: float, view_fraction: float, global_change: bool) -> SmokeCue:
        assert self._veiled_since is not None
        since = self._veiled_since
        mature = ~np.isnan(since) & (
            t_s - np.nan_to_num(since, nan=t_s) >= self.settings.min_duration_s
        )
        if not mature.any():
            return _no_smoke(view_fraction, global_change)
        veiled = (~np.isnan(since)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(veiled, connectivity=8)
        best, best_blocks = 0, 0
        for label in range(1, n):
            member = labels == label
            if not mature[member].any():
                continue
            blocks = int(stats[label, cv2.CC_STAT_AREA])
            if blocks > best_blocks:
                best, best_blocks = label, blocks
        if best == 0:
            return _no_smoke(view_fraction, global_change)
        member = labels == best
        b = self.settings.block_px
        x0, y0 = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
        x1 = x0 + int(stats[best, cv2.CC_STAT_WIDTH])
        y1 = y0 + int(stats[best, cv2.CC_STAT_HEIGHT])
        return SmokeCue(
            found=True,
            bbox_px=(x0 * b, y0 * b, x1 * b, y1 * b),
            blocks=best_blocks,
            duration_s=float(t_s - np.nanmin(since[member])),
            energy_ratio=float(ratio[member].mean()),
            view_fraction=view_fraction,
            global_change=global_change,
        )


def _no_smoke(view_fraction: float, global_change: bool) -> SmokeCue:
    return SmokeCue(False, None, 0, 0.0, 1.0, view_fraction, global_change)


# --------------------------------------------------------------------------- flame


@dataclass(frozen=True)
class FlameSettings:
    red_min: int = 125  # R_T of Chen et al. (115–135)
    saturation_threshold: float = 60.0  # S_T of Chen et al. (55–65), S on 0–255
    window_s: float = 4.0  # flicker is judged over this much history
    min_frames: int = 12  # at 9 Hz: ~1.3 s; flicker of 0.5–4 Hz needs a few cycles
    min_flicker: float = 0.1  # CV of the lit area about its running mean (fire > 0.1)
    max_drift_px: float = 3.0  # a flame stays put; headlights travel
    min_pixels: int = 2


@dataclass(frozen=True)
class FlameCue:
    found: bool
    centroid_px: tuple[float, float] | None
    lit_px: float  # mean fire-coloured pixels over the window
    flicker: float  # coefficient of variation of the lit area about its running mean
    drift_px: float  # how far the lit region's centroid travelled over the window

    def evidence(self) -> dict[str, float | bool]:
        return {
            "flame": self.found,
            "flame_flicker": round(self.flicker, 3),
            "flame_drift_px": round(self.drift_px, 1),
        }


def fire_colour_mask(bgr: BGR, settings: FlameSettings) -> npt.NDArray[np.bool_]:
    """Chen's rule: R > R_T, R ≥ G > B and S ≥ (255 − R)·S_T / R_T."""
    b = bgr[..., 0].astype(np.int16)
    g = bgr[..., 1].astype(np.int16)
    r = bgr[..., 2].astype(np.int16)
    sat = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[..., 1].astype(np.float32)
    needed = (255.0 - r) * settings.saturation_threshold / settings.red_min
    return (r > settings.red_min) & (r >= g) & (g > b) & (sat >= needed)


class FlameDetector:
    """Follows one view; call ``update`` with every visible frame of the dwell."""

    def __init__(self, settings: FlameSettings | None = None) -> None:
        self.settings = settings or FlameSettings()
        self._history: deque[tuple[float, int, float, float]] = deque()

    def reset(self) -> None:
        self._history.clear()

    def update(self, bgr: BGR, t_s: float) -> FlameCue:
        s = self.settings
        mask = fire_colour_mask(bgr, s)
        lit = int(mask.sum())
        if lit:
            ys, xs = np.nonzero(mask)
            cx, cy = float(xs.mean()), float(ys.mean())
        else:
            cx = cy = math.nan
        self._history.append((t_s, lit, cx, cy))
        while self._history and self._history[0][0] < t_s - s.window_s:
            self._history.popleft()
        return self._cue()

    def _cue(self) -> FlameCue:
        s = self.settings
        hist = list(self._history)
        lit = np.array([h[1] for h in hist], np.float64)
        if len(hist) < s.min_frames or lit.mean() < s.min_pixels:
            mean = float(lit.mean()) if len(lit) else 0.0
            return FlameCue(False, None, mean, 0.0, 0.0)
        # Flicker: fluctuation about a running mean of ~3 frames, so that the slow
        # growth of a fire or a light entering the view does not count.
        smooth = np.convolve(lit, np.ones(3) / 3.0, mode="same")
        inner = slice(1, len(lit) - 1)
        flicker = float(np.std(lit[inner] - smooth[inner]) / max(lit.mean(), 1e-9))
        xs = np.array([h[2] for h in hist])
        ys = np.array([h[3] for h in hist])
        seen = ~np.isnan(xs)
        drift = float(np.hypot(np.ptp(xs[seen]), np.ptp(ys[seen]))) if seen.sum() > 1 else 0.0
        centroid = (float(np.nanmean(xs)), float(np.nanmean(ys))) if seen.any() else None
        found = flicker >= s.min_flicker and drift <= s.max_drift_px
        return FlameCue(found, centroid, float(lit.mean()), flicker, drift)
