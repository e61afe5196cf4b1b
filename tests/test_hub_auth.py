"""Accounts on the hub's page and API: who may read, acknowledge and see the audit log."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hub.auth import LoginLimiter, check_login, hash_password, verify_password
from hub.fires import Fuser, FusionSettings
from hub.store import SqliteStore
from hub.synth import alarm_payload, status_payload
from hub.web import SESSION_COOKIE, WebSecurity, create_app
from tests.conftest import MosquittoBroker, MqttCollector
from tests.hub_helpers import (
    FIRE,
    OFFICER,
    REPO_ROOT,
    TOWER_A,
    VIEWER,
    HubProcess,
    add_accounts,
    publish,
)

BASE = "http://testserver"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "hub.sqlite3")
    add_accounts(s)
    yield s
    s.close()


def _fire_id(store: SqliteStore) -> str:
    from edge.messages import AlarmMessage

    store.record_status("T1", status_payload("T1", *TOWER_A), "online", 1.0)
    alarm = AlarmMessage.model_validate(
        alarm_payload(
            alarm_id="T1-a",
            seq=1,
            tower_id="T1",
            tower_lat=TOWER_A[0],
            tower_lon=TOWER_A[1],
            fire_lat=FIRE[0],
            fire_lon=FIRE[1],
            state="confirmed",
            first_seen_s=1_800_000_000.0,
            sent_at_s=1_800_000_001.0,
        )
    )
    store.record_alarm(alarm, alarm.to_json(), 1.0)
    (fire,) = store.fuse(Fuser(FusionSettings()), 1_800_000_100.0)
    return fire.fire_id


def _login(client: TestClient, account: tuple[str, str]) -> str:
    response = client.post("/api/login", json={"name": account[0], "password": account[1]})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf"])


def test_scrypt_hash_verifies_only_its_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert hash_password("correct horse battery") != stored  # salted
    assert not verify_password("x", "garbage")
    assert not check_login(None, "anything")


def test_anonymous_requests_are_refused_before_the_id_is_looked_at(store: SqliteStore) -> None:
    fire_id = _fire_id(store)
    client = TestClient(create_app(store))
    for fid in (fire_id, "Fnope", "bad%00id", "x" * 300):
        assert client.post(f"/api/fires/{fid}/acknowledge").status_code == 401
    for path in ("/api/fires", f"/api/fires/{fire_id}", "/api/towers", "/api/audit"):
        assert client.get(path).status_code == 401, path
    assert client.get("/api/health").status_code == 200
    assert client.get("/").status_code == 200  # the page itself holds no data: a login form
    assert store.acknowledgements() == {}


def test_anonymous_read_when_configured_never_writes(store: SqliteStore) -> None:
    fire_id = _fire_id(store)
    client = TestClient(create_app(store, security=WebSecurity(anonymous_read=True)))
    assert client.get("/api/fires").status_code == 200
    assert client.post(f"/api/fires/{fire_id}/acknowledge").status_code == 401
    assert client.get("/api/audit").status_code == 401


def test_viewer_sees_but_may_not_acknowledge(store: SqliteStore) -> None:
    fire_id = _fire_id(store)
    client = TestClient(create_app(store))
    csrf = _login(client, VIEWER)
    assert len(client.get("/api/fires").json()["features"]) == 1
    response = client.post(f"/api/fires/{fire_id}/acknowledge", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403
    assert client.get("/api/audit").status_code == 403
    assert store.acknowledgements() == {}


def test_officer_acknowledgement_is_audited(store: SqliteStore) -> None:
    fire_id = _fire_id(store)
    client = TestClient(create_app(store))
    csrf = _login(client, OFFICER)
    response = client.post(f"/api/fires/{fire_id}/acknowledge", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200 and response.json()["by"] == OFFICER[0]
    audit = client.get("/api/audit").json()
    assert [(e["actor"], e["action"], e["target"]) for e in audit[:2]] == [
        (OFFICER[0], "acknowledge", fire_id),
        (OFFICER[0], "login", "testclient"),
    ]


def test_cross_site_requests_are_refused(store: SqliteStore) -> None:
    fire_id = _fire_id(store)
    client = TestClient(create_app(store))
    csrf = _login(client, OFFICER)
    url = f"/api/fires/{fire_id}/acknowledge"
    # The browser sends the cookie cross-site only without the token a page of ours holds.
    assert client.post(url).status_code == 403
    assert client.post(url, headers={"X-CSRF-Token": "guess"}).status_code == 403
    assert (
        client.post(
            url, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    assert store.acknowledgements() == {}
    assert client.post(url, headers={"X-CSRF-Token": csrf, "Origin": BASE}).status_code == 200
    other = TestClient(create_app(store))
    assert (
        other.post(
            "/api/login",
            json={"name": OFFICER[0], "password": OFFICER[1]},
            headers={"Origin": "http://evil.example"},
        ).status_code
        == 403
    )


def test_session_cookie_is_http_only_strict_and_logout_ends_it(store: SqliteStore) -> None:
    client = TestClient(create_app(store))
    response = client.post("/api/login", json={"name": VIEWER[0], "password": VIEWER[1]})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    token = client.cookies[SESSION_COOKIE]
    csrf = response.json()["csrf"]
    assert client.get("/api/session").json()["role"] == "viewer"
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    stale = TestClient(create_app(store), cookies={SESSION_COOKIE: token})
    assert stale.get("/api/fires").status_code == 401


def test_sessions_expire(store: SqliteStore) -> None:
    client = TestClient(create_app(store, security=WebSecurity(session_ttl_s=60.0)))
    _login(client, VIEWER)
    assert client.get("/api/fires").status_code == 200
    # A session whose time is up is gone: the store drops it on the next look-up.
    token = client.cookies[SESSION_COOKIE]
    from hub.auth import token_digest

    session = store.session(token_digest(token), 0.0)
    assert session is not None
    assert store.session(token_digest(token), session.expires_s + 1.0) is None
    assert client.get("/api/fires").status_code == 401


def test_login_is_rate_limited_per_address_and_name(store: SqliteStore) -> None:
    client = TestClient(create_app(store, security=WebSecurity(login_attempts=3)))
    for _ in range(3):
        bad = client.post("/api/login", json={"name": OFFICER[0], "password": "wrong-wrong"})
        assert bad.status_code == 401
    blocked = client.post("/api/login", json={"name": OFFICER[0], "password": OFFICER[1]})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert client.post("/api/login", json={"name": "nobody", "password": 5}).status_code == 400


def test_limiter_window_passes() -> None:
    limiter = LoginLimiter(2, 10.0)
    limiter.failed(["a"], now_s=0.0)
    limiter.failed(["a"], now_s=1.0)
    assert limiter.blocked_for_s(["a"], now_s=2.0) == pytest.approx(8.0)
    assert limiter.blocked_for_s(["b"], now_s=2.0) == 0.0
    assert limiter.blocked_for_s(["a"], now_s=10.5) == 0.0


def test_forwarded_proto_is_believed_only_from_trusted_proxies(store: SqliteStore) -> None:
    headers = {"X-Forwarded-Proto": "https"}
    body = {"name": VIEWER[0], "password": VIEWER[1]}
    untrusted = TestClient(create_app(store))
    cookie = untrusted.post("/api/login", json=body, headers=headers).headers["set-cookie"]
    assert "secure" not in cookie.lower()
    trusted = TestClient(
        create_app(store, security=WebSecurity(trusted_proxies=frozenset({"testclient"})))
    )
    cookie = trusted.post("/api/login", json=body, headers=headers).headers["set-cookie"]
    assert "secure" in cookie.lower()


def test_running_hub_refuses_anonymous_and_viewer_and_audits_the_officer(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    workdir = tmp_path / "hub"
    workdir.mkdir()
    config = tmp_path / "hub.yaml"
    config.write_text(f"store:\n  sqlite_path: {workdir / 'hub.sqlite3'}\n")
    add = [sys.executable, "-m", "edge.cli", "hub", "user", "add", "chen", "--role", "officer"]
    made = subprocess.run(
        [*add, "--config", str(config)],
        input=b"chen-password-9\n",
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    again = subprocess.run(
        [*add, "--config", str(config)],
        input=b"x\n",
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
    )
    assert again.returncode == 2 and b"password: at least" in again.stderr
    hub = HubProcess(mqtt_broker.port, workdir).start()
    try:
        publish(
            mqtt_broker.port,
            [
                ("towerwatch/T1/status", json.dumps(status_payload("T1", *TOWER_A)), True),
                (
                    "towerwatch/T1/alarm",
                    json.dumps(
                        alarm_payload(
                            alarm_id="T1-fire1",
                            seq=1,
                            tower_id="T1",
                            tower_lat=TOWER_A[0],
                            tower_lon=TOWER_A[1],
                            fire_lat=FIRE[0],
                            fire_lon=FIRE[1],
                            state="confirmed",
                        )
                    ),
                    False,
                ),
            ],
        )
        fire_id = hub.wait_for(
            lambda: [f["id"] for f in hub.get_json("/api/fires")["features"]], "the fire"
        )[0]
        url = f"{hub.url}/api/fires/{fire_id}/acknowledge"

        def post(headers: dict[str, str]) -> int:
            request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert post({}) == 401
        cookie, csrf = hub.login(*VIEWER)
        assert post({"Cookie": cookie, "X-CSRF-Token": csrf}) == 403
        cookie, csrf = hub.login("chen", "chen-password-9")
        assert post({"Cookie": cookie, "X-CSRF-Token": csrf}) == 200
        hub.cookie = cookie
        audit = hub.get_json("/api/audit")
        assert (audit[0]["actor"], audit[0]["action"], audit[0]["target"]) == (
            "chen",
            "acknowledge",
            fire_id,
        )
    finally:
        hub.stop()


def test_officer_commands_are_validated_stamped_and_audited(store: SqliteStore) -> None:
    sent: list[tuple[str, str, dict[str, object]]] = []
    client = TestClient(
        create_app(
            store, send_command=lambda tower, verb, payload: sent.append((tower, verb, payload))
        )
    )
    url = "/api/towers/T1/commands/recheck"
    assert client.post(url, json={"bearing_deg": 10.0}).status_code == 401
    viewer_csrf = _login(client, VIEWER)
    assert (
        client.post(
            url, json={"bearing_deg": 10.0}, headers={"X-CSRF-Token": viewer_csrf}
        ).status_code
        == 403
    )
    csrf = _login(client, OFFICER)
    headers = {"X-CSRF-Token": csrf}
    bad = client.post(url, json={"bearing_deg": 720.0}, headers=headers)
    assert bad.status_code == 400 and "bearing_deg" in bad.json()["error"]
    assert client.post("/api/towers/T1/commands/goto", json={}, headers=headers).status_code == 404
    assert sent == []
    ok = client.post(url, json={"bearing_deg": 10.0}, headers=headers)
    assert ok.status_code == 202
    ((tower, verb, payload),) = sent
    assert (tower, verb, payload["bearing_deg"]) == ("T1", "recheck", 10.0)
    assert payload["request_id"] == ok.json()["request_id"]
    assert str(payload["issued_at"]).endswith("Z")
    test_alarm = client.post("/api/towers/T2/commands/test-alarm", json={}, headers=headers)
    assert test_alarm.status_code == 202
    audit = [(e.actor, e.action, e.target) for e in store.audit_log()]
    assert audit[:2] == [
        (OFFICER[0], "command:test-alarm", "T2"),
        (OFFICER[0], "command:recheck", "T1"),
    ]


def test_running_hub_sends_an_officer_command_over_mqtt(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    hub = HubProcess(mqtt_broker.port, tmp_path / "hub").start()
    try:
        with MqttCollector(mqtt_broker.host, mqtt_broker.port, ["towerwatch/T1/cmd/#"]) as tower:
            cookie, csrf = hub.login(*OFFICER)
            request = urllib.request.Request(
                f"{hub.url}/api/towers/T1/commands/test-alarm",
                data=b'{"note": "drill"}',
                headers={"Cookie": cookie, "X-CSRF-Token": csrf},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                request_id = json.loads(response.read())["request_id"]
            (message,) = hub.wait_for(
                lambda: tower.messages("towerwatch/T1/cmd/test-alarm"), "the command"
            )
        payload = json.loads(message.payload)
        assert payload["request_id"] == request_id and payload["note"] == "drill"
        assert not message.retain
    finally:
        hub.stop()
