"""ONVIF PTZ head driver (config ``type: onvif``) on onvif-zeep, in true azimuth/elevation degrees.

Connecting: GetSystemDateAndTime (unauthenticated) gives the device clock, from which
every WS-Security ``Created`` is stamped; GetCapabilities gives the service addresses;
GetProfiles the profile; GetConfigurationOptions the position spaces and ranges. The
degrees space (``SphericalPositionSpaceDegrees``, Profile T) is used when offered, else
the generic space [-1, 1] with the vendor's degree ranges from the config. Head angles
go through the calibration to true azimuth/elevation, the zoom position through the
configured zoom→hfov table.

The device clock is modelled as offset + rate and re-estimated from every GetStatus
``UtcTime``, so signing keeps working against a tower whose clock drifts or runs many
times faster than wall time (``towerwatch simulate tower --speed N``); an authentication
refusal first re-reads the device time and retries once, so only a real credential
problem is reported as one.

Commands raise ``DeviceUnavailable`` (device absent, silent or garbling) or
``DriverError`` (refused: bad credentials, SOAP fault, out of range) with a message that
names the device and the config key; a background thread reconnects with backoff, and
neither it nor the ContinuousMove deadline ever raises into the caller.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import onvif
import requests
import structlog
import urllib3
import zeep.exceptions as zx
from onvif.definition import SERVICES
from pydantic import Field, field_validator
from zeep import Client
from zeep import Settings as ZeepSettings
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from drivers.base import (
    Backoff,
    DeviceUnavailable,
    DriverError,
    DriverHealth,
    DriverState,
    HealthTracker,
    NamedThread,
    PtzStatus,
    SecretStore,
    StrictSettings,
)
from drivers.base import Driver as DriverBase
from drivers.ptz_calibration import PtzCalibration

log = structlog.get_logger(__name__)

SPACE_DEGREES = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/SphericalPositionSpaceDegrees"
SPACE_GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
SPACE_TRANSLATION_DEGREES = (
    "http://www.onvif.org/ver10/tptz/PanTiltSpaces/SphericalTranslationSpaceDegrees"
)
SPACE_VELOCITY_GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocityGenericSpace"
SPACE_ZOOM_GENERIC = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"

T = TypeVar("T")


class ZoomPoint(StrictSettings):
    zoom: float = Field(ge=-1.0, le=1.0, description="zoom position in the device's zoom space")
    hfov_deg: float = Field(gt=0.0, lt=180.0, description="thermal horizontal field of view there")


class Settings(StrictSettings):
    """``ptz:`` section for an ONVIF head."""

    type: Literal["onvif"]
    host: str = Field("127.0.0.1", min_length=1, description="device address (IP or name)")
    port: int = Field(80, ge=1, le=65535, description="device HTTP port")
    username: str = Field(min_length=1, description="ONVIF user")
    password_secret: str = Field(
        min_length=1, description="name of the secret holding the ONVIF password"
    )
    profile_token: str | None = Field(
        None, description="media profile to steer; default: the first one with a PTZ configuration"
    )
    timeout_s: float = Field(3.0, gt=0.0, le=60.0, description="reply timeout per SOAP call")
    position_space: Literal["auto", "degrees", "generic"] = Field(
        "auto", description="pan/tilt space: degrees when offered (auto), or force one"
    )
    generic_pan_range_deg: tuple[float, float] = Field(
        (-180.0, 180.0), description="raw pan at generic x = -1 and x = +1 (vendor mapping)"
    )
    generic_tilt_range_deg: tuple[float, float] = Field(
        (-30.0, 30.0), description="raw tilt at generic y = -1 and y = +1 (vendor mapping)"
    )
    zoom_hfov: tuple[ZoomPoint, ...] = Field(
        (ZoomPoint(zoom=0.0, hfov_deg=25.0), ZoomPoint(zoom=1.0, hfov_deg=3.0)),
        min_length=2,
        description=(
            "zoom position → thermal hfov, increasing zoom; interpolated linearly in focal "
            "length (1/tan(hfov/2)), exact for a lens whose focal length is linear in zoom"
        ),
    )
    reconnect_max_s: float = Field(30.0, ge=0.5, le=600.0, description="longest reconnect backoff")
    calibration: PtzCalibration = Field(
        default_factory=lambda: PtzCalibration.model_validate({}),
        description="raw head angles ↔ true azimuth/elevation",
    )

    @field_validator("zoom_hfov")
    @classmethod
    def _zoom_increasing(cls, points: tuple[ZoomPoint, ...]) -> tuple[ZoomPoint, ...]:
        zooms = [p.zoom for p in points]
        if any(b <= a for a, b in zip(zooms, zooms[1:], strict=False)):
            raise ValueError("zoom positions must strictly increase")
        return points

    @field_validator("generic_pan_range_deg", "generic_tilt_range_deg")
    @classmethod
    def _range_not_empty(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] == value[1]:
            raise ValueError("range must not be empty")
        return value


# --------------------------------------------------------------------------- pure maps


class ZoomMap:
    """Zoom position ↔ hfov, piecewise linear in k = 1/tan(hfov/2) (∝ focal length)."""

    def __init__(self, points: tuple[ZoomPoint, ...]) -> None:
        self._zoom = [p.zoom for p in points]
        self._k = [1.0 / math.tan(math.radians(p.hfov_deg) / 2.0) for p in points]

    @staticmethod
    def _interp(x: float, xs: list[float], ys: list[float]) -> float:
        if xs[0] > xs[-1]:
            xs, ys = xs[::-1], ys[::-1]
        x = min(max(x, xs[0]), xs[-1])
        for i in range(len(xs) - 1):
            if x <= xs[i + 1]:
                f = (x - xs[i]) / (xs[i + 1] - xs[i])
                return ys[i] + f * (ys[i + 1] - ys[i])
        return ys[-1]

    def hfov_deg(self, zoom: float) -> float:
        k = self._interp(zoom, self._zoom, self._k)
        return math.degrees(2.0 * math.atan(1.0 / k))

    def zoom(self, hfov_deg: float) -> float:
        """Clamped to the table: a narrower view than the lens has is the lens's tele end."""
        k = 1.0 / math.tan(math.radians(min(max(hfov_deg, 1e-3), 179.0)) / 2.0)
        return self._interp(k, self._k, self._zoom)


