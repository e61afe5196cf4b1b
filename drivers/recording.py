"""The towerwatch recording format (docs/recording-format.md): reader and writer.

A recording is a folder with ``recording.json`` (format, camera, tower), ``frames.jsonl``
(one line per frame: file, t, pan_deg, tilt_deg, hfov_deg) and ``frames/*.png``
(16-bit single-channel PNG, value = Kelvin × 100, clipped at 655.35 K as a sensor saturates).
Anything malformed raises ``RecordingError`` whose message names the file, line and field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

FORMAT = "towerwatch.recording/1"
KELVIN_SCALE = 100.0  # PNG counts per kelvin: 0.01 K steps
MAX_KELVIN = 65535 / KELVIN_SCALE  # 655.35 K, where a 16-bit recording saturates


class RecordingError(Exception):
    """The recording is missing or malformed; the message says where and what."""


@dataclass(frozen=True)
class CameraMeta:
    width: int
    height: int
    hfov_deg: float
    vfov_deg: float
    radiometric: bool


@dataclass(frozen=True)
class TowerMeta:
    lat: float
    lon: float
    height_m: float


@dataclass(frozen=True)
class RecordingMeta:
    camera: CameraMeta
    tower: TowerMeta


@dataclass(frozen=True)
class FrameMeta:
    index: int
    file: str
    t: float
    pan_deg: float
    tilt_deg: float
    hfov_deg: float


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise RecordingError(f"{where}: missing field {key!r}")
    value = obj[key]
    if isinstance(value, bool) and kind is not bool:
        raise RecordingError(f"{where}: field {key!r} must be a number, got {value!r}")
    if not isinstance(value, kind):
        raise RecordingError(f"{where}: field {key!r} has the wrong type: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordingError(f"{where}: field {key!r} must be finite, got {value!r}")
    return value


_NUMBER = (int, float)


def _parse_meta(path: Path) -> RecordingMeta:
    meta_path = path / "recording.json"
    if not meta_path.is_file():
        raise RecordingError(f"{path}: not a recording (no recording.json)")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{meta_path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecordingError(f"{meta_path}: must hold a JSON object")
    fmt = raw.get("format")
    if fmt != FORMAT:
        raise RecordingError(f"{meta_path}: format must be {FORMAT!r}, got {fmt!r}")
    where = str(meta_path)
    cam = _require(raw, "camera", dict, where)
    tower = _require(raw, "tower", dict, where)
    camera = CameraMeta(
        width=int(_require(cam, "width", int, f"{where}: camera")),
        height=int(_require(cam, "height", int, f"{where}: camera")),
        hfov_deg=float(_require(cam, "hfov_deg", _NUMBER, f"{where}: camera")),
        vfov_deg=float(_require(cam, "vfov_deg", _NUMBER, f"{where}: camera")),
        radiometric=bool(_require(cam, "radiometric", bool, f"{where}: camera")),
    )
    if camera.width <= 0 or camera.height <= 0:
        raise RecordingError(f"{where}: camera width and height must be positive")
    if not 0 < camera.hfov_deg < 180 or not 0 < camera.vfov_deg < 180:
        raise RecordingError(f"{where}: camera hfov_deg and vfov_deg must be in (0, 180)")
    tower_meta = TowerMeta(
        lat=float(_require(tower, "lat", _NUMBER, f"{where}: tower")),
        lon=float(_require(tower, "lon", _NUMBER, f"{where}: tower")),
        height_m=float(_require(tower, "height_m", _NUMBER, f"{where}: tower")),
    )
    if not -90 <= tower_meta.lat <= 90 or not -180 <= tower_meta.lon <= 180:
        raise RecordingError(f"{where}: tower lat/lon out of range")
    return RecordingMeta(camera=camera, tower=tower_meta)


def _parse_frame_line(line: str, index: int, where: str) -> FrameMeta:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{where}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecordingError(f"{where}: must hold a JSON object")
    file = _require(raw, "file", str, where)
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise RecordingError(f"{where}: file {file!r} must be a path inside the recording")
    return FrameMeta(
        index=index,
        file=file,
        t=float(_require(raw, "t", _NUMBER, where)),
        pan_deg=float(_require(raw, "pan_deg", _NUMBER, where)),
        tilt_deg=float(_require(raw, "tilt_deg", _NUMBER, where)),
        hfov_deg=float(_require(raw, "hfov_deg", _NUMBER, where)),
    )


class Recording:
    """A recording opened for reading. Iterating yields (Kelvin float32 image, FrameMeta)."""

    def __init__(self, path: Path, meta: RecordingMeta, frames: list[FrameMeta]) -> None:
        self.path = path
        self.meta = meta
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, frame: FrameMeta) -> np.ndarray:
        """The frame's image in Kelvin (float32, H×W)."""
        import cv2  # lazy: OpenCV is heavy and only needed once frames are read

        file_path = self.path / frame.file
        image = cv2.imread(str(file_path), cv2.IMREAD_UNCHANGED)
        where = f"{self.path / 'frames.jsonl'}:{frame.index + 1}"
        if image is None:
            raise RecordingError(f"{where}: cannot read image {frame.file!r}")
        if image.ndim != 2 or image.dtype != np.uint16:
            raise RecordingError(
                f"{where}: {frame.file!r} must be a 16-bit single-channel PNG, "
                f"got {image.dtype} with shape {image.shape}"
            )
        expected = (self.meta.camera.height, self.meta.camera.width)
        if image.shape != expected:
            raise RecordingError(
                f"{where}: {frame.file!r} is {image.shape[1]}x{image.shape[0]}, "
                f"recording.json says {expected[1]}x{expected[0]}"
            )
        return image.astype(np.float32) / np.float32(KELVIN_SCALE)

    def __iter__(self) -> Iterator[tuple[np.ndarray, FrameMeta]]:
        for frame in self.frames:
            yield self.load(frame), frame


