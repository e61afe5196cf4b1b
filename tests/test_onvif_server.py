"""The simulated ONVIF head, driven by an independent client: raw SOAP 1.2 envelopes written
from the ONVIF Core/PTZ specifications and the WS-Security UsernameToken profile, sent with
urllib. The simulator is thereby checked against more than our own driver."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from simulators.head import SimulatedHead
from simulators.onvif_server import OnvifPtzServer, parse_duration_s

pytestmark = pytest.mark.timeout(30)

S = "http://www.w3.org/2003/05/soap-envelope"
TT = "http://www.onvif.org/ver10/schema"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TDS = "http://www.onvif.org/ver10/device/wsdl"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
DEGREES = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/SphericalPositionSpaceDegrees"
GENERIC = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
T0 = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=dt.UTC).timestamp()


class StepClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, dt_s: float) -> None:
        self.t += dt_s

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / 20.0


@pytest.fixture
def device() -> Iterator[tuple[StepClock, SimulatedHead, OnvifPtzServer]]:
    clock = StepClock(T0)
    head = SimulatedHead(clock, backlash_deg=0.0)  # type: ignore[arg-type]
    server = OnvifPtzServer(head, clock, username="operator", password="tower-pass")  # type: ignore[arg-type]
    server.start()
    yield clock, head, server
    server.stop()


def security_header(user: str, password: str, created: str, nonce: bytes) -> str:
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest())
    return (
        f'<s:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{user}</wsse:Username>"
        f'<wsse:Password Type="{DIGEST}">{digest.decode()}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security></s:Header>"
    )


def call(
    server: OnvifPtzServer,
    body: str,
    *,
    service: str = "ptz",
    user: str = "operator",
    password: str | None = "tower-pass",
    created_t: float | None = None,
    nonce: bytes | None = None,
) -> tuple[int, ET.Element]:
    header = ""
    if password is not None:
        t = server.clock.now() if created_t is None else created_t
        created = dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        header = security_header(user, password, created, nonce or os.urandom(16))
    envelope = (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{S}" xmlns:tt="{TT}" '
        f'xmlns:tptz="{TPTZ}" xmlns:trt="{TRT}" xmlns:tds="{TDS}">{header}<s:Body>{body}</s:Body></s:Envelope>'
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/onvif/{service}_service",
        data=envelope.encode(),
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, ET.fromstring(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, ET.fromstring(err.read())


def fault_subcodes(root: ET.Element) -> list[str]:
    return [v.text or "" for v in root.iter(f"{{{S}}}Value")][1:]


def status_of(server: OnvifPtzServer) -> ET.Element:
    code, root = call(
        server,
        "<tptz:GetStatus><tptz:ProfileToken>thermal_main</tptz:ProfileToken></tptz:GetStatus>",
    )
    assert code == 200
    found = root.find(f".//{{{TPTZ}}}PTZStatus")
    assert found is not None
    return found


def test_device_time_is_served_without_authentication(device) -> None:
    _, _, server = device
    code, root = call(server, "<tds:GetSystemDateAndTime/>", service="device", password=None)
    assert code == 200
    utc = root.find(f".//{{{TT}}}UTCDateTime")
    assert utc is not None
    assert [utc.findtext(f".//{{{TT}}}{k}") for k in ("Year", "Month", "Day", "Hour")] == [
        "2030",
        "6",
        "1",
        "12",
    ]


def test_everything_else_needs_a_valid_digest(device) -> None:
    clock, _, server = device
    body = "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>"
    code, root = call(server, body, service="device", password=None)
    assert code == 400 and fault_subcodes(root) == ["ter:NotAuthorized"]
    assert call(server, body, service="device", password="wrong")[0] == 400
    assert call(server, body, service="device", user="admin")[0] == 400
    stale = clock.now() - 120.0
    assert call(server, body, service="device", created_t=stale)[0] == 400, (
        "outside the skew window"
    )
    nonce = os.urandom(16)
    assert call(server, body, service="device", nonce=nonce)[0] == 200
    assert call(server, body, service="device", nonce=nonce)[0] == 400, "a replayed nonce"
    code, root = call(server, body, service="device")
    assert code == 200
    xaddr = root.findtext(f".//{{{TT}}}PTZ/{{{TT}}}XAddr")
    assert xaddr == f"http://127.0.0.1:{server.port}/onvif/ptz_service"


def test_profiles_nodes_and_options_describe_a_profile_t_head(device) -> None:
    _, _, server = device
    code, root = call(server, "<trt:GetProfiles/>", service="media")
    assert code == 200
    profile = root.find(f".//{{{TRT}}}Profiles")
    assert profile is not None and profile.get("token") == "thermal_main"
    config = profile.find(f"{{{TT}}}PTZConfiguration")
    assert config is not None
    assert config.findtext(f"{{{TT}}}DefaultAbsolutePantTiltPositionSpace") == DEGREES
    code, root = call(
        server,
        f"<tptz:GetConfigurationOptions><tptz:ConfigurationToken>{config.get('token')}"
        "</tptz:ConfigurationToken></tptz:GetConfigurationOptions>",
    )
    assert code == 200
    spaces = {
        s.findtext(f"{{{TT}}}URI"): (
            s.findtext(f".//{{{TT}}}YRange/{{{TT}}}Min"),
            s.findtext(f".//{{{TT}}}YRange/{{{TT}}}Max"),
        )
        for s in root.iter(f"{{{TT}}}AbsolutePanTiltPositionSpace")
    }
    assert spaces == {DEGREES: ("-30.0", "30.0"), GENERIC: ("-1.0", "1.0")}
    assert root.findtext(f".//{{{TT}}}PTZTimeout/{{{TT}}}Max") == "PT60S"
    code, root = call(server, "<tptz:GetNodes/>")
    assert code == 200 and root.findtext(f".//{{{TT}}}MaximumNumberOfPresets") == "64"


def test_absolute_move_in_degrees_and_status_while_moving_and_idle(device) -> None:
    clock, head, server = device
    move = (
        "<tptz:AbsoluteMove><tptz:ProfileToken>thermal_main</tptz:ProfileToken><tptz:Position>"
        f'<tt:PanTilt x="-90" y="5" space="{DEGREES}"/><tt:Zoom x="1"/></tptz:Position></tptz:AbsoluteMove>'
    )
    assert call(server, move)[0] == 200
    clock.advance(1.0)
    status = status_of(server)
    assert status.findtext(f"{{{TT}}}MoveStatus/{{{TT}}}PanTilt") == "MOVING"
    clock.advance(10.0)
    status = status_of(server)
    pan_tilt = status.find(f"{{{TT}}}Position/{{{TT}}}PanTilt")
    assert pan_tilt is not None and pan_tilt.get("space") == DEGREES
    assert (float(pan_tilt.get("x", "nan")), float(pan_tilt.get("y", "nan"))) == pytest.approx(
        (-90.0, 5.0)
    )
    assert status.findtext(f"{{{TT}}}MoveStatus/{{{TT}}}PanTilt") == "IDLE"
    assert status.findtext(f"{{{TT}}}UtcTime") == "2030-06-01T12:00:11.000Z"
    assert head.state().raw_pan_deg == pytest.approx(270.0)
    assert head.state().hfov_deg == pytest.approx(head.hfov_min_deg)


def test_generic_space_maps_to_the_vendor_degree_ranges(device) -> None:
    clock, head, server = device
    move = (
        "<tptz:AbsoluteMove><tptz:ProfileToken>thermal_main</tptz:ProfileToken><tptz:Position>"
        f'<tt:PanTilt x="0.5" y="1" space="{GENERIC}"/></tptz:Position></tptz:AbsoluteMove>'
    )
    assert call(server, move)[0] == 200
    clock.advance(10.0)
    assert (head.state().raw_pan_deg, head.state().raw_tilt_deg) == pytest.approx((90.0, 30.0))


@pytest.mark.parametrize(
    ("body", "subcodes"),
    [
        (
            f'<tptz:AbsoluteMove><tptz:ProfileToken>thermal_main</tptz:ProfileToken><tptz:Position><tt:PanTilt x="0" y="45" space="{DEGREES}"/></tptz:Position></tptz:AbsoluteMove>',
            ["ter:InvalidArgVal", "ter:InvalidPosition"],
        ),
        (
            "<tptz:GetStatus><tptz:ProfileToken>visible</tptz:ProfileToken></tptz:GetStatus>",
            ["ter:InvalidArgVal", "ter:NoProfile"],
        ),
        (
            '<tptz:ContinuousMove><tptz:ProfileToken>thermal_main</tptz:ProfileToken><tptz:Velocity><tt:PanTilt x="0.5" y="0"/></tptz:Velocity><tptz:Timeout>PT5M</tptz:Timeout></tptz:ContinuousMove>',
            ["ter:InvalidArgVal", "ter:TimeoutNotSupported"],
        ),
        (
            "<tptz:GotoPreset><tptz:ProfileToken>thermal_main</tptz:ProfileToken><tptz:PresetToken>99</tptz:PresetToken></tptz:GotoPreset>",
            ["ter:InvalidArgVal", "ter:NoToken"],
        ),
    ],
)
def test_invalid_arguments_are_sender_faults(device, body: str, subcodes: list[str]) -> None:
    _, _, server = device
    code, root = call(server, body)
    assert code == 400
    assert root.findtext(f".//{{{S}}}Code/{{{S}}}Value") == "s:Sender"
    assert fault_subcodes(root) == subcodes


def test_continuous_move_honours_its_timeout_and_stop(device) -> None:
    clock, head, server = device
    body = (
        "<tptz:ContinuousMove><tptz:ProfileToken>thermal_main</tptz:ProfileToken><tptz:Velocity>"
        '<tt:PanTilt x="1" y="0"/></tptz:Velocity><tptz:Timeout>PT2S</tptz:Timeout></tptz:ContinuousMove>'
    )
    assert call(server, body)[0] == 200
    clock.advance(1.0)
    assert head.state().moving
    time.sleep(0.3)  # PT2S is 0.1 s of wall time on this clock
    clock.advance(5.0)
    assert not head.state().moving, "stopped by its Timeout"
    server.faults.ignore_stop = True
    assert call(server, body.replace("PT2S", "PT60S"))[0] == 200
    stop = "<tptz:Stop><tptz:ProfileToken>thermal_main</tptz:ProfileToken></tptz:Stop>"
    assert call(server, stop)[0] == 200
    clock.advance(5.0)
    assert head.state().moving, "a head that ignores Stop"
    server.faults.ignore_stop = False
    assert call(server, stop)[0] == 200
    clock.advance(5.0)
    assert not head.state().moving


def test_presets_set_list_goto_remove(device) -> None:
    clock, head, server = device
    p = "<tptz:ProfileToken>thermal_main</tptz:ProfileToken>"
    code, root = call(
        server, f"<tptz:SetPreset>{p}<tptz:PresetName>dam</tptz:PresetName></tptz:SetPreset>"
    )
    assert code == 200
    token = root.findtext(f".//{{{TPTZ}}}PresetToken")
    code, root = call(server, f"<tptz:GetPresets>{p}</tptz:GetPresets>")
    assert [
        (e.get("token"), e.findtext(f"{{{TT}}}Name")) for e in root.iter(f"{{{TPTZ}}}Preset")
    ] == [(token, "dam")]
    head.command_absolute(100.0, 10.0)
    clock.advance(10.0)
    assert (
        call(
            server,
            f"<tptz:GotoPreset>{p}<tptz:PresetToken>{token}</tptz:PresetToken></tptz:GotoPreset>",
        )[0]
        == 200
    )
    clock.advance(10.0)
    assert head.state().raw_pan_deg == pytest.approx(0.0)
    assert (
        call(
            server,
            f"<tptz:RemovePreset>{p}<tptz:PresetToken>{token}</tptz:PresetToken></tptz:RemovePreset>",
        )[0]
        == 200
    )
    assert head.presets() == {}


def test_fault_switches_undeclared_prefix_garbage_drop_and_restore(device) -> None:
    _, _, server = device
    server.faults.undeclared_fault_prefix = True
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/onvif/ptz_service",
        data=f'<s:Envelope xmlns:s="{S}"><s:Body><tptz:GetNodes xmlns:tptz="{TPTZ}"/></s:Body></s:Envelope>'.encode(),
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    text = err.value.read().decode()
    assert "<s:Value>ter:NotAuthorized</s:Value>" in text and "xmlns:ter" not in text
    server.faults.undeclared_fault_prefix = False
    server.faults.garbage_replies = True
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == 500 and not err.value.read().startswith(b"<?xml")
    server.faults.garbage_replies = False
    port = server.port
    server.drop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(request, timeout=5)
    server.restore()
    assert server.port == port
    assert call(server, "<tptz:GetNodes/>")[0] == 200


def test_xs_duration_parsing() -> None:
    assert parse_duration_s("PT5S") == 5.0
    assert parse_duration_s("PT0.5S") == 0.5
    assert parse_duration_s("PT1M30S") == 90.0
    for bad in ("5", "PT", "P", "PTxS"):
        with pytest.raises(ValueError):
            parse_duration_s(bad)
