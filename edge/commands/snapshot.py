"""`towerwatch snapshot`: a PNG of what the tower sees now, for centring landmarks and checks.

Thermal (colour-mapped, with a colour bar and its range in °C), visible beside it; over
the thermal image a centre cross, pixel ticks every 100 px and the true bearing of every
whole degree along the top edge, from the head's pose and the calibration. The pose
comes from the running daemon when there is one; the frames are read from the camera
streams (RTSP and the simulator's stream serve several readers).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt

from edge.cli_support import (
    EXIT_FAILURE,
    config_options,
    echo_json,
    fail,
    json_option,
    load_or_exit,
    tool_logging,
)
from edge.commands.status import runtime_dir_option
from edge.config import TowerConfig

# Thermal sensors are enlarged by a whole factor until the panel is at least this tall.
MIN_PANEL_HEIGHT_PX = 480
BAR_WIDTH_PX = 110
BAR_TICKS = 6
PIXEL_TICK_PX = 100
OVERLAY_BGR = (0, 255, 0)  # pure green: absent from the inferno colour map
TEXT_BGR = (255, 255, 255)


def _read_frame(cfg: TowerConfig, section: str, timeout_s: float) -> Any:
    from drivers.base import DriverError
    from drivers.registry import driver_module
    from edge.secrets import FileSecretStore

    settings: Any = getattr(cfg, section)
    driver = driver_module(section, settings.type).Driver(
        settings, FileSecretStore.from_config(cfg)
    )
    try:
        driver.open()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = driver.read(max(deadline - time.monotonic(), 0.01))
            if frame is not None and not frame.shutter:
                return frame
        return None
    except DriverError as exc:
        fail(str(exc), EXIT_FAILURE)
    finally:
        driver.close()


def render(
    thermal_k: npt.NDArray[np.floating],
    visible_bgr: npt.NDArray[np.uint8] | None,
    bearings: list[tuple[float, int]],
    caption: str,
) -> tuple[npt.NDArray[np.uint8], float, float]:
    """The snapshot image and the (low, high) K of its colour bar.

    ``bearings`` are (bearing in degrees, thermal column) pairs to mark on the top edge.
    """
    import cv2

    from edge.snapshot import thermal_to_bgr

    colour, lo_k, hi_k = thermal_to_bgr(thermal_k)
    h, w = thermal_k.shape
    scale = max(1, math.ceil(MIN_PANEL_HEIGHT_PX / h))
    panel = cv2.resize(colour, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    cx, cy = (w * scale) // 2, (h * scale) // 2
    cv2.line(panel, (cx - 20, cy), (cx + 20, cy), OVERLAY_BGR, 1)
    cv2.line(panel, (cx, cy - 20), (cx, cy + 20), OVERLAY_BGR, 1)
    for x in range(0, w, PIXEL_TICK_PX):
        cv2.line(panel, (x * scale, h * scale - 8), (x * scale, h * scale - 1), OVERLAY_BGR, 1)
        cv2.putText(panel, f"{x}", (x * scale + 2, h * scale - 10), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, OVERLAY_BGR, 1)  # fmt: skip
    for y in range(0, h, PIXEL_TICK_PX):
        cv2.line(panel, (0, y * scale), (8, y * scale), OVERLAY_BGR, 1)
        cv2.putText(panel, f"{y}", (10, y * scale + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    OVERLAY_BGR, 1)  # fmt: skip
    for bearing, column in bearings:
        x = int(column * scale)
        cv2.line(panel, (x, 0), (x, 10), OVERLAY_BGR, 1)
        cv2.putText(panel, f"{bearing:.0f}", (x + 2, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    OVERLAY_BGR, 1)  # fmt: skip
    bar = np.zeros((h * scale, BAR_WIDTH_PX, 3), dtype=np.uint8)
    ramp = np.linspace(255, 0, h * scale).astype(np.uint8)[:, None]
    bar[:, 8:30] = cv2.applyColorMap(np.repeat(ramp, 22, axis=1), cv2.COLORMAP_INFERNO)
    for i in range(BAR_TICKS):
        y = int(i * (h * scale - 1) / (BAR_TICKS - 1))
        kelvin = hi_k - i * (hi_k - lo_k) / (BAR_TICKS - 1)
        cv2.putText(bar, f"{kelvin - 273.15:.1f} C", (34, min(h * scale - 4, max(12, y + 4))),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, TEXT_BGR, 1)  # fmt: skip
    parts = [panel, bar]
    if visible_bgr is not None:
        vis = (
            visible_bgr if visible_bgr.ndim == 3 else cv2.cvtColor(visible_bgr, cv2.COLOR_GRAY2BGR)
        )
        vh, vw = vis.shape[:2]
        parts.append(cv2.resize(vis, (max(1, round(vw * h * scale / vh)), h * scale)))
    image = np.hstack(parts)
    strip = np.zeros((28, image.shape[1], 3), dtype=np.uint8)
    cv2.putText(strip, caption, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT_BGR, 1)
    return np.asarray(np.vstack([image, strip]), dtype=np.uint8), lo_k, hi_k


def bearing_ticks(cfg: TowerConfig, pan_deg: float, tilt_deg: float, width_px: int, height_px: int
                  ) -> list[tuple[float, int]]:  # fmt: skip
    """(whole-degree bearing, thermal column) along the image's middle row."""
    from edge.commands.calibrate import thermal_lens
    from edge.geolocation import Pose, pixel_bearing_elevation

    lens = thermal_lens(cfg)
    roll = float(cfg.ptz.calibration.roll_deg)  # type: ignore[attr-defined]
    pose = Pose(pan_deg, tilt_deg, roll)
    row = (height_px - 1) / 2.0
    columns = np.arange(width_px)
    bearings = np.array([pixel_bearing_elevation(float(u), row, pose, lens)[0] for u in columns])
    unwrapped = np.degrees(np.unwrap(np.radians(bearings)))
    ticks = []
    for whole in range(math.ceil(unwrapped.min()), math.floor(unwrapped.max()) + 1):
        column = int(np.argmin(np.abs(unwrapped - whole)))
        ticks.append((whole % 360.0, column))
    return ticks