def open_recording(path: str | Path) -> Recording:
    """Open and validate a recording's metadata (frames are read lazily)."""
    root = Path(path)
    if not root.is_dir():
        raise RecordingError(f"{root}: no such recording folder")
    meta = _parse_meta(root)
    frames_path = root / "frames.jsonl"
    if not frames_path.is_file():
        raise RecordingError(f"{root}: missing frames.jsonl")
    frames: list[FrameMeta] = []
    try:
        text = frames_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"{frames_path}: not UTF-8 text: {exc}") from exc
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        frames.append(_parse_frame_line(line, len(frames), f"{frames_path}:{line_no}"))
    if not frames:
        raise RecordingError(f"{frames_path}: holds no frames")
    for before, after in zip(frames, frames[1:], strict=False):
        if after.t < before.t:
            raise RecordingError(
                f"{frames_path}:{after.index + 1}: time goes backwards ({after.t} < {before.t})"
            )
    return Recording(root, meta, frames)


def kelvin_to_png_counts(kelvin: np.ndarray) -> np.ndarray:
    """Kelvin → uint16 counts (0.01 K), NaN → 0, clipped at 655.35 K like a saturated sensor."""
    counts = np.nan_to_num(kelvin.astype(np.float64) * KELVIN_SCALE, nan=0.0)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


class RecordingWriter:
    """Writes a recording folder frame by frame; ``close()`` (or the context) finishes it."""

    def __init__(self, path: str | Path, camera: CameraMeta, tower: TowerMeta) -> None:
        self.path = Path(path)
        self.camera = camera
        self.tower = tower
        self._count = 0
        self._lines: Any = None

    def open(self) -> None:
        (self.path / "frames").mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "camera": {
                "width": self.camera.width,
                "height": self.camera.height,
                "hfov_deg": self.camera.hfov_deg,
                "vfov_deg": self.camera.vfov_deg,
                "radiometric": self.camera.radiometric,
            },
            "tower": {
                "lat": self.tower.lat,
                "lon": self.tower.lon,
                "height_m": self.tower.height_m,
            },
        }
        (self.path / "recording.json").write_text(
            json.dumps(meta, indent=2) + "\n", encoding="utf-8"
        )
        self._lines = (self.path / "frames.jsonl").open("w", encoding="utf-8")

    def write(
        self, kelvin: np.ndarray, t: float, pan_deg: float, tilt_deg: float, hfov_deg: float
    ) -> str:
        """Append one frame; returns its file name relative to the recording."""
        import cv2  # lazy: OpenCV is heavy

        if self._lines is None:
            raise RecordingError(f"{self.path}: writer is not open")
        if kelvin.shape != (self.camera.height, self.camera.width):
            raise RecordingError(
                f"{self.path}: frame shape {kelvin.shape} does not match the camera "
                f"{self.camera.width}x{self.camera.height}"
            )
        name = f"frames/{self._count:06d}.png"
        if not cv2.imwrite(str(self.path / name), kelvin_to_png_counts(kelvin)):
            raise RecordingError(f"{self.path / name}: could not write the PNG")
        line = {
            "file": name,
            "t": t,
            "pan_deg": pan_deg,
            "tilt_deg": tilt_deg,
            "hfov_deg": hfov_deg,
        }
        self._lines.write(json.dumps(line) + "\n")
        self._lines.flush()
        self._count += 1
        return name

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
            self._lines = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
