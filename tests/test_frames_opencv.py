"""The OpenCV frame source on small video files written with cv2.VideoWriter."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.base import DriverState, FrameSource
from drivers.frames_opencv import Driver, Settings

pytestmark = pytest.mark.timeout(30)


class NoSecrets:
    def read(self, name: str) -> str:
        raise AssertionError(f"the frame source needs no secret, asked for {name}")


def write_mjpg(path: Path, frames: int = 12, size: tuple[int, int] = (80, 64)) -> None:
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((height, width, 3), 20 * i % 256, np.uint8)
        cv2.rectangle(image, (10, 10), (30, 30), (255, 255, 255), -1)
        writer.write(image)
    writer.release()


def write_counts(path: Path, counts: list[np.ndarray]) -> None:
    height, width = counts[0].shape
    writer = cv2.VideoWriter(
        str(path),
        cv2.CAP_FFMPEG,
        cv2.VideoWriter_fourcc(*"FFV1"),
        50.0,
        (width, height),
        [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0],
    )
    assert writer.isOpened()
    for c in counts:
        writer.write(c)
    writer.release()


def make(source: Path | str, **overrides: object) -> Driver:
    fields: dict[str, object] = {"type": "opencv", "source": str(source), "reconnect_max_s": 0.2}
    fields.update(overrides)
    return Driver(Settings.model_validate(fields), NoSecrets())


def test_agc_video_file_gives_grey_non_radiometric_frames_in_order(tmp_path: Path) -> None:
    video = tmp_path / "thermal.avi"
    write_mjpg(video)
    with make(video) as source:
        assert isinstance(source, FrameSource)
        frames = [source.read(timeout_s=5.0) for _ in range(12)]
    assert all(f is not None for f in frames)
    seqs = [f.seq for f in frames if f is not None]
    assert seqs == sorted(seqs) and len(set(seqs)) == 12
    first = frames[0]
    assert first is not None
    assert first.image.dtype == np.uint8 and first.image.shape == (64, 80)
    assert not first.radiometric
    assert first.image[20, 20] > 200, "the white square survives MJPG"
    assert abs(first.t - time.time()) < 10.0


def test_colour_for_a_visible_camera(tmp_path: Path) -> None:
    video = tmp_path / "visible.avi"
    write_mjpg(video, frames=3)
    with make(video, color=True, kind="visible") as source:
        frame = source.read(timeout_s=5.0)
    assert frame is not None and frame.image.shape == (64, 80, 3)


def test_radiometric_counts_are_calibrated_to_kelvin(tmp_path: Path) -> None:
    counts = [np.full((48, 64), 30000 + 100 * i, np.uint16) for i in range(4)]
    counts[0][5:9, 5:9] = 40000
    video = tmp_path / "counts.mkv"
    write_counts(video, counts)
    with make(video, radiometric=True, counts_gain_k=0.01, counts_offset_k=-10.0) as source:
        frame = source.read(timeout_s=5.0)
    assert frame is not None and frame.radiometric
    assert frame.image.dtype == np.float32
    assert frame.image[0, 0] == pytest.approx(290.0)
    assert frame.image[6, 6] == pytest.approx(390.0)


def test_radiometric_setting_on_8_bit_video_is_reported(tmp_path: Path) -> None:
    video = tmp_path / "agc.avi"
    write_mjpg(video, frames=3)
    with make(video, radiometric=True) as source:
        assert source.read(timeout_s=0.5) is None
        health = source.health()
    assert health.counters.get("not_radiometric", 0) >= 1
    assert "thermal.radiometric is true" in (health.last_error or "")


def test_missing_source_is_reported_then_found(tmp_path: Path) -> None:
    video = tmp_path / "late.avi"
    with make(video) as source:
        assert source.read(timeout_s=0.3) is None
        health = source.health()
        assert health.state is DriverState.FAILED
        assert f"thermal (thermal.source={video}): cannot open the stream: no such file" in (
            health.last_error or ""
        )
        write_mjpg(video, frames=3)
        assert source.read(timeout_s=5.0) is not None
        assert source.health().state is DriverState.OK


def test_end_of_file_reopens_and_a_slow_consumer_drops_the_oldest(tmp_path: Path) -> None:
    video = tmp_path / "short.avi"
    write_mjpg(video, frames=6)
    with make(video, queue_frames=2, pace_files=False) as source:
        deadline = time.monotonic() + 10.0
        while source.health().counters.get("reconnects", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        health = source.health()
        assert health.counters["stream_ends"] >= 1
        assert health.counters["reconnects"] >= 1
        assert health.counters["dropped"] >= 4
        assert source.read(timeout_s=1.0) is not None


def test_a_visible_camera_is_opened_only_while_its_frames_are_wanted(tmp_path: Path) -> None:
    video = tmp_path / "visible.avi"
    write_mjpg(video, frames=600)  # 12 s at 50 fps: the file does not end during the test
    with make(video, kind="visible", color=True) as source:
        assert source.settings.reads_on_demand
        deadline = time.monotonic() + 20.0
        while source.health().state is not DriverState.IDLE:  # the opening probe ends
            assert time.monotonic() < deadline
            time.sleep(0.02)
        probed = source.health().counters["frames"]
        leftover = source.newest()  # what the probe left: dropped
        while leftover is not None:
            leftover = source.newest()
        assert source.newest() is None and source.health().counters["frames"] == probed
        source.want(0.5)
        frame = source.read(timeout_s=5.0)
        assert frame is not None and frame.image.ndim == 3
        while source.health().state is not DriverState.IDLE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        health = source.health()
        assert health.counters["frames"] > probed
        assert health.last_error is None and health.counters.get("reconnects", 0) == 0