@click.command("snapshot")
@config_options
@json_option
@runtime_dir_option
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write (default: snapshot-<UTC time>.png here).",
)
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.5, 60.0), default=10.0,
              show_default=True, help="How long to wait for a frame, in seconds.")  # fmt: skip
def command(
    config: str,
    sets: tuple[str, ...],
    as_json: bool,
    runtime_dir: Path | None,
    output: Path | None,
    timeout_s: float,
) -> None:
    """Write a PNG: thermal with colour bar, bearings and pixel ticks, and visible."""
    import cv2

    from edge.commands.ptz import HeadAccess

    tool_logging()
    cfg = load_or_exit(config, sets)
    head = HeadAccess(cfg, runtime_dir)
    try:
        position = head.where()
    finally:
        head.close()
    thermal = _read_frame(cfg, "thermal", timeout_s)
    if thermal is None:
        fail(f"thermal: no frame in {timeout_s:g} s", EXIT_FAILURE)
    if not thermal.radiometric:
        fail("thermal: the stream is not radiometric; no temperatures to show", EXIT_FAILURE)
    visible = _read_frame(cfg, "visible", timeout_s) if cfg.visible is not None else None
    h, w = thermal.image.shape
    ticks = bearing_ticks(cfg, position["pan_deg"], position["tilt_deg"], w, h)
    stamp = dt.datetime.now(dt.UTC)
    caption = (
        f"{cfg.tower.id}  {stamp:%Y-%m-%d %H:%M:%S}Z  bearing {position['pan_deg']:.2f}  "
        f"elevation {position['tilt_deg']:+.2f}  hfov {position['hfov_deg']:.2f}"
    )
    image, lo_k, hi_k = render(
        thermal.image, None if visible is None else visible.image, ticks, caption
    )
    path = output or Path(f"snapshot-{stamp:%Y%m%dT%H%M%SZ}.png")
    if not cv2.imwrite(str(path), image):
        fail(f"{path}: cannot write the PNG", EXIT_FAILURE)
    if as_json:
        echo_json({"path": str(path), "colour_bar_k": [lo_k, hi_k], "pose": position,
                   "width_px": int(image.shape[1]), "height_px": int(image.shape[0])})  # fmt: skip
    else:
        click.echo(
            f"wrote {path}: colour bar {lo_k - 273.15:.1f} to {hi_k - 273.15:.1f} °C, "
            f"bearing {position['pan_deg']:.2f}°"
        )
