"""Alarm snapshot: thermal and visible side by side, hotspot marked, bearing/range/time written on."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.messages import iso_z

# Thermal sensors as small as 160 × 120 are enlarged by a whole factor (nearest
# neighbour, so pixels stay pixels) until the panel is at least this tall to read.
MIN_PANEL_HEIGHT_PX = 360
TEXT_STRIP_HEIGHT_PX = 60
JPEG_QUALITY = 90

# The stretch ignores the hottest 0.5 %: a fire a few pixels wide would otherwise
# take the whole colour range and leave the scene around it uniformly black.
STRETCH_LOW_PERCENTILE = 1.0
STRETCH_HIGH_PERCENTILE = 99.5
# A uniform scene (fog, a lens cap) is stretched over at least this span, so sensor
# noise is not blown up into a colourful pattern.
MIN_STRETCH_SPAN_K = 2.0

# Pure green is absent from the inferno colour map, so the mark never blends in.
MARK_BGR = (0, 255, 0)
MARK_RADIUS_FRACTION = 0.06
NO_VISIBLE_GREY = 96
TEXT_BGR = (255, 255, 255)

_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

UInt8Image = npt.NDArray[np.uint8]


def thermal_to_bgr(thermal_kelvin: npt.NDArray[np.floating]) -> tuple[UInt8Image, float, float]:
    """Inferno colour image of a Kelvin frame with a robust percentile stretch, and its (lo, hi) K."""
    finite = thermal_kelvin[np.isfinite(thermal_kelvin)]
    if finite.size == 0:
        lo_k, hi_k = 0.0, MIN_STRETCH_SPAN_K
    else:
        lo_k, hi_k = (
            float(v)
            for v in np.percentile(finite, [STRETCH_LOW_PERCENTILE, STRETCH_HIGH_PERCENTILE])
        )
    if hi_k - lo_k < MIN_STRETCH_SPAN_K:
        middle = (hi_k + lo_k) / 2.0
        lo_k, hi_k = middle - MIN_STRETCH_SPAN_K / 2.0, middle + MIN_STRETCH_SPAN_K / 2.0
    frame = np.nan_to_num(thermal_kelvin.astype(np.float64), nan=lo_k, posinf=hi_k, neginf=lo_k)
    scaled = np.clip((frame - lo_k) / (hi_k - lo_k) * 255.0, 0.0, 255.0).astype(np.uint8)
    colour = np.asarray(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), dtype=np.uint8)
    return colour, lo_k, hi_k


def _mark(image: UInt8Image, x_px: float, y_px: float) -> None:
    """A ring with a crosshair whose centre stays clear, so the hotspot itself remains visible."""
    height, width = image.shape[:2]
    radius = max(6, round(MARK_RADIUS_FRACTION * min(height, width)))
    thickness = max(1, radius // 8)
    centre = (round(x_px), round(y_px))
    cv2.circle(image, centre, radius, MARK_BGR, thickness, cv2.LINE_AA)
    gap, reach = radius // 2, radius + radius // 2
    cx, cy = centre
    for (x0, y0), (x1, y1) in (
        ((cx - reach, cy), (cx - gap, cy)),
        ((cx + gap, cy), (cx + reach, cy)),
        ((cx, cy - reach), (cx, cy - gap)),
        ((cx, cy + gap), (cx, cy + reach)),
    ):
        cv2.line(image, (x0, y0), (x1, y1), MARK_BGR, thickness, cv2.LINE_AA)


def _label(image: UInt8Image, text: str, origin: tuple[int, int], scale: float = 0.5) -> None:
    # A dark outline under the white text keeps it readable on a bright scene.
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_BGR, 1, cv2.LINE_AA)


def _visible_panel(visible_bgr: npt.NDArray[np.uint8] | None, height_px: int) -> UInt8Image:
    if visible_bgr is None:
        width_px = round(height_px * 4 / 3)
        panel = np.full((height_px, width_px, 3), NO_VISIBLE_GREY, dtype=np.uint8)
        text = "no visible camera"
        (text_w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
        cv2.putText(
            panel,
            text,
            ((width_px - text_w) // 2, height_px // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8,
            (200, 200, 200),
            2,
            cv2.LINE_AA,
        )
        return panel
    if visible_bgr.dtype != np.uint8:
        raise ValueError(f"visible frame must be uint8, got {visible_bgr.dtype}")
    if visible_bgr.ndim == 2:
        visible_bgr = np.asarray(cv2.cvtColor(visible_bgr, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if visible_bgr.ndim != 3 or visible_bgr.shape[2] != 3 or 0 in visible_bgr.shape:
        raise ValueError(f"visible frame must be (H, W, 3) BGR, got shape {visible_bgr.shape}")
    src_h, src_w = visible_bgr.shape[:2]
    width_px = max(1, round(src_w * height_px / src_h))
    interpolation = cv2.INTER_AREA if height_px < src_h else cv2.INTER_LINEAR
    resized = cv2.resize(visible_bgr, (width_px, height_px), interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8)


def visible_label(evidence: dict[str, Any] | None) -> str:
    """The visible panel's caption: what the flame cue saw at the hotspot, when it ran."""
    if not evidence or "flame" not in evidence:
        return "visible"
    if evidence["flame"]:
        return f"visible: flame at the hotspot (flicker {float(evidence['flame_flicker']):.2f})"
    return f"visible: no flame seen ({int(evidence.get('frames', 0))} frames)"


