"""Speed of the hotspot kernel (numba) against the OpenCV reference, the memory floor and the whole pipeline."""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numba
import numpy as np

from detectors import radiometry
from detectors.hotspot import HotspotParams, detect_hotspots, radiance_lut
from detectors.hotspot_reference import detect_hotspots_reference
from detectors.pipeline import DetectionParams, FramePipeline

H, W = 512, 640
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


def time_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of one call in ms (the median resists another tenant's bursts)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=8, help="distinct frames")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per frame")
    parser.add_argument("--threads", type=int, default=1, help="numba threads (1 = one core)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)

    params = HotspotParams()
    lut = radiance_lut(radiometry.band_radiance, params)
    frames = [scene(s) for s in range(args.frames)]
    detect_hotspots(*frames[0][:1], params, lut, frames[0][1])  # compile / load the cache

    same = 0
    n_candidates = 0
    kernel, reference, floor = [], [], []
    for f, mask in frames:
        a = detect_hotspots(f, params, lut, mask)
        b = detect_hotspots_reference(f, params, lut, mask)
        same += int(np.array_equal(a.codes, b.codes))
        n_candidates += len(a)
        kernel.append(
            time_ms(functools.partial(detect_hotspots, f, params, lut, mask), args.repeat)
        )
        reference.append(
            time_ms(
                functools.partial(detect_hotspots_reference, f, params, lut, mask),
                max(args.repeat // 10, 3),
            )
        )
        floor.append(time_ms(functools.partial(np.sum, f, dtype=np.float32), args.repeat))

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

    k_ms, r_ms, f_ms = (
        float(np.median(kernel)),
        float(np.median(reference)),
        float(np.median(floor)),
    )
    print(f"frames: {args.frames} × {W}×{H} float32 K, numba threads: {args.threads}")
    print(f"candidates per frame (mean):         {n_candidates / args.frames:8.1f}")
    print(f"same candidates numba vs reference:  {same}/{args.frames} frames")
    print(f"memory floor (one pass, sum):        {f_ms:8.3f} ms/frame")
    print(f"numba contextual kernel:             {k_ms:8.3f} ms/frame  (target < 1 ms)")
    print(f"OpenCV/numpy reference:              {r_ms:8.3f} ms/frame")
    print(f"reference / kernel:                  {r_ms / k_ms:8.1f} ×")
    print(f"kernel / memory floor:               {k_ms / f_ms:8.1f} ×")
    print(
        f"whole pipeline (kernel+blobs+tracks+suppression): {pipeline_ms:8.3f} ms/frame "
        f"= {100 * pipeline_ms / FRAME_BUDGET_50HZ_MS:.1f} % of a 50 Hz frame"
    )
    if same != args.frames:
        raise SystemExit("numba kernel and reference disagree")


if __name__ == "__main__":
    main()
