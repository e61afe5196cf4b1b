"""Alarm snapshot: layout, the hotspot mark on both panels, the stretch, and saving."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.snapshot import (
    NO_VISIBLE_GREY,
    TEXT_STRIP_HEIGHT_PX,
    prune_snapshots,
    render_snapshot,
    save_snapshot,
    thermal_to_bgr,
    visible_label,
)

T0 = 1_720_000_000.0
FIRE_XY = (400, 300)


def thermal_scene(width: int = 640, height: int = 512) -> npt.NDArray[np.float32]:
    """Ground at 290-300 K with a warm band, and a 3 × 3 px fire at 900 K."""
    rng = np.random.default_rng(3)
    rows = np.linspace(290.0, 300.0, height)[:, None]
    scene = rows + rng.normal(0.0, 0.5, (height, width))
    scene[height // 4 : height // 4 + 10, :] += 6.0
    x, y = FIRE_XY[0] * width // 640, FIRE_XY[1] * height // 512
    scene[y - 1 : y + 2, x - 1 : x + 2] = 900.0
    return scene.astype(np.float32)


def visible_scene(width: int = 1280, height: int = 720) -> npt.NDArray[np.uint8]:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :, 0] = np.linspace(60, 200, width, dtype=np.uint8)[None, :]  # blue sky to the east
    image[:, :, 1] = 110
    image[:, :, 2] = np.linspace(40, 120, height, dtype=np.uint8)[:, None]
    return image


def render(**overrides: object) -> npt.NDArray[np.uint8]:
    args: dict[str, object] = {
        "thermal_kelvin": thermal_scene(),
        "visible_bgr": visible_scene(),
        "hotspot_xy": (float(FIRE_XY[0]), float(FIRE_XY[1])),
        "bearing_deg": 45.0,
        "range_m": 10_000.0,
        "range_source": "lidar",
        "t_unix": T0,
        "tower_id": "tw-07",
        "alarm_id": "tw-07-20240703T094640Z-a1b2",
    }
    args.update(overrides)
    jpeg = render_snapshot(**args)  # type: ignore[arg-type]
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def is_mark(pixel: npt.NDArray[np.uint8]) -> bool:
    blue, green, red = (int(v) for v in pixel)
    return green > 180 and blue < 110 and red < 110


def test_thermal_and_visible_sit_side_by_side_above_the_text_strip() -> None:
    image = render()
    # Thermal keeps its 640 × 512; 1280 × 720 visible is brought to 512 px high.
    assert image.shape == (512 + TEXT_STRIP_HEIGHT_PX, 640 + 910, 3)


def test_the_hotspot_is_marked_on_the_thermal_panel() -> None:
    image = render()
    x, y = FIRE_XY
    radius = round(0.06 * 512)
    ring = [image[y, x + radius], image[y, x - radius], image[y - radius, x], image[y + radius, x]]
    assert all(is_mark(p) for p in ring)
    # The fire itself is left unpainted (bright in the colour map) and not green.
    assert not is_mark(image[y, x]) and image[y, x].astype(int).sum() > 500


def test_the_visible_panel_is_marked_at_the_same_relative_position() -> None:
    image = render()
    x_vis = 640 + round((FIRE_XY[0] + 0.5) / 640 * 910 - 0.5)
    y_vis = FIRE_XY[1]
    radius = round(0.06 * 512)
    assert is_mark(image[y_vis, x_vis + radius]) and is_mark(image[y_vis, x_vis - radius])
    assert is_mark(image[y_vis - radius, x_vis])
    # Nowhere else: the far corner of the visible panel is the scene.
    assert not is_mark(image[480, 640 + 30])


def test_without_a_visible_camera_a_grey_panel_says_so() -> None:
    image = render(visible_bgr=None)
    assert image.shape == (512 + TEXT_STRIP_HEIGHT_PX, 640 + round(512 * 4 / 3), 3)
    corner = image[20, 640 + 20].astype(int)
    assert np.all(np.abs(corner - NO_VISIBLE_GREY) <= 4)
    panel = image[:512, 640:]
    assert not np.any([is_mark(p) for p in panel[::4, ::4].reshape(-1, 3)])


def test_a_small_thermal_sensor_is_enlarged_to_a_readable_height() -> None:
    thermal = thermal_scene(160, 128)
    image = render(
        thermal_kelvin=thermal,
        hotspot_xy=(100.0, 75.0),
        visible_bgr=visible_scene(640, 480),
    )
    # 128 rows × 3 = 384 ≥ 360; visible 640 × 480 brought to 384 high is 512 wide.
    assert image.shape == (384 + TEXT_STRIP_HEIGHT_PX, 480 + 512, 3)
    radius = round(0.06 * 384)
    assert is_mark(image[75 * 3 + 1, 100 * 3 + 1 + radius])


def test_a_hot_fire_does_not_wash_out_the_scene() -> None:
    scene = thermal_scene()
    colour, lo_k, hi_k = thermal_to_bgr(scene)
    assert 289.0 < lo_k < 292.0 and 299.0 < hi_k < 310.0
    # The warm band still stands out from the ground around it.
    band = colour[128:138, :].astype(float).mean()
    ground = colour[100:110, :].astype(float).mean()
    assert band - ground > 30.0


def test_a_uniform_scene_is_not_blown_up_into_noise() -> None:
    flat = np.full((64, 80), 295.0, dtype=np.float32)
    flat[::2, ::2] += 0.05
    _, lo_k, hi_k = thermal_to_bgr(flat)
    assert hi_k - lo_k == pytest.approx(2.0)
    flat[0, 0] = np.nan
    colour, _, _ = thermal_to_bgr(flat)
    assert colour.shape == (64, 80, 3)


def test_a_hotspot_outside_the_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the 640 x 512 thermal frame"):
        render(hotspot_xy=(700.0, 10.0))


def test_a_bearing_only_alarm_renders_without_a_range() -> None:
    image = render(range_m=None, range_source="earth")
    assert image.shape[0] == 512 + TEXT_STRIP_HEIGHT_PX


def test_saving_writes_the_jpeg_under_the_alarm_id_and_seq(tmp_path: Path) -> None:
    jpeg = render_snapshot(
        thermal_scene(),
        None,
        (400.0, 300.0),
        bearing_deg=45.0,
        range_m=10_000.0,
        range_source="lidar",
        t_unix=T0,
        tower_id="tw-07",
        alarm_id="tw-07-20240703T094640Z-a1b2",
    )
    path = save_snapshot(jpeg, tmp_path / "snapshots", "tw-07-20240703T094640Z-a1b2", 3)

    assert path == tmp_path / "snapshots" / "tw-07-20240703T094640Z-a1b2-0003.jpg"
    assert path.read_bytes() == jpeg
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_an_alarm_id_that_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a safe file name"):
        save_snapshot(b"\xff\xd8\xff\xd9", tmp_path, "../etc/passwd", 1)


def test_a_bearing_only_fix_writes_its_range_interval() -> None:
    thermal = np.full((64, 80), 290.0, dtype=np.float32)
    thermal[32, 40] = 400.0
    vague = render_snapshot(
        thermal, None, (40.0, 32.0), bearing_deg=135.0, range_m=None, range_source="earth",
        t_unix=1_710_928_834.0, tower_id="t", alarm_id="t-1",
        range_interval_m=(6_600.0, 30_000.0),
    )  # fmt: skip
    unknown = render_snapshot(
        thermal, None, (40.0, 32.0), bearing_deg=135.0, range_m=None, range_source="earth",
        t_unix=1_710_928_834.0, tower_id="t", alarm_id="t-1",
    )  # fmt: skip
    assert vague != unknown  # the interval is written, not "range unknown"


def test_the_oldest_snapshots_are_pruned_beyond_the_cap(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots"
    for seq in range(1, 6):
        path = save_snapshot(b"\xff\xd8" + b"x" * 998, folder, "tw-07-20240703T094640Z-a1b2", seq)
        os.utime(path, (1_700_000_000 + seq, 1_700_000_000 + seq))
    assert prune_snapshots(folder, 3_000) == 2
    left = sorted(p.name for p in folder.glob("*.jpg"))
    assert left == [f"tw-07-20240703T094640Z-a1b2-{seq:04d}.jpg" for seq in (3, 4, 5)]
    assert prune_snapshots(folder, 3_000) == 0
    assert prune_snapshots(tmp_path / "none", 1) == 0


def test_the_visible_panel_says_what_the_flame_cue_saw_at_the_hotspot() -> None:
    seen = {"frames": 30, "flame": True, "flame_flicker": 0.242, "flame_drift_px": 1.5}
    assert visible_label(seen) == "visible: flame at the hotspot (flicker 0.24)"
    unseen = {"frames": 46, "flame": False, "flame_flicker": 0.0, "flame_drift_px": 0.0}
    assert visible_label(unseen) == "visible: no flame seen (46 frames)"
    assert visible_label(None) == "visible"  # the cue did not run (no visible frames)
    # the caption is drawn: the panel's label area differs between the two
    captioned = render(visible_evidence=seen)
    plain = render()
    width = captioned.shape[1]
    label = (slice(0, 30), slice(width // 2, width))
    assert np.abs(captioned[label].astype(int) - plain[label].astype(int)).max() > 100
