"""The fire-point localisation scan's verdict on hand-built zoomed frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.radiometry import band_radiance, band_radiance_clipped, brightness_temperature
from detectors.zoom_test import measure
from drivers.base import Frame
from edge.config import TowerConfig, load_config
from edge.confirm import ConfirmationScan
from edge.detection import Candidate, DetectionContext

ROOT = Path(__file__).resolve().parent.parent
BACKGROUND_K = 288.0
T0 = 1_710_928_800.0  # 2024-03-20 10:00 UTC: day at the simulated tower
NIGHT_OFFSET_S = 12 * 3600.0  # 22:00 UTC: night there
WIDE_HFOV = 5.8620
NARROW_HFOV = 2.9329
PAN, TILT = 135.0, -0.3


@pytest.fixture(scope="module")
def cfg() -> TowerConfig:
    return load_config(ROOT / "config" / "simulated.yaml")


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (BACKGROUND_K + rng.normal(0.0, 0.05, (512, 640))).astype(np.float32)


def _add_point(frame: np.ndarray, x: float, y: float, excess_radiance: float) -> None:
    """A sub-pixel source: ``excess_radiance`` (W m⁻² sr⁻¹ × pixels) spread by a small PSF."""
    psf = np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]])
    i, j = round(y), round(x)
    window = frame[i - 1 : i + 2, j - 1 : j + 2].astype(np.float64)
    radiance = band_radiance(window) + excess_radiance * psf
    frame[i - 1 : i + 2, j - 1 : j + 2] = brightness_temperature(radiance)


def _candidate(wide: np.ndarray, x: float, y: float) -> Candidate:
    return Candidate(
        t=T0, pan_deg=PAN, tilt_deg=TILT, hfov_deg=WIDE_HFOV, x=x, y=y, score=0.8,
        peak_k=float(wide[round(y), round(x)]), delta_t_k=float(wide[round(y), round(x)]) - BACKGROUND_K,
        a_eq_m2_per_range2=1e-8, compact=True,
        wide=measure(wide, x, y, BACKGROUND_K, band_radiance_clipped),
    )  # fmt: skip


def _frames(n: int, draw) -> list[Frame]:  # type: ignore[no-untyped-def]
    frames = []
    for k in range(n):
        image = _scene(100 + k)
        draw(image, k)
        frames.append(Frame(image, T0 + 0.1 * k, k, True, PAN, TILT, NARROW_HFOV))
    return frames


def _verdict(cfg: TowerConfig, candidate: Candidate, frames: list[Frame]):  # type: ignore[no-untyped-def]
    context = DetectionContext.from_config(cfg)
    scan = ConfirmationScan(context, candidate, cfg.confirmation.persistence_fraction)
    for frame in frames:
        scan.add_frame(frame, (PAN, TILT, NARROW_HFOV), frame.t)
    return scan.verdict()


def test_a_steady_sub_pixel_fire_is_confirmed_where_it_is(cfg: TowerConfig) -> None:
    wide = _scene(1)
    _add_point(wide, 319.5, 255.5, 30.0)
    candidate = _candidate(wide, 319.5, 255.5)
    # zoomed ×2: the same flux lands on pixels of a quarter of the solid angle
    frames = _frames(20, lambda image, k: _add_point(image, 320.0, 256.0, 120.0))
    verdict = _verdict(cfg, candidate, frames)
    assert verdict.outcome == "confirmed", verdict.evidence
    assert verdict.evidence["persistence"] == 1.0
    assert 0.5 <= verdict.evidence["zoom_a_eq_ratio"] <= 2.0
    assert verdict.bearing_deg == pytest.approx(PAN, abs=0.01)
    assert verdict.frame is not None and verdict.hotspot_xy[0] == pytest.approx(320.0, abs=1.0)


def test_a_hotspot_drifting_across_the_zoomed_view_is_a_vehicle(cfg: TowerConfig) -> None:
    wide = _scene(2)
    _add_point(wide, 319.5, 255.5, 30.0)
    frames = _frames(20, lambda image, k: _add_point(image, 300.0 + 2.0 * k, 256.0, 120.0))
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames)
    assert (verdict.outcome, verdict.reason) == ("dismissed", "vehicle")


def _night(frames: list[Frame]) -> list[Frame]:
    """The same frames, taken 12 h later: at night at the simulated tower."""
    return [
        Frame(f.image, f.t + NIGHT_OFFSET_S, f.seq, True, PAN, TILT, NARROW_HFOV) for f in frames
    ]


def _warm_patch(image: np.ndarray, size: int) -> None:
    image[256 - size : 256 + size, 320 - size : 320 + size] += 14.0


def test_by_day_an_extended_surface_no_hotter_than_sunlit_ground_is_solar(cfg: TowerConfig) -> None:
    wide = _scene(3)
    _warm_patch(wide, 1)
    frames = _frames(20, lambda image, k: _warm_patch(image, 2))
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames)
    assert (verdict.outcome, verdict.reason) == ("dismissed", "solar"), verdict.evidence


def test_by_night_a_warm_surface_keeps_its_temperature_when_zoomed_and_is_dismissed(
    cfg: TowerConfig,
) -> None:
    wide = _scene(3)
    _warm_patch(wide, 1)
    frames = _night(_frames(20, lambda image, k: _warm_patch(image, 2)))
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames)
    assert (verdict.outcome, verdict.reason) == ("dismissed", "extended"), verdict.evidence
    assert verdict.evidence["zoom_a_eq_ratio"] < 0.5


def test_a_fire_near_enough_to_fill_its_pixels_is_not_dismissed_as_extended(
    cfg: TowerConfig,
) -> None:
    # a 2 m front at 5 km covers 2-3 patrol pixels and 5 zoomed ones: like a warm surface
    # it keeps its temperature when zoomed, but no surface the tower ignores is 650 K
    def flame(image: np.ndarray, size: int) -> None:
        image[256 - size : 256 + size, 320 - size : 320 + size] = 650.0

    wide = _scene(3)
    flame(wide, 1)
    frames = _night(_frames(20, lambda image, k: flame(image, 2)))
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames)
    assert verdict.evidence["zoom_a_eq_ratio"] < 0.5  # the zoom test alone says extended
    assert verdict.evidence["resolved_fire"] is True
    assert (verdict.outcome, verdict.reason) == ("confirmed", "fire"), verdict.evidence


def test_nothing_there_any_more_is_dismissed_as_transient(cfg: TowerConfig) -> None:
    wide = _scene(4)
    _add_point(wide, 319.5, 255.5, 30.0)
    frames = _frames(20, lambda image, k: None)
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames)
    assert (verdict.outcome, verdict.reason) == ("dismissed", "transient")


def test_a_source_seen_in_half_the_frames_is_undecided(cfg: TowerConfig) -> None:
    wide = _scene(5)
    _add_point(wide, 319.5, 255.5, 30.0)

    def blinking(image: np.ndarray, k: int) -> None:
        if k % 2 == 0:
            _add_point(image, 320.0, 256.0, 120.0)

    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), _frames(20, blinking))
    assert (verdict.outcome, verdict.reason) == ("undecided", "intermittent")


def test_no_frames_is_undecided(cfg: TowerConfig) -> None:
    wide = _scene(6)
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), [])
    assert verdict.outcome == "undecided"


# --- the visible camera's flame cue, supporting evidence of the scan ----------------------


def _night_visible(n: int, draw) -> list[Frame]:  # type: ignore[no-untyped-def]
    """Dark visible frames of the zoomed view (no pose metadata: boresighted with the
    thermal camera), 0.1 s apart like the thermal ones, with ``draw(image, k)`` on them."""
    rng = np.random.default_rng(7)
    frames = []
    for k in range(n):
        image = rng.integers(4, 12, (512, 640, 3), dtype=np.uint8)
        draw(image, k)
        frames.append(Frame(image, T0 + NIGHT_OFFSET_S + 0.1 * k, k, False, float("nan"),
                            float("nan"), float("nan")))  # fmt: skip
    return frames


def _flame(x: int, y: int, seed: int):  # type: ignore[no-untyped-def]
    """A flame: fire-coloured (orange), fixed in place, its lit area flickering."""
    sizes = np.random.default_rng(seed).integers(1, 5, 64)

    def draw(image: np.ndarray, k: int) -> None:
        r = int(sizes[k])
        image[y - r : y + 1, x - 1 : x + 2] = (40, 150, 250)  # BGR: R ≥ G > B, saturated

    return draw


def _scan_with_visible(cfg: TowerConfig, visible: list[Frame]):  # type: ignore[no-untyped-def]
    wide = _scene(1)
    _add_point(wide, 319.5, 255.5, 30.0)
    context = DetectionContext.from_config(cfg)
    scan = ConfirmationScan(context, _candidate(wide, 319.5, 255.5),
                            cfg.confirmation.persistence_fraction)  # fmt: skip
    thermal = _frames(len(visible), lambda image, k: _add_point(image, 320.0, 256.0, 120.0))
    pose = (PAN, TILT, NARROW_HFOV)
    for frame, seen in zip(thermal, visible, strict=True):
        scan.add_frame(frame, pose, frame.t)
        scan.add_visible(seen, pose)
    return scan.verdict()


def test_a_flickering_flame_at_the_hotspot_is_visible_evidence(cfg: TowerConfig) -> None:
    verdict = _scan_with_visible(cfg, _night_visible(30, _flame(320, 256, seed=1)))
    assert verdict.outcome == "confirmed"
    assert verdict.visible is not None and verdict.visible["frames"] == 30
    assert verdict.visible["flame"] is True, verdict.visible
    assert verdict.visible["flame_flicker"] >= 0.1


def test_headlights_and_a_flame_elsewhere_in_view_are_not_the_hotspots_flame(
    cfg: TowerConfig,
) -> None:
    chimney = _flame(480, 120, seed=2)  # far from the hotspot's direction

    def draw(image: np.ndarray, k: int) -> None:
        chimney(image, k)
        x = 300 + 2 * k  # warm headlights: fire-coloured but steady, and travelling
        image[254:258, x : x + 4] = (200, 230, 255)

    verdict = _scan_with_visible(cfg, _night_visible(30, draw))
    assert verdict.outcome == "confirmed"  # the thermal decision is the scan's own
    assert verdict.visible is not None and verdict.visible["flame"] is False, verdict.visible


def test_without_visible_frames_the_verdict_says_nothing_of_the_visible_camera(
    cfg: TowerConfig,
) -> None:
    wide = _scene(1)
    _add_point(wide, 319.5, 255.5, 30.0)
    frames = _frames(20, lambda image, k: _add_point(image, 320.0, 256.0, 120.0))
    verdict = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames)
    assert verdict.visible is None


def _banded_scene(seed: int, down_px: int) -> np.ndarray:
    """Rows of ground, dykes and sky (the structure flat land shows), moved ``down_px``."""
    rng = np.random.default_rng(seed)
    y = np.arange(512, dtype=np.float64)[:, None] - down_px
    bands = BACKGROUND_K + 3.0 * np.sin(y / 13.0) + np.where(y > 180, 4.0, 0.0)
    return (bands + rng.normal(0.0, 0.05, (512, 640))).astype(np.float32)


def test_a_steady_fire_seen_from_a_swaying_mast_is_confirmed_not_a_vehicle(
    cfg: TowerConfig,
) -> None:
    # zoomed ×2 a sway of 0.02° is 4.4 px: the whole scene bobs up and down by that much;
    # 22 frames at 10 Hz are two periods of the mast's 1.1 s mode
    wide = _scene(3)
    _add_point(wide, 319.5, 255.5, 30.0)

    def frames(amplitude_px: float) -> list[Frame]:
        out = []
        for k in range(22):
            down = round(amplitude_px * np.sin(2.0 * np.pi * 0.1 * k / 1.1))
            image = _banded_scene(200 + k, down)
            _add_point(image, 320.0, 256.0 + down, 120.0)
            out.append(Frame(image, T0 + 0.1 * k, k, True, PAN, TILT, NARROW_HFOV))
        return out

    still = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames(0.0))
    swaying = _verdict(cfg, _candidate(wide, 319.5, 255.5), frames(4.4))
    assert swaying.outcome == "confirmed", swaying.evidence
    assert swaying.evidence["drift_px"] < 1.0
    deg_per_px = NARROW_HFOV / 640
    assert swaying.elevation_deg == pytest.approx(still.elevation_deg, abs=0.3 * deg_per_px)
    # the snapshot's mark is where the fire is in the last frame, not in the first
    last_down = round(4.4 * np.sin(2.0 * np.pi * 2.1 / 1.1))
    assert swaying.hotspot_xy[1] == pytest.approx(256.0 + last_down, abs=0.5)