def _lerp(range_: tuple[float, float], f: float) -> float:
    return range_[0] + (f + 1.0) / 2.0 * (range_[1] - range_[0])


def _unlerp(range_: tuple[float, float], value: float) -> float:
    return (value - range_[0]) / (range_[1] - range_[0]) * 2.0 - 1.0


class DeviceClock:
    """The device's clock as seen from here: device_t = t_ref + rate · (monotonic − m_ref)."""

    # Rate samples closer than this in wall time are too noisy to estimate a rate from.
    MIN_RATE_BASELINE_S = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t_ref = time.time()
        self._m_ref = time.monotonic()
        self._rate = 1.0
        self._rate_t: float | None = None
        self._rate_m = 0.0

    def set(self, device_t: float, monotonic_t: float) -> None:
        """A coarse reading (whole seconds); keeps the rate, restarts rate estimation."""
        with self._lock:
            self._t_ref, self._m_ref = device_t, monotonic_t
            self._rate_t, self._rate_m = device_t, monotonic_t

    def sample(self, device_t: float, monotonic_t: float) -> None:
        """A fine reading (GetStatus UtcTime): re-anchor and refine the rate."""
        with self._lock:
            if self._rate_t is not None and monotonic_t - self._rate_m >= self.MIN_RATE_BASELINE_S:
                rate = (device_t - self._rate_t) / (monotonic_t - self._rate_m)
                if 0.01 <= rate <= 10_000.0:
                    self._rate = rate
                self._rate_t, self._rate_m = device_t, monotonic_t
            elif self._rate_t is None:
                self._rate_t, self._rate_m = device_t, monotonic_t
            self._t_ref, self._m_ref = device_t, monotonic_t

    def now(self) -> float:
        with self._lock:
            return self._t_ref + self._rate * (time.monotonic() - self._m_ref)

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate


@dataclass(frozen=True)
class _Session:
    """What one successful connect learned; replaced wholesale on reconnect."""

    ptz: Any  # zeep service proxy of the PTZ service
    profile_token: str
    position_space: str
    pan_range: tuple[float, float]  # of the position space in use
    tilt_range: tuple[float, float]
    relative_degrees: bool  # SphericalTranslationSpaceDegrees offered
    timeout_range_s: tuple[float, float]


def _duration_s(value: Any) -> float:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"not a duration: {value!r}")


class Driver(DriverBase):
    """An ONVIF PTZ head; implements drivers.base.PtzHead."""

    def __init__(self, settings: Settings, secrets: SecretStore) -> None:
        self.settings = settings
        self._secrets = secrets
        self._where = f"ptz (ptz.host={settings.host}:{settings.port})"
        self._health = HealthTracker("ptz")
        self._zoom = ZoomMap(settings.zoom_hfov)
        self._clock = DeviceClock()
        self._call_lock = threading.RLock()
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._session: _Session | None = None
        self._clients: dict[str, Any] = {}
        self._transport: Any = None
        self._keeper: threading.Thread | None = None
        self._deadline_timer: threading.Timer | None = None
        self._last_error = "not connected yet"
        self._password: str | None = None

    # ----------------------------------------------------------------- lifecycle

    def open(self) -> None:
        """Start connecting; returns at once whether or not the device answers yet."""
        if self._keeper is not None:
            return
        self._password = self._secrets.read(self.settings.password_secret)
        self._stop_event.clear()
        self._health.set_state(DriverState.CONNECTING)
        self._keeper = NamedThread(target=self._keep_connected, name="ptz-onvif", daemon=True)
        self._keeper.start()

    def close(self) -> None:
        self._stop_event.set()
        self._wake.set()
        self._cancel_deadline()
        if self._keeper is not None:
            self._keeper.join(timeout=self.settings.timeout_s * 3 + 1.0)
        self._keeper = None
        self._session = None
        self._health.set_state(DriverState.CLOSED)

    def health(self) -> DriverHealth:
        return self._health.snapshot()

    def wait_connected(self, timeout_s: float) -> bool:
        """True once a session is up (for start-up code and tests; never required)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._session is not None:
                return True
            time.sleep(0.02)
        return self._session is not None

    def _keep_connected(self) -> None:
        backoff = Backoff(max_s=self.settings.reconnect_max_s)
        first = True
        while not self._stop_event.is_set():
            if self._session is None:
                try:
                    self._connect()
                except DriverError as exc:
                    self._last_error = str(exc)
                    self._health.set_state(DriverState.FAILED)
                    self._health.error(str(exc), "connect_failures")
                    delay = backoff.next_delay()
                    log.warning("ptz_connect_failed", error=str(exc), retry_in_s=delay)
                    self._stop_event.wait(delay)
                    continue
                backoff.reset()
                if not first:
                    self._health.count("reconnects")
                first = False
                self._health.set_state(DriverState.OK)
            self._wake.wait(1.0)
            self._wake.clear()

    def _lost(self, message: str) -> None:
        if self._session is not None:
            log.warning("ptz_connection_lost", error=message)
        self._session = None
        self._last_error = message
        self._health.set_state(DriverState.FAILED)
        self._wake.set()

    # ----------------------------------------------------------------- SOAP plumbing

    def _build_clients(self) -> None:
        """Parse the WSDLs once; reconnects only rebind service addresses."""
        if self._clients:
            return
        wsdl_dir = os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl")
        session = requests.Session()
        session.trust_env = False  # a proxy from the environment must not reroute the head
        transport = RecordingTransport(
            cache=None,
            timeout=self.settings.timeout_s,
            operation_timeout=self.settings.timeout_s,
            session=session,
            deadline_s=REPLY_DEADLINE_FACTOR * self.settings.timeout_s,
        )
        token = DeviceTimeToken(self.settings.username, self._password or "", self._clock)
        zeep_settings = ZeepSettings(strict=False, xml_huge_tree=True)
        for name in ("devicemgmt", "media", "ptz"):
            path = os.path.join(wsdl_dir, SERVICES[name]["wsdl"])
            if not os.path.isfile(path):
                raise DriverError(f"{self._where}: onvif-zeep WSDL missing: {path}")
            client = Client(wsdl=path, wsse=token, transport=transport, settings=zeep_settings)
            binding = f"{{{SERVICES[name]['ns']}}}{SERVICES[name]['binding']}"
            self._clients[name] = (client, binding)
        self._transport = transport

    def _service(self, name: str, xaddr: str) -> Any:
        client, binding = self._clients[name]
        return client.create_service(binding, xaddr)

    def _xaddr(self, reported: str | None, path: str) -> str:
        """The configured host:port with the device's path: devices behind NAT or with a
        second interface report addresses we cannot reach."""
        reported_path = urllib.parse.urlsplit(reported or "").path or path
        return f"http://{self.settings.host}:{self.settings.port}{reported_path}"

    def _soap(self, operation: str, call: Callable[[], T], *, retry_auth: bool = True) -> T:
        """One SOAP call with its failures mapped to errors that name device and key."""
        with self._call_lock:
            try:
                return call()
            except ReplyDeadlineExceeded as exc:
                deadline_s = REPLY_DEADLINE_FACTOR * self.settings.timeout_s
                self._health.error(f"{operation}: reply deadline", "timeouts")
                message = (
                    f"{self._where}: reply to {operation} not complete within {deadline_s:g} s "
                    f"({REPLY_DEADLINE_FACTOR:g} x ptz.timeout_s)"
                )
                self._lost(message)
                raise DeviceUnavailable(message) from exc
            except requests.exceptions.Timeout as exc:
                self._health.error(f"{operation}: timeout", "timeouts")
                message = (
                    f"{self._where}: no reply to {operation} within {self.settings.timeout_s:g} s "
                    "(ptz.timeout_s)"
                )
                self._lost(message)
                raise DeviceUnavailable(message) from exc
            except requests.exceptions.ConnectionError as exc:
                message = f"{self._where}: unreachable ({operation}): connection refused or dropped"
                self._health.error(message, "connection_errors")
                self._lost(message)
                raise DeviceUnavailable(message) from exc
            except (requests.exceptions.RequestException, OSError) as exc:
                # A reply cut mid-body (ChunkedEncodingError), a broken content encoding
                # or any other transport failure: the link is in doubt, reconnect.
                message = f"{self._where}: {operation}: transport failed: {type(exc).__name__}"
                self._health.error(message, "connection_errors")
                self._lost(message)
                raise DeviceUnavailable(message) from exc
            except zx.Fault as exc:
                fault = _fault_text(exc)
                if "NotAuthorized" in fault:
                    if retry_auth:
                        self._resync_clock()
                        return self._soap(operation, call, retry_auth=False)
                    raise self._auth_error() from exc
                self._health.error(f"{operation}: {fault}", "soap_faults")
                if exc.code is None:
                    message = f"{self._where}: {operation}: garbled reply (HTTP error without a SOAP fault)"
                    raise DeviceUnavailable(message) from exc
                raise DriverError(f"{self._where}: {operation} refused: {fault}") from exc
            except (zx.XMLParseError, zx.XMLSyntaxError, zx.TransportError) as exc:
                raw = getattr(self._transport, "last_reply", b"")
                if b"NotAuthorized" in raw:
                    # The fault used an undeclared ter: prefix, so zeep reports
                    # "No namespace defined for 'ter'"; the raw reply still says why.
                    if retry_auth:
                        self._resync_clock()
                        return self._soap(operation, call, retry_auth=False)
                    raise self._auth_error(masked=str(exc)) from exc
                self._health.error(f"{operation}: unreadable reply: {exc}", "soap_faults")
                raise DeviceUnavailable(
                    f"{self._where}: {operation}: unreadable reply: {exc}"
                ) from exc
            except zx.Error as exc:
                self._health.error(f"{operation}: {exc}", "soap_faults")
                raise DriverError(f"{self._where}: {operation} failed: {exc}") from exc
            except (AttributeError, TypeError, IndexError, KeyError, ValueError) as exc:
                # zeep raises these on replies it cannot map (an empty body, a missing
                # element): the device sent nonsense, not our bug to crash on.
                message = f"{self._where}: {operation}: malformed reply ({type(exc).__name__})"
                self._health.error(message, "soap_faults")
                raise DeviceUnavailable(message) from exc

    def _auth_error(self, masked: str | None = None) -> DriverError:
        note = f" (the device's fault was malformed: {masked})" if masked else ""
        message = (
            f"{self._where}: authentication refused: wrong username or password "
            f"(ptz.username={self.settings.username}, ptz.password_secret="
            f"{self.settings.password_secret}){note}"
        )
        self._health.error(message, "auth_failures")
        return DriverError(message)

    def _resync_clock(self) -> None:
        """Read the device time (unauthenticated) and re-anchor the signing clock."""
        service = self._service("devicemgmt", self._xaddr(None, "/onvif/device_service"))
        sent = time.monotonic()
        reply = self._soap("GetSystemDateAndTime", service.GetSystemDateAndTime, retry_auth=False)
        received = time.monotonic()
        try:
            utc = reply.UTCDateTime
            device_t = dt.datetime(
                utc.Date.Year,
                utc.Date.Month,
                utc.Date.Day,
                utc.Time.Hour,
                utc.Time.Minute,
                utc.Time.Second,
                tzinfo=dt.UTC,
            ).timestamp()
        except (AttributeError, TypeError, ValueError) as exc:
            raise DriverError(
                f"{self._where}: GetSystemDateAndTime: malformed reply: {exc}"
            ) from exc
        # Whole seconds only: the reading is on average half a second behind, at mid-flight.
        self._clock.set(device_t + 0.5, (sent + received) / 2.0)

    # ----------------------------------------------------------------- connect

    def _connect(self) -> None:
        try:
            self._build_clients()
        except (OSError, ValueError) as exc:
            raise DriverError(f"{self._where}: cannot load the ONVIF WSDLs: {exc}") from exc
        self._resync_clock()
        device = self._service("devicemgmt", self._xaddr(None, "/onvif/device_service"))
        caps = self._soap("GetCapabilities", lambda: device.GetCapabilities(Category="All"))
        try:
            media_xaddr = self._xaddr(caps.Media.XAddr, "/onvif/media_service")
            ptz_caps = caps.PTZ
        except AttributeError as exc:
            raise DriverError(f"{self._where}: GetCapabilities: malformed reply: {exc}") from exc
        if ptz_caps is None:
            raise DriverError(
                f"{self._where}: the device offers no PTZ service (is ptz.host a PTZ camera?)"
            )
        media = self._service("media", media_xaddr)
        ptz = self._service("ptz", self._xaddr(ptz_caps.XAddr, "/onvif/ptz_service"))
        profiles = self._soap("GetProfiles", media.GetProfiles)
        profile = self._pick_profile(profiles)
        config = profile.PTZConfiguration
        options = self._soap(
            "GetConfigurationOptions",
            lambda: ptz.GetConfigurationOptions(ConfigurationToken=config.token),
        )
        session = self._session_from(ptz, profile.token, options)
        status = self._status_with(session)
        # Connected only once the first status read succeeded: a head lost during the
        # connect is a failed connect, so the next success counts as a reconnect.
        self._session = session
        log.info(
            "ptz_connected",
            host=self.settings.host,
            port=self.settings.port,
            profile=session.profile_token,
            space=session.position_space,
            pan=status.pan_deg,
            tilt=status.tilt_deg,
        )

    def _pick_profile(self, profiles: Any) -> Any:
        with_ptz = [p for p in profiles or [] if getattr(p, "PTZConfiguration", None) is not None]
        wanted = self.settings.profile_token
        if wanted is not None:
            for p in with_ptz:
                if p.token == wanted:
                    return p
            have = ", ".join(p.token for p in with_ptz) or "none"
            raise DriverError(
                f"{self._where}: no media profile with PTZ has token {wanted!r} "
                f"(ptz.profile_token); the device has: {have}"
            )
        if not with_ptz:
            raise DriverError(f"{self._where}: no media profile has a PTZ configuration")
        return with_ptz[0]

    def _session_from(self, ptz: Any, profile_token: str, options: Any) -> _Session:
        try:
            spaces = options.Spaces
            absolute = {s.URI: s for s in spaces.AbsolutePanTiltPositionSpace or []}
            relative = {s.URI for s in spaces.RelativePanTiltTranslationSpace or []}
            timeout = options.PTZTimeout
            timeout_range = (
                (_duration_s(timeout.Min), _duration_s(timeout.Max)) if timeout else (1.0, 60.0)
            )
        except (AttributeError, TypeError) as exc:
            raise DriverError(
                f"{self._where}: GetConfigurationOptions: malformed reply: {exc}"
            ) from exc
        log.info("ptz_spaces", absolute=sorted(absolute), relative=sorted(relative))
        wanted = self.settings.position_space
        if wanted in ("auto", "degrees") and SPACE_DEGREES in absolute:
            space = SPACE_DEGREES
        elif wanted in ("auto", "generic") and SPACE_GENERIC in absolute:
            space = SPACE_GENERIC
        else:
            raise DriverError(
                f"{self._where}: the device offers no {wanted} pan/tilt position space "
                f"(ptz.position_space); it offers: {', '.join(sorted(absolute)) or 'none'}"
            )
        described = absolute[space]
        if space == SPACE_DEGREES:
            pan_range = (described.XRange.Min, described.XRange.Max)
            tilt_range = (described.YRange.Min, described.YRange.Max)
        else:
            pan_range = self.settings.generic_pan_range_deg
            tilt_range = self.settings.generic_tilt_range_deg
        return _Session(
            ptz=ptz,
            profile_token=profile_token,
            position_space=space,
            pan_range=pan_range,
            tilt_range=tilt_range,
            relative_degrees=space == SPACE_DEGREES and SPACE_TRANSLATION_DEGREES in relative,
            timeout_range_s=timeout_range,
        )

    def _require_session(self) -> _Session:
        session = self._session
        if session is None:
            raise DeviceUnavailable(f"{self._where}: not connected: {self._last_error}")
        return session

    # ----------------------------------------------------------------- positions

    def _raw_from_position(
        self, session: _Session, space: str | None, x: float, y: float
    ) -> tuple[float, float]:
        space = space or session.position_space
        if space == SPACE_DEGREES:
            return x % 360.0, y
        if space == SPACE_GENERIC:
            return _lerp(self.settings.generic_pan_range_deg, x) % 360.0, _lerp(
                self.settings.generic_tilt_range_deg, y
            )
        raise DriverError(f"{self._where}: GetStatus reports position in an unknown space {space}")

    def _position_from_raw(
        self, session: _Session, raw_pan: float, raw_tilt: float
    ) -> tuple[float, float]:
        pan = (raw_pan + 180.0) % 360.0 - 180.0
        if session.position_space == SPACE_DEGREES:
            x, y = pan, raw_tilt
            lo, hi = session.tilt_range
        else:
            x = _unlerp(self.settings.generic_pan_range_deg, pan)
            y = _unlerp(self.settings.generic_tilt_range_deg, raw_tilt)
            lo, hi = -1.0, 1.0
        if not lo - 1e-9 <= y <= hi + 1e-9:
            raise DriverError(
                f"{self._where}: tilt out of the head's range: raw tilt {raw_tilt:.2f}° after "
                f"ptz.calibration, the head moves between {session.tilt_range[0]:g}° and "
                f"{session.tilt_range[1]:g}°"
            )
        return x, min(max(y, lo), hi)

    def _status_with(self, session: _Session) -> PtzStatus:
        reply = self._soap(
            "GetStatus", lambda: session.ptz.GetStatus(ProfileToken=session.profile_token)
        )
        received = time.monotonic()
        try:
            position = reply.Position
            pan_tilt = position.PanTilt
            raw_pan, raw_tilt = self._raw_from_position(
                session, pan_tilt.space, pan_tilt.x, pan_tilt.y
            )
            zoom = position.Zoom
            hfov = self._zoom.hfov_deg(zoom.x) if zoom is not None else float("nan")
            move = reply.MoveStatus
            moving = move is not None and "MOVING" in (str(move.PanTilt), str(move.Zoom))
            utc = reply.UtcTime
        except (AttributeError, TypeError, IndexError, ValueError) as exc:
            raise DriverError(f"{self._where}: GetStatus: malformed reply: {exc}") from exc
        if not (math.isfinite(raw_pan) and math.isfinite(raw_tilt)) or math.isinf(hfov):
            raise DriverError(f"{self._where}: GetStatus: position is not finite")
        if isinstance(utc, dt.datetime):
            utc_t = (utc if utc.tzinfo else utc.replace(tzinfo=dt.UTC)).timestamp()
            self._clock.sample(utc_t, received)
        else:
            utc_t = self._clock.now()
        azimuth, elevation = self.settings.calibration.to_true(raw_pan, raw_tilt)
        return PtzStatus(pan_deg=azimuth, tilt_deg=elevation, hfov_deg=hfov, moving=moving, t=utc_t)

    # ----------------------------------------------------------------- PtzHead

    def status(self) -> PtzStatus:
        return self._status_with(self._require_session())

    def absolute_move(self, pan_deg: float, tilt_deg: float, hfov_deg: float | None = None) -> None:
        session = self._require_session()
        raw_pan, raw_tilt = self.settings.calibration.to_device(pan_deg, tilt_deg)
        x, y = self._position_from_raw(session, raw_pan, raw_tilt)
        position: dict[str, Any] = {"PanTilt": {"x": x, "y": y, "space": session.position_space}}
        if hfov_deg is not None:
            position["Zoom"] = {"x": self._zoom.zoom(hfov_deg), "space": SPACE_ZOOM_GENERIC}
        self._soap(
            "AbsoluteMove",
            lambda: session.ptz.AbsoluteMove(ProfileToken=session.profile_token, Position=position),
        )
        self._cancel_deadline()

    def relative_move(self, dpan_deg: float, dtilt_deg: float) -> None:
        """In the degrees translation space when offered, else from GetStatus + AbsoluteMove
        (vendors scale the generic translation space differently)."""
        session = self._require_session()
        cal = self.settings.calibration
        if session.relative_degrees:
            translation = {
                "PanTilt": {
                    "x": cal.pan_sign * dpan_deg,
                    "y": cal.tilt_sign * dtilt_deg,
                    "space": SPACE_TRANSLATION_DEGREES,
                }
            }
            self._soap(
                "RelativeMove",
                lambda: session.ptz.RelativeMove(
                    ProfileToken=session.profile_token, Translation=translation
                ),
            )
            self._cancel_deadline()
            return
        now = self._status_with(session)
        self.absolute_move(now.pan_deg + dpan_deg, now.tilt_deg + dtilt_deg)

    def continuous_move(self, pan_speed: float, tilt_speed: float, deadline_s: float) -> None:
        if not (-1.0 <= pan_speed <= 1.0 and -1.0 <= tilt_speed <= 1.0):
            raise ValueError(
                f"{self._where}: speeds must lie in [-1, 1], got {pan_speed}, {tilt_speed}"
            )
        if not deadline_s > 0.0:
            raise ValueError(f"{self._where}: deadline_s must be > 0, got {deadline_s}")
        session = self._require_session()
        cal = self.settings.calibration
        lo, hi = session.timeout_range_s
        timeout_s = min(max(deadline_s, lo), hi)
        velocity = {
            "PanTilt": {
                "x": cal.pan_sign * pan_speed,
                "y": cal.tilt_sign * tilt_speed,
                "space": SPACE_VELOCITY_GENERIC,
            }
        }
        self._cancel_deadline()
        self._soap(
            "ContinuousMove",
            lambda: session.ptz.ContinuousMove(
                ProfileToken=session.profile_token,
                Velocity=velocity,
                Timeout=dt.timedelta(seconds=timeout_s),
            ),
        )
        # Some heads ignore Timeout (one kept turning for 84 s): stop it ourselves.
        # deadline_s is device time; the measured clock rate turns it into wall time.
        timer = threading.Timer(deadline_s / self._clock.rate, self._deadline_stop)
        timer.daemon = True
        self._deadline_timer = timer
        timer.start()

    def _deadline_stop(self) -> None:
        self._deadline_timer = None
        try:
            self.stop()
        except DriverError as exc:
            log.warning("ptz_deadline_stop_failed", error=str(exc))

    def _cancel_deadline(self) -> None:
        timer, self._deadline_timer = self._deadline_timer, None
        if timer is not None:
            timer.cancel()

    def stop(self) -> None:
        self._cancel_deadline()
        session = self._require_session()
        self._soap(
            "Stop",
            lambda: session.ptz.Stop(ProfileToken=session.profile_token, PanTilt=True, Zoom=True),
        )

    def presets(self) -> Mapping[str, str]:
        session = self._require_session()
        reply = self._soap(
            "GetPresets", lambda: session.ptz.GetPresets(ProfileToken=session.profile_token)
        )
        return {p.token: (p.Name or "") for p in reply or []}

    def goto_preset(self, token: str) -> None:
        session = self._require_session()
        self._cancel_deadline()
        self._soap(
            "GotoPreset",
            lambda: session.ptz.GotoPreset(ProfileToken=session.profile_token, PresetToken=token),
        )

    def set_preset(self, name: str) -> str:
        session = self._require_session()
        token = self._soap(
            "SetPreset",
            lambda: session.ptz.SetPreset(ProfileToken=session.profile_token, PresetName=name),
        )
        return str(token)

    def remove_preset(self, token: str) -> None:
        session = self._require_session()
        self._soap(
            "RemovePreset",
            lambda: session.ptz.RemovePreset(ProfileToken=session.profile_token, PresetToken=token),
        )


def _fault_text(exc: Any) -> str:
    """'ter:InvalidArgVal/ter:NoProfile: reason' from a zeep Fault."""
    subcodes = []
    for code in getattr(exc, "subcodes", None) or []:
        local = getattr(code, "localname", None) or str(code)
        subcodes.append(local)
    reason = exc.message or "no reason given"
    return f"{'/'.join(subcodes)}: {reason}" if subcodes else str(reason)


# A SOAP reply of a PTZ head is a few kB (GetProfiles the largest, tens of kB).
MAX_REPLY_BYTES = 2 * 1024 * 1024
# The whole call (connect, request, complete reply) must finish within this many times
# ptz.timeout_s; the slack keeps a merely slow head on a loaded gateway connected.
REPLY_DEADLINE_FACTOR = 2.0


class ReplyDeadlineExceeded(requests.exceptions.Timeout):
    """The whole reply did not arrive within the call's overall deadline."""


class RecordingTransport(Transport):
    """Keeps the last reply so a fault zeep cannot parse can still be read.

    requests' timeout bounds each socket read, so a head that drips one byte per
    second would hold a call forever; the body is therefore streamed against an
    overall deadline of `deadline_s` and a size cap.
    """

    last_reply: bytes = b""

    def __init__(self, *args: Any, deadline_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline_s = deadline_s

    def post(self, address: str, message: Any, headers: Any) -> Any:
        deadline = time.monotonic() + self.deadline_s
        response = self.session.post(
            address, data=message, headers=headers, timeout=self.operation_timeout, stream=True
        )
        chunks: list[bytes] = []
        size = 0
        try:
            # read1 returns what has arrived; iter_content would wait for a full block.
            while chunk := response.raw.read1(8192):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise zx.TransportError(f"reply larger than {MAX_REPLY_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise ReplyDeadlineExceeded(f"reply not complete within {self.deadline_s:g} s")
        except urllib3.exceptions.ReadTimeoutError as exc:
            response.close()
            raise requests.exceptions.ReadTimeout(str(exc)) from exc
        except urllib3.exceptions.ProtocolError as exc:
            response.close()
            raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc
        except urllib3.exceptions.HTTPError as exc:
            response.close()
            raise requests.exceptions.ContentDecodingError(str(exc)) from exc
        except BaseException:
            response.close()  # the connection is in an unknown state: never reuse it
            raise
        # Read to the end, the connection went back to the pool for the next call.
        response._content = b"".join(chunks)
        return response

    def post_xml(self, address: str, envelope: Any, headers: Any) -> Any:
        response = super().post_xml(address, envelope, headers)
        self.last_reply = response.content
        return response


class DeviceTimeToken(UsernameToken):
    """UsernameToken digest whose Created is the device's time, not ours."""

    def __init__(self, username: str, password: str, clock: DeviceClock) -> None:
        super().__init__(username, password, use_digest=True)
        self._device_clock = clock

    def apply(self, envelope: Any, headers: Any) -> Any:
        self.created = dt.datetime.fromtimestamp(self._device_clock.now(), tz=dt.UTC)
        try:
            return super().apply(envelope, headers)
        finally:
            self.created = None
