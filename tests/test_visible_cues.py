"""Visible cues: smoke over reed is found; fog, haze and cloud shadow are not; a flickering
flame at night is found; headlights, moving or parked, are not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.visible_cues import (
    FlameDetector,
    FlameSettings,
    SmokeDetector,
    block_features,
    fire_colour_mask,
)

H, W = 240, 320
FPS = 5.0


def reed_texture(seed: int) -> np.ndarray:
    """Brownish reed: vertical stems of varying brightness over a noisy ground (BGR float)."""
    rng = np.random.default_rng(seed)
    stems = cv2.GaussianBlur(rng.normal(0.0, 1.0, (H, W)).astype(np.float32), (1, 0), 0.8)
    stems = cv2.blur(stems, (1, 9))
    base = 105.0 + 40.0 * stems / stems.std()
    bgr = np.stack([base * 0.55, base * 0.85, base * 1.1], axis=2)
    return np.clip(bgr, 0, 255)


class Scene:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed + 1000)
        self.background = reed_texture(seed)

    def frame(self, image: np.ndarray) -> np.ndarray:
        noisy = image + self.rng.normal(0.0, 2.0, image.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)


def plume_alpha(t_s: float, start_s: float, peak_alpha: float, x0: int) -> np.ndarray:
    """A plume rising and widening from a point on the ground (alpha map)."""
    alpha = np.zeros((H, W), np.float32)
    if t_s < start_s:
        return alpha
    age = t_s - start_s
    height = min(20 + 8 * age, 150)
    width = min(6 + 2 * age, 40)
    base_y = 200
    centre = (x0 + int(0.5 * age), int(base_y - height / 2))
    cv2.ellipse(alpha, centre, (int(width), int(height / 2)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3.0)
    return peak_alpha * alpha


def run_smoke(frames: list[tuple[float, np.ndarray]]) -> list[tuple[float, bool]]:
    detector = SmokeDetector()
    return [(t, detector.update(img, t).found) for t, img in frames]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("peak_alpha", [0.1, 0.2, 0.3])
def test_smoke_over_reed_is_found_within_ten_seconds(seed: int, peak_alpha: float) -> None:
    scene = Scene(seed)
    grey = np.array([190.0, 190.0, 195.0])
    start_s = 5.0
    frames = []
    for i in range(int(20 * FPS)):
        t = i / FPS
        a = plume_alpha(t, start_s, peak_alpha, 150)[..., None]
        frames.append((t, scene.frame((1 - a) * scene.background + a * grey)))
    found_at = [t for t, found in run_smoke(frames) if found]
    assert found_at, f"smoke of alpha {peak_alpha} never found"
    assert start_s < found_at[0] <= start_s + 10.0


def test_smoke_box_lies_on_the_plume() -> None:
    scene = Scene(7)
    grey = np.array([190.0, 190.0, 195.0])
    detector = SmokeDetector()
    cue = None
    for i in range(int(15 * FPS)):
        t = i / FPS
        a = plume_alpha(t, 2.0, 0.25, 100)[..., None]
        cue = detector.update(scene.frame((1 - a) * scene.background + a * grey), t)
    assert cue is not None and cue.found and cue.bbox_px is not None
    x0, y0, x1, y1 = cue.bbox_px
    assert x0 <= 110 and x1 >= 100, cue.bbox_px
    assert y1 >= 150 and y0 <= 180, cue.bbox_px
    assert cue.energy_ratio < 0.95


def test_fog_rolling_in_is_not_smoke() -> None:
    scene = Scene(4)
    fog = np.array([200.0, 200.0, 200.0])
    frames = []
    for i in range(int(30 * FPS)):
        t = i / FPS
        a = float(np.clip((t - 5.0) / 3.0, 0.0, 0.5))  # thick fog within three seconds
        frames.append((t, scene.frame((1 - a) * scene.background + a * fog)))
    assert not any(found for _, found in run_smoke(frames))


def test_slow_haze_is_not_smoke() -> None:
    scene = Scene(5)
    haze = np.array([180.0, 185.0, 190.0])
    frames = []
    for i in range(int(240 * FPS / 4)):  # four minutes at 1.25 Hz
        t = i * 4 / FPS
        a = 0.4 * t / 240.0
        frames.append((t, scene.frame((1 - a) * scene.background + a * haze)))
    assert not any(found for _, found in run_smoke(frames))


def test_cloud_shadow_crossing_is_not_smoke() -> None:
    scene = Scene(6)
    frames = []
    xx = np.arange(W)[None, :]
    for i in range(int(30 * FPS)):
        t = i / FPS
        edge = -200 + 20 * t  # a soft-edged shadow sweeps across at 20 px/s
        shade = 1.0 - 0.45 / (1.0 + np.exp(-(edge - xx) / 15.0))
        frames.append((t, scene.frame(scene.background * shade[..., None])))
    assert not any(found for _, found in run_smoke(frames))


def test_a_quiet_view_gives_no_smoke() -> None:
    scene = Scene(10)
    frames = [(i / FPS, scene.frame(scene.background)) for i in range(int(60 * FPS))]
    assert not any(found for _, found in run_smoke(frames))


def test_an_object_parked_in_view_is_not_smoke() -> None:
    """A dark, coloured object blocks the texture: it adds chroma and is not grey."""
    scene = Scene(8)
    frames = []
    for i in range(int(20 * FPS)):
        t = i / FPS
        img = scene.background.copy()
        if t > 5.0:
            img[150:190, 100:160] = (30.0, 40.0, 160.0)  # a red van, flat paint
        frames.append((t, scene.frame(img)))
    assert not any(found for _, found in run_smoke(frames))


def test_block_features_reject_a_frame_smaller_than_a_block() -> None:
    with pytest.raises(ValueError, match="smaller than one 8-pixel block"):
        block_features(np.zeros((4, 4, 3), np.uint8), 8)


def test_shadow_leaves_the_normalised_energy_unchanged() -> None:
    img = reed_texture(9)
    e_sun, _, _ = block_features(img.astype(np.uint8), 8)
    e_shade, _, _ = block_features((img * 0.5).astype(np.uint8), 8)
    assert np.allclose(e_shade, e_sun, rtol=0.1, atol=0.01)


# --------------------------------------------------------------------------- flame

NIGHT_FPS = 9.0


def night_scene(rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.normal(12.0, 3.0, (H, W, 3)), 0, 255)


def run_flame(frames: list[tuple[float, np.ndarray]]) -> list[bool]:
    detector = FlameDetector()
    return [detector.update(img, t).found for t, img in frames]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flickering_flame_at_night_is_found(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(int(6 * NIGHT_FPS)):
        t = i / NIGHT_FPS
        img = night_scene(rng)
        scale = rng.uniform(0.4, 1.6)  # flame pulsation, ~1 Hz and faster
        axes = (max(1, int(3 * scale)), max(1, int(5 * scale)))
        cv2.ellipse(img, (160, 180), axes, 0, 0, 360, (30.0, 150.0, 250.0), -1)
        cv2.ellipse(img, (160, 181), (1, 2), 0, 0, 360, (120.0, 220.0, 255.0), -1)
        frames.append((t, np.clip(img, 0, 255).astype(np.uint8)))
    results = run_flame(frames)
    assert any(results[-10:]), "a flickering flame was not found"


def test_moving_headlights_are_not_a_flame() -> None:
    rng = np.random.default_rng(11)
    frames = []
    for i in range(int(8 * NIGHT_FPS)):
        t = i / NIGHT_FPS
        img = night_scene(rng)
        x = 40 + int(4 * i)  # a car on the dyke road, ~36 px/s
        for dx in (0, 14):
            cv2.circle(img, (x + dx, 170), 3, (200.0, 235.0, 255.0), -1)  # halogen
        frames.append((t, np.clip(img, 0, 255).astype(np.uint8)))
    assert not any(run_flame(frames))


def test_parked_headlights_are_not_a_flame() -> None:
    rng = np.random.default_rng(12)
    frames = []
    for i in range(int(8 * NIGHT_FPS)):
        t = i / NIGHT_FPS
        img = night_scene(rng)
        for dx in (0, 14):
            cv2.circle(img, (120 + dx, 170), 3, (200.0, 235.0, 255.0), -1)
        frames.append((t, np.clip(img, 0, 255).astype(np.uint8)))
    assert not any(run_flame(frames))


def test_white_light_has_no_fire_colour() -> None:
    white = np.full((4, 4, 3), 250, np.uint8)
    orange = np.zeros((4, 4, 3), np.uint8)
    orange[...] = (30, 150, 250)
    settings = FlameSettings()
    assert not fire_colour_mask(white, settings).any()
    assert fire_colour_mask(orange, settings).all()
