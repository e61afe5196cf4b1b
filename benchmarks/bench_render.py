"""Render speed of the simulated world at 640 × 512, against a plain numpy pass over the same frame."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from detectors.radiometry import band_radiance_table
from simulators.scenario import load_scenario
from simulators.world import SimWorld

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "traffic-noon.yaml"


def numpy_baseline(shape: tuple[int, int], n: int) -> float:
    """Frames/s of the minimal per-frame work in plain numpy: temperatures → radiance →
    atmosphere → Kelvin → noise, with np.interp tables and no blur, objects or glint."""
    temps, rad = band_radiance_table()
    rng = np.random.default_rng(0)
    surf = (290.0 + rng.standard_normal(shape)).astype(np.float32)
    tau = np.full(shape, 0.5, dtype=np.float32)
    path = np.full(shape, 25.0, dtype=np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        radiance = np.interp(surf, temps, rad)
        obs = tau * radiance + path
        kelvin = np.interp(obs, rad, temps).astype(np.float32)
        kelvin += np.random.default_rng(i).standard_normal(shape, dtype=np.float32) * np.float32(
            0.05
        )
    return n / (time.perf_counter() - t0)


def main(n_frames: int = 60) -> int:
    world = SimWorld(load_scenario(SCENARIO))
    pan, tilt = world.main_event_pose()
    t_start = world.scenario.start_unix
    t0 = time.perf_counter()
    world.render(pan, tilt, None, t_start)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n_frames):
        world.render(pan, tilt, None, t_start + 1.0 + i / 9.0)
    fps = n_frames / (time.perf_counter() - t0)
    base = numpy_baseline((world.camera.height_px, world.camera.width_px), n_frames)
    print(f"scenario {SCENARIO.name}, 640x512, {n_frames} frames, one pose")
    print(f"first frame (pose precompute, JIT warm): {first_s * 1000:.0f} ms")
    print(f"render: {fps:.1f} frames/s  ({1000 / fps:.1f} ms/frame; target >= 10)")
    print(f"plain numpy minimal pass: {base:.1f} frames/s; render / baseline = {fps / base:.2f}")
    return 0 if fps >= 10.0 else 1


if __name__ == "__main__":
    sys.exit(main())
