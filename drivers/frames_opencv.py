"""OpenCV VideoCapture frame source (config ``type: opencv``): RTSP URL, video file or V4L2 device.

A reader thread owns the capture and pushes frames onto a bounded queue (the oldest
frame is dropped when the consumer falls behind: a fire watch wants the newest view).
A radiometric stream (16-bit counts, e.g. a V4L2 ``Y16`` thermal core or an FFV1 file)
is calibrated linearly to Kelvin, K = gain · counts + offset; anything else is 8-bit
AGC video (``Frame.radiometric=False``), grey for thermal, BGR when ``color`` is set.
The capture reopens with backoff when the source fails or ends (a file then replays).
Frame times are this host's UTC clock at capture: OpenCV does not expose the camera's.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Literal

import cv2
import numpy as np
import structlog
from pydantic import Field

from drivers.base import (
    Backoff,
    CameraStreamSettings,
    DriverHealth,
    DriverState,
    Frame,
    HealthTracker,
    NamedThread,
    NewestWinsQueue,
    SecretStore,
    StreamDemand,
)
from drivers.base import Driver as DriverBase

log = structlog.get_logger(__name__)


class Settings(CameraStreamSettings):
    """``thermal:`` or ``visible:`` section for an OpenCV-readable stream."""

    _camera_field = "kind"

    type: Literal["opencv"]
    source: str = Field(
        min_length=1,
        description="rtsp:// or http:// URL, a video file path, or a V4L2 device index/path",
    )
    radiometric: bool = Field(
        False, description="the stream carries 16-bit counts to calibrate to Kelvin"
    )
    counts_gain_k: float = Field(
        0.01, gt=0.0, le=10.0, description="Kelvin per count (radiometric streams)"
    )
    counts_offset_k: float = Field(
        0.0, ge=-1000.0, le=1000.0, description="Kelvin at zero counts (radiometric streams)"
    )
    color: bool = Field(False, description="keep BGR colour (a visible camera); else grey")
    queue_frames: int = Field(4, ge=1, le=256, description="frames buffered for the consumer")
    pace_files: bool = Field(
        True, description="deliver a file at its own frame rate, as a live camera would"
    )
    reconnect_max_s: float = Field(30.0, ge=0.1, le=600.0, description="longest reopen backoff")
    kind: Literal["thermal", "visible"] = Field(
        "thermal", description="config section this source serves (named in messages)"
    )


def _capture_target(source: str) -> int | str:
    """A bare number is a V4L2 device index; everything else OpenCV opens as given."""
    return int(source) if source.isdigit() else source


class Driver(DriverBase):
    """Implements drivers.base.FrameSource over cv2.VideoCapture."""

    def __init__(self, settings: Settings, secrets: SecretStore) -> None:
        self.settings = settings
        self._where = f"{settings.kind} ({settings.kind}.source={settings.source})"
        self._health = HealthTracker(settings.kind)
        self._queue: NewestWinsQueue[Frame] = NewestWinsQueue(
            settings.queue_frames, self._health, "frames", "dropped"
        )
        self._stop = threading.Event()
        self._demand = StreamDemand(settings.reads_on_demand, settings.probe_every_s)
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._last_reject: str | None = None

    def open(self) -> None:
        """Start the reader thread; returns at once whether or not the source opens."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._health.set_state(DriverState.CONNECTING)
        self._thread = NamedThread(
            target=self._run, name=f"frames-opencv-{self.settings.kind}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._demand.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._thread = None
        self._health.set_state(DriverState.CLOSED)

    def health(self) -> DriverHealth:
        return self._health.snapshot()

    def read(self, timeout_s: float) -> Frame | None:
        self._demand.want(timeout_s + StreamDemand.PROBE_HOLD_S)
        return self._queue.get(timeout_s)

    def newest(self) -> Frame | None:
        # A compressed stream must be decoded frame by frame to stay in step, so there is
        # nothing to save by decoding lazily here.
        return self._queue.take_newest()

    def want(self, hold_s: float) -> None:
        self._demand.want(hold_s)

    # ----------------------------------------------------------------- reader thread

    def _open_capture(self) -> cv2.VideoCapture | None:
        target = _capture_target(self.settings.source)
        params: list[int] = []
        if self.settings.radiometric:
            # Keep the 16-bit samples: OpenCV would otherwise convert them to 8-bit BGR.
            params = [cv2.CAP_PROP_CONVERT_RGB, 0]
        cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _run(self) -> None:
        backoff = Backoff(max_s=self.settings.reconnect_max_s)
        opened_before = False
        while self._demand.wait(self._stop):
            cap = self._open_capture()
            if cap is None:
                message = f"{self._where}: cannot open the stream"
                if isinstance(_capture_target(self.settings.source), str) and not (
                    "://" in self.settings.source or os.path.exists(self.settings.source)
                ):
                    message += ": no such file or device"
                self._fail(message, "open_failures")
                self._stop.wait(backoff.next_delay())
                continue
            if opened_before:
                self._health.count("reconnects")
            opened_before = True
            self._health.set_state(DriverState.OK)
            delivered = self._pump(cap)
            cap.release()
            if delivered:
                backoff.reset()
            if not self._stop.is_set() and not self._demand.wanted():
                # left on purpose: no one wants frames now (an RTSP session is closed
                # rather than decoded for nothing)
                self._health.set_state(DriverState.IDLE)
                opened_before = False  # the next open is no reconnect after a failure
                continue
            if not self._stop.is_set():
                message = f"{self._where}: stream ended or broke off"
                if not delivered and self._last_reject:
                    # Every frame was unusable: the reason is what the operator must fix.
                    message = f"{message} without a usable frame: {self._last_reject}"
                self._fail(message, "stream_ends")
                self._stop.wait(backoff.next_delay())

    def _fail(self, message: str, counter: str) -> None:
        self._health.set_state(DriverState.FAILED)
        self._health.error(message, counter)
        log.warning("frames_source_failed", source=self.settings.source, error=message)

    def _pump(self, cap: cv2.VideoCapture) -> int:
        """Read until the source ends or we stop; returns the number of frames delivered."""
        is_file = os.path.isfile(self.settings.source)
        fps = cap.get(cv2.CAP_PROP_FPS) if is_file and self.settings.pace_files else 0.0
        period_s = 1.0 / fps if fps and 0.0 < fps < 1000.0 else 0.0
        next_due = time.monotonic()
        delivered = 0
        while not self._stop.is_set() and self._demand.wanted():
            ok, image = cap.read()
            if not ok or image is None:
                return delivered
            t = time.time()
            frame = self._convert(image, t)
            if frame is None:
                continue
            self._queue.put(frame)
            delivered += 1
            if period_s:
                next_due += period_s
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        return delivered

    def _convert(self, image: np.ndarray, t: float) -> Frame | None:
        s = self.settings
        if s.radiometric:
            if image.dtype != np.uint16 or image.ndim != 2:
                self._last_reject = (
                    f"{s.kind}.radiometric is true but the stream delivers "
                    f"{image.dtype} frames of shape {image.shape}, not 16-bit counts"
                )
                self._health.error(f"{self._where}: {self._last_reject}", "not_radiometric")
                return None
            kelvin = image.astype(np.float32) * np.float32(s.counts_gain_k) + np.float32(
                s.counts_offset_k
            )
            return self._frame(kelvin, t, radiometric=True)
        if image.dtype == np.uint16:
            # A 16-bit stream read as video: scale the span to 8 bits like a camera's AGC.
            lo, hi = float(image.min()), float(image.max())
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            image = ((image.astype(np.float32) - lo) * scale).astype(np.uint8)
        if image.ndim == 3 and not s.color:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.ndim == 2 and s.color:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return self._frame(image, t, radiometric=False)

    def _frame(self, image: np.ndarray, t: float, *, radiometric: bool) -> Frame:
        self._seq += 1
        return Frame(image=image, t=t, seq=self._seq, radiometric=radiometric)