def render_snapshot(
    thermal_kelvin: npt.NDArray[np.floating],
    visible_bgr: npt.NDArray[np.uint8] | None,
    hotspot_xy: tuple[float, float],
    *,
    bearing_deg: float,
    range_m: float | None,
    range_source: str,
    t_unix: float,
    tower_id: str,
    alarm_id: str,
    range_interval_m: tuple[float | None, float | None] | None = None,
    visible_evidence: dict[str, Any] | None = None,
) -> bytes:
    """JPEG of the alarm: colour thermal left, visible right (same height), a text strip below.

    visible_evidence (the confirmation's visible cues) labels the visible panel with
    what the visible camera saw at the hotspot (visible_label).

    hotspot_xy is the (column, row) in the thermal frame; the visible frame is
    marked at the same relative position, as the two cameras share the head and
    are boresighted. range_m None means bearing-only and is written as such, with
    the range interval when one is given.
    """
    if thermal_kelvin.ndim != 2 or 0 in thermal_kelvin.shape:
        raise ValueError(f"thermal frame must be (H, W) Kelvin, got shape {thermal_kelvin.shape}")
    therm_h, therm_w = thermal_kelvin.shape
    x_px, y_px = hotspot_xy
    if not (0.0 <= x_px <= therm_w and 0.0 <= y_px <= therm_h):
        raise ValueError(
            f"hotspot ({x_px}, {y_px}) lies outside the {therm_w} x {therm_h} thermal frame"
        )

    thermal, lo_k, hi_k = thermal_to_bgr(thermal_kelvin)
    scale = max(1, math.ceil(MIN_PANEL_HEIGHT_PX / therm_h))
    if scale > 1:
        enlarged = cv2.resize(
            thermal, (therm_w * scale, therm_h * scale), interpolation=cv2.INTER_NEAREST
        )
        thermal = np.asarray(enlarged, dtype=np.uint8)
    panel_h = therm_h * scale
    # Pixel centres: column x covers [x, x + 1), drawn at its centre after scaling.
    _mark(thermal, (x_px + 0.5) * scale - 0.5, (y_px + 0.5) * scale - 0.5)
    _label(thermal, f"thermal {lo_k:.1f}-{hi_k:.1f} K", (8, 20))

    visible = _visible_panel(visible_bgr, panel_h)
    if visible_bgr is not None:
        vis_h, vis_w = visible.shape[:2]
        _mark(visible, (x_px + 0.5) / therm_w * vis_w - 0.5, (y_px + 0.5) / therm_h * vis_h - 0.5)
        _label(visible, visible_label(visible_evidence), (8, 20))

    panels = np.hstack([thermal, visible])
    strip = np.zeros((TEXT_STRIP_HEIGHT_PX, panels.shape[1], 3), dtype=np.uint8)
    low, high = range_interval_m or (None, None)
    if range_m is None and low is not None and high is not None:
        range_text = (
            f"bearing only, range {low / 1000.0:.1f}-{high / 1000.0:.1f} km ({range_source})"
        )
    elif range_m is None:
        range_text = f"range unknown, bearing only ({range_source})"
    else:
        range_text = f"range {range_m / 1000.0:.2f} km ({range_source})"
    _label(
        strip,
        f"bearing {bearing_deg % 360.0:06.2f} deg   {range_text}   {iso_z(t_unix)}",
        (8, 24),
        0.6,
    )
    _label(strip, f"tower {tower_id}   alarm {alarm_id}", (8, 50), 0.6)

    ok, encoded = cv2.imencode(
        ".jpg", np.vstack([panels, strip]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("the snapshot could not be encoded as JPEG")
    return encoded.tobytes()


def snapshot_path(directory: Path, alarm_id: str, seq: int) -> Path:
    """Where the snapshot of one alarm message is kept: `<alarm_id>-<seq>.jpg`."""
    if not _SAFE_NAME_RE.match(alarm_id):
        raise ValueError(f"alarm id {alarm_id!r} is not a safe file name")
    if seq < 1:
        raise ValueError(f"snapshot seq must be >= 1, got {seq}")
    return Path(directory) / f"{alarm_id}-{seq:04d}.jpg"


def save_snapshot(jpeg: bytes, directory: Path, alarm_id: str, seq: int) -> Path:
    """Write the JPEG atomically (temp file, fsync, rename) and return its path."""
    path = snapshot_path(directory, alarm_id, seq)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(jpeg)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def prune_snapshots(directory: Path, max_bytes: int) -> int:
    """Delete the oldest snapshots until the folder holds at most max_bytes; returns how many.

    Snapshots are evidence kept on the gateway for a while, not an archive: the hub has
    each one. Only our own `<alarm_id>-<seq>.jpg` files are considered.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    files = []
    for path in folder.glob("*.jpg"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        files.append((stat.st_mtime, path.name, stat.st_size, path))
    files.sort()
    total = sum(size for _, _, size, _ in files)
    removed = 0
    for _, _, size, path in files:
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed
