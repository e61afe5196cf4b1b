"""A simulated ONVIF Profile-T thermal PTZ device (Device, Media, PTZ services) over HTTP on loopback.

What it offers, as a Profile-T head with motorised pan/tilt does (Profile T §7.21):

* pan/tilt positions in ``SphericalPositionSpaceDegrees`` (x = raw pan in [-180, 180],
  y = raw tilt in [tilt_min, tilt_max]) — the configuration's default space, so
  GetStatus reports degrees — and in ``PositionGenericSpace`` [-1, 1], which this vendor
  maps linearly: x·180 = raw pan, y = -1…1 ↔ tilt_min…tilt_max. ``degrees_space=False``
  makes it a Profile-S style head that offers (and reports in) the generic space only;
* relative moves in ``SphericalTranslationSpaceDegrees`` or ``TranslationGenericSpace``
  (the same scale as the generic position space);
* continuous moves in ``VelocityGenericSpace`` with a ``Timeout`` (PT1S…PT60S);
* zoom position in ``ZoomSpaces/PositionGenericSpace`` [0, 1], 0 = widest; the thermal
  lens's focal length is linear in the zoom position, so 1/tan(hfov/2) is too.

Every request but GetSystemDateAndTime needs a WS-Security UsernameToken digest,
Digest = B64(SHA1(nonce + created + password)), whose ``Created`` lies within
``clock_skew_s`` of the device clock (the tower's SimClock) and whose nonce is fresh.
Faults are SOAP 1.2 faults with ONVIF ``ter:`` subcodes. ``faults`` holds the switches
tests use to make it misbehave the way real cameras do (slow, garbage, ignoring Stop or
the ContinuousMove timeout, an undeclared ``ter:`` prefix in faults); ``drop()`` stops
listening and ``restore()`` listens again on the same port.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import http.server
import math
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import NoReturn
from xml.sax.saxutils import escape, quoteattr

import structlog

from simulators.clock import SimClock
from simulators.head import HeadCommandRefused, SimulatedHead

log = structlog.get_logger(__name__)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
PASSWORD_DIGEST_TYPE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"

PT_POSITION_DEGREES = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/SphericalPositionSpaceDegrees"
PT_POSITION_GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
PT_TRANSLATION_DEGREES = (
    "http://www.onvif.org/ver10/tptz/PanTiltSpaces/SphericalTranslationSpaceDegrees"
)
PT_TRANSLATION_GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationGenericSpace"
PT_VELOCITY_GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocityGenericSpace"
PT_SPEED_GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/GenericSpeedSpace"
ZOOM_POSITION_GENERIC = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"
ZOOM_TRANSLATION_GENERIC = "http://www.onvif.org/ver10/tptz/ZoomSpaces/TranslationGenericSpace"
ZOOM_VELOCITY_GENERIC = "http://www.onvif.org/ver10/tptz/ZoomSpaces/VelocityGenericSpace"
ZOOM_SPEED_GENERIC = "http://www.onvif.org/ver10/tptz/ZoomSpaces/ZoomGenericSpeedSpace"

PROFILE_TOKEN = "thermal_main"
PTZ_CONFIG_TOKEN = "ptz_config_0"
PTZ_NODE_TOKEN = "ptz_node_0"
TIMEOUT_MIN_S = 1.0
TIMEOUT_MAX_S = 60.0
DEFAULT_TIMEOUT_S = 5.0

_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<s:Envelope xmlns:s="{s}" xmlns:tds="{tds}" xmlns:trt="{trt}" xmlns:tptz="{tptz}" '
    'xmlns:tt="{tt}"{ter_decl}><s:Body>{body}</s:Body></s:Envelope>'
)

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class SoapFault(Exception):
    """A SOAP 1.2 fault: code Sender/Receiver, ONVIF subcodes, a human reason."""

    def __init__(self, code: str, subcodes: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = subcodes
        self.reason = reason

    @property
    def http_status(self) -> int:
        # ONVIF Core §5.11.2: sender faults travel with 400, receiver faults with 500.
        return 400 if self.code == "Sender" else 500


def _not_authorized() -> SoapFault:
    return SoapFault("Sender", ("ter:NotAuthorized",), "Sender not Authorized")


def _invalid(subcode: str, reason: str) -> SoapFault:
    return SoapFault("Sender", ("ter:InvalidArgVal", f"ter:{subcode}"), reason)


@dataclass
class FaultSwitches:
    """Misbehaviour on demand; tests flip these while the server runs."""

    slow_reply_s: float = 0.0  # wall seconds to sit on every reply before sending it
    garbage_replies: bool = False  # HTTP 500 with an HTML page instead of SOAP
    ignore_stop: bool = False  # answer Stop but keep moving
    ignore_move_timeout: bool = False  # ContinuousMove runs until Stop, Timeout or not
    undeclared_fault_prefix: bool = False  # faults use ``ter:`` without declaring it
    drip_reply_s: float = 0.0  # wall seconds between bytes of the reply (a stalling link)
    # (operation, HTTP status, body): answer that operation with these bytes instead
    reply_override: tuple[str, int, bytes] | None = None
    cut_chunked_reply: bool = False  # chunked reply that ends mid-chunk (ChunkedEncodingError)


def parse_duration_s(text: str) -> float:
    """xs:duration (days to seconds, as ONVIF uses it) → seconds; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        raise ValueError(f"not an xs:duration: {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400.0 + parts["h"] * 3600.0 + parts["m"] * 60.0 + parts["s"]


def _fmt(value: float) -> str:
    return repr(float(round(value, 9)))


def _utc_iso(t: float) -> str:
    stamp = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _q(prefix: str, local: str) -> str:
    return f"{{{NS[prefix]}}}{local}"


def _space2d(tag: str, uri: str, x: tuple[float, float], y: tuple[float, float]) -> str:
    return (
        f"<tt:{tag}><tt:URI>{uri}</tt:URI>"
        f"<tt:XRange><tt:Min>{_fmt(x[0])}</tt:Min><tt:Max>{_fmt(x[1])}</tt:Max></tt:XRange>"
        f"<tt:YRange><tt:Min>{_fmt(y[0])}</tt:Min><tt:Max>{_fmt(y[1])}</tt:Max></tt:YRange>"
        f"</tt:{tag}>"
    )


def _space1d(tag: str, uri: str, x: tuple[float, float]) -> str:
    return (
        f"<tt:{tag}><tt:URI>{uri}</tt:URI>"
        f"<tt:XRange><tt:Min>{_fmt(x[0])}</tt:Min><tt:Max>{_fmt(x[1])}</tt:Max></tt:XRange>"
        f"</tt:{tag}>"
    )


class OnvifPtzServer:
    """The ONVIF endpoint of a simulated tower's thermal PTZ head."""

    def __init__(
        self,
        head: SimulatedHead,
        clock: SimClock,
        *,
        username: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
        degrees_space: bool = True,
        clock_skew_s: float = 30.0,
    ) -> None:
        self.head = head
        self.clock = clock
        self.faults = FaultSwitches()
        self.degrees_space = degrees_space
        self.clock_skew_s = clock_skew_s
        self._username = username
        self._password = password
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._seen_nonces: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._move_timer: threading.Timer | None = None
        self._move_generation = 0
        self.operations: collections.Counter[str] = collections.Counter()
        self.auth_failures = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The device service address (what a client is configured with)."""
        return f"http://{self._host}:{self._port}/onvif/device_service"

    def start(self) -> None:
        """Listen (on a free port when constructed with port=0) and serve in a thread."""
        with self._lock:
            if self._httpd is not None:
                return
            handler = _make_handler(self)
            httpd = http.server.ThreadingHTTPServer((self._host, self._port), handler)
            httpd.daemon_threads = True
            self._port = httpd.server_address[1]
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"onvif-sim:{self._port}",
            )
            self._thread.start()
        log.info("onvif_sim_listening", url=self.url)

    def stop(self) -> None:
        """Stop listening and cancel a pending ContinuousMove timeout."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
            if self._move_timer is not None:
                self._move_timer.cancel()
                self._move_timer = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def drop(self) -> None:
        """The device vanishes from the network (connections refused); the head keeps state."""
        self.stop()
        log.info("onvif_sim_dropped", port=self._port)

    def restore(self) -> None:
        """The device comes back on the same port."""
        self.start()

    # ----------------------------------------------------------------- SOAP

    def handle(self, request: bytes) -> tuple[int, bytes]:
        """One SOAP request → (HTTP status, response body)."""
        if self.faults.slow_reply_s > 0.0:
            time.sleep(self.faults.slow_reply_s)
        if self.faults.garbage_replies:
            return 500, b"<html><body><h1>500 Internal Server Error</h1>lighttpd</body></html>"
        try:
            operation, payload, header = self._parse(request)
            with self._lock:
                self.operations[operation] += 1
            override = self.faults.reply_override
            if override is not None and override[0] == operation:
                return override[1], override[2]
            if operation != "GetSystemDateAndTime":
                self._authenticate(header)
            body = self._dispatch(operation, payload)
        except SoapFault as fault:
            return fault.http_status, self._fault_envelope(fault)
        return 200, self._envelope(body)

    def _envelope(self, body: str, *, declare_ter: bool = True) -> bytes:
        ter = f' xmlns:ter="{NS["ter"]}"' if declare_ter else ""
        return _ENVELOPE.format(ter_decl=ter, body=body, **NS).encode("utf-8")

    def _fault_envelope(self, fault: SoapFault) -> bytes:
        subcode = ""
        for code in reversed(fault.subcodes):
            subcode = f"<s:Subcode><s:Value>{code}</s:Value>{subcode}</s:Subcode>"
        body = (
            f"<s:Fault><s:Code><s:Value>s:{fault.code}</s:Value>{subcode}</s:Code>"
            f'<s:Reason><s:Text xml:lang="en">{escape(fault.reason)}</s:Text></s:Reason>'
            "</s:Fault>"
        )
        return self._envelope(body, declare_ter=not self.faults.undeclared_fault_prefix)

    def _parse(self, request: bytes) -> tuple[str, ET.Element, ET.Element | None]:
        try:
            root = ET.fromstring(request)
        except ET.ParseError as exc:
            raise SoapFault("Sender", ("ter:WellFormed",), f"not well-formed XML: {exc}") from exc
        body = root.find(_q("s", "Body"))
        if root.tag != _q("s", "Envelope") or body is None or len(body) == 0:
            raise SoapFault("Sender", ("ter:WellFormed",), "not a SOAP 1.2 envelope with a body")
        payload = body[0]
        operation = payload.tag.rsplit("}", 1)[-1]
        return operation, payload, root.find(_q("s", "Header"))

    def _authenticate(self, header: ET.Element | None) -> None:
        token = None
        if header is not None:
            token = header.find(f"{_q('wsse', 'Security')}/{_q('wsse', 'UsernameToken')}")
        if token is None:
            self._auth_failed("no UsernameToken")
        username = token.findtext(_q("wsse", "Username"), "")
        password_el = token.find(_q("wsse", "Password"))
        nonce_b64 = token.findtext(_q("wsse", "Nonce"), "")
        created = token.findtext(_q("wsu", "Created"), "")
        if (
            password_el is None
            or password_el.get("Type", PASSWORD_DIGEST_TYPE) != PASSWORD_DIGEST_TYPE
        ):
            self._auth_failed("password is not a digest")
        try:
            nonce = base64.b64decode(nonce_b64, validate=True)
            created_t = dt.datetime.fromisoformat(created.strip()).timestamp()
        except ValueError:
            self._auth_failed("malformed nonce or Created")
        skew_s = created_t - self.clock.now()
        if abs(skew_s) > self.clock_skew_s:
            self._auth_failed(f"Created is {skew_s:+.1f} s off the device clock")
        expected = base64.b64encode(
            hashlib.sha1(
                nonce + created.strip().encode("utf-8") + self._password.encode("utf-8")
            ).digest()
        ).decode("ascii")
        if username != self._username or (password_el.text or "").strip() != expected:
            self._auth_failed("wrong username or password")
        with self._lock:
            if nonce_b64 in self._seen_nonces:
                self._auth_failed_locked("nonce replayed")
            self._seen_nonces[nonce_b64] = created_t
            # A nonce only needs remembering while its Created is inside the window.
            while len(self._seen_nonces) > 4096:
                self._seen_nonces.popitem(last=False)

    def _auth_failed(self, why: str) -> NoReturn:
        with self._lock:
            self._auth_failed_locked(why)

    def _auth_failed_locked(self, why: str) -> NoReturn:
        self.auth_failures += 1
        log.info("onvif_sim_auth_refused", reason=why)
        raise _not_authorized()

    # ----------------------------------------------------------------- operations

    def _dispatch(self, operation: str, payload: ET.Element) -> str:
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            raise SoapFault(
                "Receiver", ("ter:ActionNotSupported",), f"operation {operation} not supported"
            )
        result: str = handler(payload)
        return result

    def _service_url(self, name: str) -> str:
        return f"http://{self._host}:{self._port}/onvif/{name}_service"

    def _op_GetSystemDateAndTime(self, _: ET.Element) -> str:
        now = dt.datetime.fromtimestamp(self.clock.now(), tz=dt.UTC)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
            f"<tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _op_GetDeviceInformation(self, _: ET.Element) -> str:
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>towerwatch</tds:Manufacturer>"
            "<tds:Model>SIM-TPTZ-640</tds:Model><tds:FirmwareVersion>1.0.0</tds:FirmwareVersion>"
            f"<tds:SerialNumber>SIM{self._port:05d}</tds:SerialNumber>"
            "<tds:HardwareId>sim-thermal-ptz</tds:HardwareId></tds:GetDeviceInformationResponse>"
        )

    def _op_GetCapabilities(self, _: ET.Element) -> str:
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self._service_url('device')}</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self._service_url('media')}</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            f"<tt:PTZ><tt:XAddr>{self._service_url('ptz')}</tt:XAddr></tt:PTZ>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _op_GetServices(self, _: ET.Element) -> str:
        services = "".join(
            f"<tds:Service><tds:Namespace>{NS[prefix]}</tds:Namespace>"
            f"<tds:XAddr>{self._service_url(name)}</tds:XAddr>"
            f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version>"
            "</tds:Service>"
            for prefix, name, major, minor in (
                ("tds", "device", 2, 60),
                ("trt", "media", 2, 60),
                ("tptz", "ptz", 2, 60),
            )
        )
        return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"

    # Spaces and configuration

    def _tilt_range(self) -> tuple[float, float]:
        return self.head.tilt_min_deg, self.head.tilt_max_deg

    def _default_position_space(self) -> str:
        return PT_POSITION_DEGREES if self.degrees_space else PT_POSITION_GENERIC

    def _spaces_xml(self) -> str:
        tmin, tmax = self._tilt_range()
        span = tmax - tmin
        parts = []
        if self.degrees_space:
            parts.append(
                _space2d(
                    "AbsolutePanTiltPositionSpace",
                    PT_POSITION_DEGREES,
                    (-180.0, 180.0),
                    (tmin, tmax),
                )
            )
        parts.append(
            _space2d("AbsolutePanTiltPositionSpace", PT_POSITION_GENERIC, (-1.0, 1.0), (-1.0, 1.0))
        )
        parts.append(_space1d("AbsoluteZoomPositionSpace", ZOOM_POSITION_GENERIC, (0.0, 1.0)))
        if self.degrees_space:
            parts.append(
                _space2d(
                    "RelativePanTiltTranslationSpace",
                    PT_TRANSLATION_DEGREES,
                    (-180.0, 180.0),
                    (-span, span),
                )
            )
        parts.append(
            _space2d(
                "RelativePanTiltTranslationSpace", PT_TRANSLATION_GENERIC, (-1.0, 1.0), (-1.0, 1.0)
            )
        )
        parts.append(
            _space1d("RelativeZoomTranslationSpace", ZOOM_TRANSLATION_GENERIC, (-1.0, 1.0))
        )
        parts.append(
            _space2d(
                "ContinuousPanTiltVelocitySpace", PT_VELOCITY_GENERIC, (-1.0, 1.0), (-1.0, 1.0)
            )
        )
        parts.append(_space1d("ContinuousZoomVelocitySpace", ZOOM_VELOCITY_GENERIC, (-1.0, 1.0)))
        parts.append(_space1d("PanTiltSpeedSpace", PT_SPEED_GENERIC, (0.0, 1.0)))
        parts.append(_space1d("ZoomSpeedSpace", ZOOM_SPEED_GENERIC, (0.0, 1.0)))
        return "".join(parts)

    def _configuration_xml(self, tag: str) -> str:
        translation = PT_TRANSLATION_DEGREES if self.degrees_space else PT_TRANSLATION_GENERIC
        return (
            f'<{tag} token="{PTZ_CONFIG_TOKEN}"><tt:Name>thermal PTZ</tt:Name><tt:UseCount>1</tt:UseCount>'
            f"<tt:NodeToken>{PTZ_NODE_TOKEN}</tt:NodeToken>"
            f"<tt:DefaultAbsolutePantTiltPositionSpace>{self._default_position_space()}</tt:DefaultAbsolutePantTiltPositionSpace>"
            f"<tt:DefaultAbsoluteZoomPositionSpace>{ZOOM_POSITION_GENERIC}</tt:DefaultAbsoluteZoomPositionSpace>"
            f"<tt:DefaultRelativePanTiltTranslationSpace>{translation}</tt:DefaultRelativePanTiltTranslationSpace>"
            f"<tt:DefaultRelativeZoomTranslationSpace>{ZOOM_TRANSLATION_GENERIC}</tt:DefaultRelativeZoomTranslationSpace>"
            f"<tt:DefaultContinuousPanTiltVelocitySpace>{PT_VELOCITY_GENERIC}</tt:DefaultContinuousPanTiltVelocitySpace>"
            f"<tt:DefaultContinuousZoomVelocitySpace>{ZOOM_VELOCITY_GENERIC}</tt:DefaultContinuousZoomVelocitySpace>"
            f'<tt:DefaultPTZSpeed><tt:PanTilt x="1.0" y="1.0" space="{PT_SPEED_GENERIC}"/>'
            f'<tt:Zoom x="1.0" space="{ZOOM_SPEED_GENERIC}"/></tt:DefaultPTZSpeed>'
            f"<tt:DefaultPTZTimeout>PT{DEFAULT_TIMEOUT_S:g}S</tt:DefaultPTZTimeout>"
            f"</{tag}>"
        )

    def _check_profile(self, payload: ET.Element, tag: str = "ProfileToken") -> None:
        token = payload.findtext(_q("tptz", tag)) or payload.findtext(_q("trt", tag))
        if token != PROFILE_TOKEN:
            raise _invalid("NoProfile", f"no profile with token {token!r}")

    def _op_GetProfiles(self, _: ET.Element) -> str:
        return (
            f'<trt:GetProfilesResponse><trt:Profiles token="{PROFILE_TOKEN}" fixed="true">'
            "<tt:Name>thermal</tt:Name>"
            f"{self._configuration_xml('tt:PTZConfiguration')}"
            "</trt:Profiles></trt:GetProfilesResponse>"
        )

    def _op_GetNodes(self, _: ET.Element) -> str:
        return (
            f'<tptz:GetNodesResponse><tptz:PTZNode token="{PTZ_NODE_TOKEN}" FixedHomePosition="false">'
            f"<tt:Name>thermal head</tt:Name><tt:SupportedPTZSpaces>{self._spaces_xml()}</tt:SupportedPTZSpaces>"
            f"<tt:MaximumNumberOfPresets>{SimulatedHead.MAX_PRESETS}</tt:MaximumNumberOfPresets>"
            "<tt:HomeSupported>false</tt:HomeSupported>"
            "</tptz:PTZNode></tptz:GetNodesResponse>"
        )

    def _op_GetConfigurations(self, _: ET.Element) -> str:
        return (
            "<tptz:GetConfigurationsResponse>"
            f"{self._configuration_xml('tptz:PTZConfiguration')}"
            "</tptz:GetConfigurationsResponse>"
        )

    def _op_GetConfigurationOptions(self, payload: ET.Element) -> str:
        token = payload.findtext(_q("tptz", "ConfigurationToken"))
        if token != PTZ_CONFIG_TOKEN:
            raise _invalid("NoConfig", f"no PTZ configuration with token {token!r}")
        return (
            "<tptz:GetConfigurationOptionsResponse><tptz:PTZConfigurationOptions>"
            f"<tt:Spaces>{self._spaces_xml()}</tt:Spaces>"
            f"<tt:PTZTimeout><tt:Min>PT{TIMEOUT_MIN_S:g}S</tt:Min><tt:Max>PT{TIMEOUT_MAX_S:g}S</tt:Max></tt:PTZTimeout>"
            "</tptz:PTZConfigurationOptions></tptz:GetConfigurationOptionsResponse>"
        )

    # Position conversions: raw head degrees ↔ the advertised spaces

    def _zoom_k(self, hfov_deg: float) -> float:
        return 1.0 / math.tan(math.radians(hfov_deg) / 2.0)

    def zoom_to_hfov(self, zoom: float) -> float:
        """Zoom position [0, 1] → thermal hfov (focal length linear in zoom)."""
        k_wide = self._zoom_k(self.head.hfov_max_deg)
        k_tele = self._zoom_k(self.head.hfov_min_deg)
        return math.degrees(2.0 * math.atan(1.0 / (k_wide + zoom * (k_tele - k_wide))))

    def hfov_to_zoom(self, hfov_deg: float) -> float:
        k_wide = self._zoom_k(self.head.hfov_max_deg)
        k_tele = self._zoom_k(self.head.hfov_min_deg)
        return min(max((self._zoom_k(hfov_deg) - k_wide) / (k_tele - k_wide), 0.0), 1.0)

    def _position_to_raw(self, space: str, x: float, y: float) -> tuple[float, float]:
        tmin, tmax = self._tilt_range()
        if space == PT_POSITION_DEGREES and self.degrees_space:
            if not (-180.0 <= x <= 180.0 and tmin <= y <= tmax):
                raise _invalid("InvalidPosition", f"position ({x}, {y}) outside the degrees space")
            return x % 360.0, y
        if space == PT_POSITION_GENERIC:
            if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):
                raise _invalid("InvalidPosition", f"position ({x}, {y}) outside [-1, 1]")
            return (x * 180.0) % 360.0, tmin + (y + 1.0) / 2.0 * (tmax - tmin)
        raise _invalid("SpaceNotSupported", f"position space {space} not supported")

    def _raw_to_position(self, raw_pan: float, raw_tilt: float) -> tuple[float, float]:
        pan = raw_pan - 360.0 if raw_pan > 180.0 else raw_pan
        if self.degrees_space:
            return pan, raw_tilt
        tmin, tmax = self._tilt_range()
        return pan / 180.0, (raw_tilt - tmin) / (tmax - tmin) * 2.0 - 1.0

    @staticmethod
    def _float_attr(el: ET.Element, name: str) -> float:
        try:
            value = float(el.get(name, ""))
        except ValueError as exc:
            raise _invalid(
                "InvalidArgs", f"attribute {name}={el.get(name)!r} is not a number"
            ) from exc
        if not math.isfinite(value):
            raise _invalid("InvalidArgs", f"attribute {name}={value} is not finite")
        return value

    def _vector(self, parent: ET.Element | None) -> tuple[ET.Element | None, ET.Element | None]:
        if parent is None:
            return None, None
        return parent.find(_q("tt", "PanTilt")), parent.find(_q("tt", "Zoom"))

    def _speed_frac(self, payload: ET.Element) -> float:
        pan_tilt, _ = self._vector(payload.find(_q("tptz", "Speed")))
        if pan_tilt is None:
            return 1.0
        frac = max(self._float_attr(pan_tilt, "x"), self._float_attr(pan_tilt, "y"))
        if not 0.0 < frac <= 1.0:
            raise _invalid("InvalidSpeed", f"speed {frac} outside (0, 1]")
        return frac

    # PTZ operations

    def _op_GetStatus(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        state = self.head.state()
        x, y = self._raw_to_position(state.raw_pan_deg, state.raw_tilt_deg)
        move = "MOVING" if state.moving else "IDLE"
        return (
            "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
            f'<tt:PanTilt x="{_fmt(x)}" y="{_fmt(y)}" space="{self._default_position_space()}"/>'
            f'<tt:Zoom x="{_fmt(self.hfov_to_zoom(state.hfov_deg))}" space="{ZOOM_POSITION_GENERIC}"/>'
            f"</tt:Position><tt:MoveStatus><tt:PanTilt>{move}</tt:PanTilt><tt:Zoom>{move}</tt:Zoom></tt:MoveStatus>"
            f"<tt:UtcTime>{_utc_iso(state.t)}</tt:UtcTime>"
            "</tptz:PTZStatus></tptz:GetStatusResponse>"
        )

    def _cancel_move_timer(self) -> None:
        with self._lock:
            self._move_generation += 1
            if self._move_timer is not None:
                self._move_timer.cancel()
                self._move_timer = None

    def _op_AbsoluteMove(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        pan_tilt, zoom = self._vector(payload.find(_q("tptz", "Position")))
        speed_frac = self._speed_frac(payload)
        raw_pan = raw_tilt = hfov = None
        if pan_tilt is not None:
            space = pan_tilt.get("space", self._default_position_space())
            raw_pan, raw_tilt = self._position_to_raw(
                space, self._float_attr(pan_tilt, "x"), self._float_attr(pan_tilt, "y")
            )
        if zoom is not None:
            z = self._float_attr(zoom, "x")
            if zoom.get("space", ZOOM_POSITION_GENERIC) != ZOOM_POSITION_GENERIC:
                raise _invalid("SpaceNotSupported", f"zoom space {zoom.get('space')} not supported")
            if not 0.0 <= z <= 1.0:
                raise _invalid("InvalidPosition", f"zoom {z} outside [0, 1]")
            hfov = self.zoom_to_hfov(z)
        self._cancel_move_timer()
        self.head.command_absolute(raw_pan, raw_tilt, hfov, speed_frac=speed_frac)
        return "<tptz:AbsoluteMoveResponse/>"

    def _op_RelativeMove(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        pan_tilt, zoom = self._vector(payload.find(_q("tptz", "Translation")))
        tmin, tmax = self._tilt_range()
        dpan = dtilt = 0.0
        if pan_tilt is not None:
            x, y = self._float_attr(pan_tilt, "x"), self._float_attr(pan_tilt, "y")
            default = PT_TRANSLATION_DEGREES if self.degrees_space else PT_TRANSLATION_GENERIC
            space = pan_tilt.get("space", default)
            if space == PT_TRANSLATION_DEGREES and self.degrees_space:
                if not (-180.0 <= x <= 180.0 and abs(y) <= tmax - tmin):
                    raise _invalid(
                        "InvalidTranslation", f"translation ({x}, {y}) outside the degrees space"
                    )
                dpan, dtilt = x, y
            elif space == PT_TRANSLATION_GENERIC:
                if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):
                    raise _invalid("InvalidTranslation", f"translation ({x}, {y}) outside [-1, 1]")
                dpan, dtilt = x * 180.0, y * (tmax - tmin) / 2.0
            else:
                raise _invalid("SpaceNotSupported", f"translation space {space} not supported")
        hfov_factor = None
        if zoom is not None:
            dz = self._float_attr(zoom, "x")
            if not -1.0 <= dz <= 1.0:
                raise _invalid("InvalidTranslation", f"zoom translation {dz} outside [-1, 1]")
            current = self.head.state().hfov_deg
            target = self.zoom_to_hfov(min(max(self.hfov_to_zoom(current) + dz, 0.0), 1.0))
            hfov_factor = target / current
        self._cancel_move_timer()
        self.head.command_relative(dpan, dtilt, hfov_factor)
        return "<tptz:RelativeMoveResponse/>"

    def _op_ContinuousMove(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        pan_tilt, zoom = self._vector(payload.find(_q("tptz", "Velocity")))
        vx = vy = vz = 0.0
        if pan_tilt is not None:
            vx, vy = self._float_attr(pan_tilt, "x"), self._float_attr(pan_tilt, "y")
        if zoom is not None:
            vz = self._float_attr(zoom, "x")
        if not all(-1.0 <= v <= 1.0 for v in (vx, vy, vz)):
            raise _invalid("InvalidVelocity", f"velocity ({vx}, {vy}, {vz}) outside [-1, 1]")
        timeout_text = payload.findtext(_q("tptz", "Timeout"))
        timeout_s = DEFAULT_TIMEOUT_S
        if timeout_text is not None:
            try:
                timeout_s = parse_duration_s(timeout_text)
            except ValueError as exc:
                raise _invalid("InvalidArgs", str(exc)) from exc
            if not TIMEOUT_MIN_S <= timeout_s <= TIMEOUT_MAX_S:
                raise _invalid("TimeoutNotSupported", f"timeout {timeout_text} outside PT1S..PT60S")
        self._cancel_move_timer()
        self.head.command_velocity(vx, vy, vz)
        if not self.faults.ignore_move_timeout:
            with self._lock:
                generation = self._move_generation
                timer = threading.Timer(
                    self.clock.wall_seconds(timeout_s), self._move_timed_out, args=(generation,)
                )
                timer.daemon = True
                self._move_timer = timer
            timer.start()
        return "<tptz:ContinuousMoveResponse/>"

    def _move_timed_out(self, generation: int) -> None:
        with self._lock:
            if generation != self._move_generation:
                return
            self._move_timer = None
        self.head.stop()

    def _op_Stop(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        if not self.faults.ignore_stop:
            self._cancel_move_timer()
            self.head.stop()
        return "<tptz:StopResponse/>"

    def _op_GetPresets(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        presets = "".join(
            f"<tptz:Preset token={quoteattr(token)}><tt:Name>{escape(name)}</tt:Name></tptz:Preset>"
            for token, name in self.head.presets().items()
        )
        return f"<tptz:GetPresetsResponse>{presets}</tptz:GetPresetsResponse>"

    def _op_SetPreset(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        name = payload.findtext(_q("tptz", "PresetName")) or ""
        token = payload.findtext(_q("tptz", "PresetToken"))
        if token is not None and token not in self.head.presets():
            raise _invalid("NoToken", f"no preset with token {token!r}")
        if token is None and name in self.head.presets().values():
            raise _invalid("PresetExist", f"a preset named {name!r} exists")
        try:
            token = self.head.set_preset(name or "preset", token)
        except HeadCommandRefused as exc:
            sub = "ter:MovingPTZ" if "moving" in str(exc) else "ter:TooManyPresets"
            raise SoapFault("Receiver", ("ter:Action", sub), str(exc)) from exc
        return f"<tptz:SetPresetResponse><tptz:PresetToken>{escape(token)}</tptz:PresetToken></tptz:SetPresetResponse>"

    def _op_GotoPreset(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        token = payload.findtext(_q("tptz", "PresetToken")) or ""
        speed_frac = self._speed_frac(payload)
        self._cancel_move_timer()
        try:
            self.head.goto_preset(token, speed_frac=speed_frac)
        except HeadCommandRefused as exc:
            raise _invalid("NoToken", str(exc)) from exc
        return "<tptz:GotoPresetResponse/>"

    def _op_RemovePreset(self, payload: ET.Element) -> str:
        self._check_profile(payload)
        token = payload.findtext(_q("tptz", "PresetToken")) or ""
        try:
            self.head.remove_preset(token)
        except HeadCommandRefused as exc:
            raise _invalid("NoToken", str(exc)) from exc
        return "<tptz:RemovePresetResponse/>"


def _make_handler(server: OnvifPtzServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "towerwatch-onvif-sim/1"

        def do_POST(self) -> None:
            if not self.path.startswith("/onvif/"):
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            status, body = server.handle(self.rfile.read(length))
            self.send_response(status)
            content_type = (
                "application/soap+xml; charset=utf-8" if body.startswith(b"<?xml") else "text/html"
            )
            self.send_header("Content-Type", content_type)
            faults = server.faults
            try:
                if faults.cut_chunked_reply:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    half = body[: len(body) // 2]
                    self.wfile.write(f"{len(body):x}\r\n".encode() + half)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if faults.drip_reply_s > 0.0:
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(faults.drip_reply_s)
                    return
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up waiting (a timeout test); nothing left to tell it.
                return

        def log_message(self, format: str, *args: object) -> None:
            log.debug("onvif_sim_http", message=format % args)

    return Handler
