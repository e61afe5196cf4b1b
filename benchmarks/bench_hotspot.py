"""Speed of the hotspot kernel (numba) against two OpenCV pipelines, the memory floor and the whole pipeline.

The dense reference computes every pixel's statistics; the prefiltered one is what a
careful engineer would write for speed (an exact local-minimum prefilter, one set of
integral images, the annulus statistics only at the surviving pixels). Both must give
the kernel's candidates bit for bit. Frames: synthetic patrol frames (roofs, a sunlit
road, sub-pixel fires, dead pixels), and noon frames rendered by the simulated world from
the traffic-noon scenario (its roads and vehicles, unmasked sky).
"""

from __future__ import annotations

import argparse
import calendar
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numba
import numpy as np

from detectors import radiometry
from detectors.hotspot import HotspotParams, detect_hotspots, radiance_lut
from detectors.hotspot_reference import detect_hotspots_prefiltered, detect_hotspots_reference
from detectors.pipeline import DetectionParams, FramePipeline

H, W = 512, 640
NOON_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "traffic-noon.yaml"
FRAME_BUDGET_50HZ_MS = 20.0


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 640×512 patrol frame: sky masked above the horizon, textured ground, roads, roofs, fires."""
    rng = np.random.default_rng(seed)
    rows = np.arange(H, dtype=np.float32)[:, None]
    ground = 288.0 + 0.01 * rows + rng.normal(0.0, 0.8, (H, W)).astype(np.float32)
    f = ground.astype(np.float32)
    f[:60, :] = 255.0 + rng.normal(0.0, 1.0, (60, W)).astype(np.float32)  # sky
    f[300:306, :] += 12.0  # a sunlit road across the view
    for _ in range(6):  # roofs
        i, j = rng.integers(80, H - 20), rng.integers(0, W - 30)
        f[i : i + 12, j : j + 25] += rng.uniform(10, 35)
    for _ in range(8):  # sub-pixel fires and hot rocks
        i, j = rng.integers(80, H - 2), rng.integers(2, W - 2)
        f[i, j] += rng.uniform(8, 120)
    f[rng.integers(0, H, 20), rng.integers(0, W, 20)] = np.nan  # dead pixels
    mask = np.ones((H, W), dtype=bool)
    mask[:62, :] = False  # the horizon line of this preset
    return f, mask


def noon_frames(count: int) -> list[tuple[np.ndarray, None]]:
    """The simulated world at noon, a few poses along the traffic-noon scene, no mask."""
    from simulators.scenario import load_scenario
    from simulators.world import SimWorld

    scenario = load_scenario(NOON_SCENARIO)
    world = SimWorld(scenario)
    t0 = calendar.timegm(time.strptime("2024-06-12T12:00:00Z", "%Y-%m-%dT%H:%M:%SZ"))
    frames = []
    for k in range(count):
        pan = 90.0 + 6.0 * (k - count // 2)
        kelvin, _, _ = world.render(pan, -0.35 - 0.3 * (k % 3), None, t0 + 7.0 * k)
        frames.append((kelvin, None))
    return frames


def time_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of one call in ms (the median resists another tenant's bursts)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def same_result(a: object, b: object) -> bool:
    return all(
        np.array_equal(getattr(a, name), getattr(b, name), equal_nan=name.startswith("bg_"))
        for name in ("codes", "rows", "cols", "kinds", "bg_mean_k", "bg_std_k", "bg_count")
    )


def measure(
    name: str, frames: Sequence[tuple[np.ndarray, np.ndarray | None]], params: HotspotParams,
    lut: np.ndarray, repeat: int,
) -> bool:  # fmt: skip
    """Time the kernel, both references and the memory floor on frames; print one block."""
    same, n_candidates = 0, 0
    kernel, dense, prefiltered, floor = [], [], [], []
    for f, mask in frames:
        a = detect_hotspots(f, params, lut, mask)
        same += int(
            same_result(a, detect_hotspots_reference(f, params, lut, mask))
            and same_result(a, detect_hotspots_prefiltered(f, params, lut, mask))
        )
        n_candidates += len(a)
        kernel.append(time_ms(functools.partial(detect_hotspots, f, params, lut, mask), repeat))
        dense.append(
            time_ms(
                functools.partial(detect_hotspots_reference, f, params, lut, mask),
                max(repeat // 10, 3),
            )
        )
        prefiltered.append(
            time_ms(functools.partial(detect_hotspots_prefiltered, f, params, lut, mask), repeat)
        )
        floor.append(time_ms(functools.partial(np.sum, f, dtype=np.float32), repeat))
    k_ms, d_ms, p_ms, f_ms = (float(np.median(x)) for x in (kernel, dense, prefiltered, floor))
    print(f"-- {name}: {len(frames)} × {W}×{H} float32 K")
    print(f"candidates per frame (mean):         {n_candidates / len(frames):8.1f}")
    print(f"same candidates, kernel vs both:     {same}/{len(frames)} frames")
    print(f"memory floor (one pass, sum):        {f_ms:8.3f} ms/frame")
    print(f"numba contextual kernel:             {k_ms:8.3f} ms/frame  (target < 1 ms)")
    print(f"OpenCV dense reference:              {d_ms:8.3f} ms/frame")
    print(f"OpenCV prefiltered reference:        {p_ms:8.3f} ms/frame")
    print(f"dense reference / kernel:            {d_ms / k_ms:8.1f} ×")
    print(f"prefiltered reference / kernel:      {p_ms / k_ms:8.1f} ×  (target ≥ 3)")
    print(f"kernel / memory floor:               {k_ms / f_ms:8.1f} ×  (target ≤ 6)")
    return same == len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=8, help="distinct frames")
    parser.add_argument("--noon-frames", type=int, default=4, help="simulated noon frames")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per frame")
    parser.add_argument("--threads", type=int, default=1, help="numba threads (1 = one core)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)

    params = HotspotParams()
    lut = radiance_lut(radiometry.band_radiance, params)
    frames = [scene(s) for s in range(args.frames)]
    detect_hotspots(*frames[0][:1], params, lut, frames[0][1])  # compile / load the cache
    print(f"numba threads: {args.threads}")
    agree = measure("synthetic patrol frames", frames, params, lut, args.repeat)
    if args.noon_frames > 0:
        noon = noon_frames(args.noon_frames)
        agree &= measure("noon frames of the simulated world (traffic-noon)", noon, params, lut, args.repeat)

    pipe = FramePipeline(DetectionParams(), W, H)
    sky = ~frames[0][1]
    t = 1.7e9
    pipeline_times = []
    for k in range(args.frames * 10):
        f = frames[k % len(frames)][0]
        t0 = time.perf_counter()
        pipe.process(
            f, t, 90.0, -1.0, 6.0, sun_az_deg=180.0, sun_el_deg=40.0, is_day=True, sky_mask=sky
        )
        pipeline_times.append((time.perf_counter() - t0) * 1e3)
        t += 0.1
    pipeline_ms = float(np.median(pipeline_times[len(frames) :]))
    print(
        f"whole pipeline (kernel+blobs+tracks+suppression): {pipeline_ms:8.3f} ms/frame "
        f"= {100 * pipeline_ms / FRAME_BUDGET_50HZ_MS:.1f} % of a 50 Hz frame"
    )
    if not agree:
        raise SystemExit("numba kernel and a reference disagree")


if __name__ == "__main__":
    main()
