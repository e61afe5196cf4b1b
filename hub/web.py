"""HTTP API and the duty officer's page: thin handlers over the store.

Starlette (with uvicorn) because it is small, has no template or ORM layer we would not
use, serves plain sync handlers from a thread pool (the store is blocking), and its test
client drives the app without a socket.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.messages import CommandError, iso_z, parse_command
from hub.auth import (
    LoginLimiter,
    check_login,
    new_token,
    same_token,
    token_digest,
)
from hub.cap import fire_cap
from hub.geojson import fire_collection, tower_collection
from hub.store import Session, Store

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NO_CACHE = {"Cache-Control": "no-store"}
GEOJSON = "application/geo+json"
# The page loads nothing from elsewhere: no tiles, no CDN, no inline third-party code.
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def _static(name: str) -> bytes:
    return resources.files("hub").joinpath("static", name).read_bytes()


def _geojson(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data), media_type=GEOJSON, headers=_NO_CACHE)


SESSION_COOKIE = "towerwatch_session"
CSRF_HEADER = "X-CSRF-Token"
_MAX_BODY_BYTES = 4096
# What an officer may send a tower from the page; goto and relay-reset stay with the
# technician on site.
HUB_COMMANDS = ("recheck", "test-alarm")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class WebSecurity:
    """How the page and API guard themselves (the ``http`` section of the hub config)."""

    anonymous_read: bool = False
    session_ttl_s: float = 12 * 3600.0
    login_attempts: int = 5
    login_window_s: float = 300.0
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": f"no such {what}"}, status_code=404)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_CACHE)


def create_app(
    store: Store,
    refresh_s: float = 2.0,
    health: Any = None,
    security: WebSecurity | None = None,
    send_command: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> Starlette:
    sec = security or WebSecurity()
    limiter = LoginLimiter(sec.login_attempts, sec.login_window_s)
    page = _static("index.html").decode().replace("{{refresh_ms}}", str(int(refresh_s * 1000)))
    assets = {
        "app.js": (_static("app.js"), "text/javascript; charset=utf-8"),
        "app.css": (_static("app.css"), "text/css; charset=utf-8"),
    }

    def https(request: Request) -> bool:
        """Whether the browser speaks HTTPS: our own scheme, or a trusted proxy's word."""
        client = request.client.host if request.client else ""
        if client in sec.trusted_proxies:
            return request.headers.get("x-forwarded-proto", "").lower() == "https"
        return request.url.scheme == "https"

    def same_origin(request: Request) -> bool:
        """A browser names the page a state-changing request comes from; it must be ours."""
        origin = request.headers.get("origin")
        if origin is None:
            return True  # not a browser (curl, a script): the CSRF token still guards it
        scheme = "https" if https(request) else "http"
        return origin == f"{scheme}://{request.headers.get('host', '')}"

    def current(request: Request) -> Session | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 200:
            return None
        return store.session(token_digest(token), time.time())

    def guarded(role: str | None, write: bool, handler: Handler) -> Handler:
        """Authentication first, whatever the path: no session 401, wrong role 403, then CSRF."""

        async def run(request: Request) -> Response:
            session = current(request)
            if session is None:
                if role is None and not write and sec.anonymous_read:
                    return await handler(request)
                return _error(401, "log in first")
            if role == "officer" and session.role != "officer":
                return _error(403, "officers only")
            if write and (
                not same_origin(request)
                or not same_token(request.headers.get(CSRF_HEADER, ""), session.csrf)
            ):
                return _error(403, f"cross-site request refused: send the {CSRF_HEADER} header")
            request.state.session = session
            return await handler(request)

        return run

    def reader(fn: Callable[[Request], Response]) -> Handler:
        async def run(request: Request) -> Response:
            return fn(request)

        return guarded(None, False, run)

    async def json_body(request: Request) -> dict[str, Any] | None:
        body = await request.body()
        if len(body) > _MAX_BODY_BYTES:
            return None
        try:
            data = json.loads(body) if body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    async def login(request: Request) -> Response:
        if not same_origin(request):
            return _error(403, "cross-site login refused")
        data = await json_body(request)
        name = data.get("name") if data else None
        password = data.get("password") if data else None
        if not isinstance(name, str) or not isinstance(password, str) or len(password) > 1024:
            return _error(400, 'body must be JSON {"name": ..., "password": ...}')
        client = request.client.host if request.client else "?"
        keys = [f"addr:{client}", f"name:{name[:100]}"]
        wait_s = limiter.blocked_for_s(keys)
        if wait_s > 0:
            return JSONResponse(
                {"error": "too many failed logins; try again later"},
                status_code=429,
                headers={"Retry-After": str(int(wait_s) + 1)},
            )
        account = store.user(name) if _ID_RE.match(name) else None
        if not check_login(account[1] if account else None, password):
            limiter.failed(keys)
            store.audit(name[:100], "login_failed", client, "", time.time())
            return _error(401, "wrong name or password")
        token, csrf = new_token(), new_token()
        expires_s = time.time() + sec.session_ttl_s
        store.open_session(token_digest(token), name, csrf, expires_s)
        store.audit(name, "login", client, "", time.time())
        assert account is not None
        response = JSONResponse(
            {"name": name, "role": account[0], "csrf": csrf, "expires_s": expires_s},
            headers=_NO_CACHE,
        )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(sec.session_ttl_s),
            httponly=True,
            samesite="strict",
            secure=https(request),
            path="/",
        )
        return response

    async def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        store.close_session(token_digest(token))
        session: Session = request.state.session
        store.audit(session.name, "logout", "", "", time.time())
        response = JSONResponse({"ok": True}, headers=_NO_CACHE)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def whoami(request: Request) -> Response:
        session: Session = request.state.session
        return JSONResponse(
            {
                "name": session.name,
                "role": session.role,
                "csrf": session.csrf,
                "expires_s": session.expires_s,
            },
            headers=_NO_CACHE,
        )

    async def audit_log(request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "at_s": e.at_s,
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "detail": e.detail,
                }
                for e in store.audit_log()
            ],
            headers=_NO_CACHE,
        )

    async def command(request: Request) -> Response:
        """Officer → `<prefix>/<tower>/cmd/<verb>`, stamped with issued_at and a request id."""
        session: Session = request.state.session
        tower_id = request.path_params["tower_id"]
        verb = request.path_params["verb"]
        if not _ID_RE.match(tower_id):
            return _not_found("tower")
        if verb not in HUB_COMMANDS:
            return _error(404, f"no such command; the hub sends: {', '.join(HUB_COMMANDS)}")
        data = await json_body(request)
        if data is None:
            return _error(400, f"body must be a JSON object of at most {_MAX_BODY_BYTES} bytes")
        now_s = time.time()
        request_id = f"hub-{new_token()[:16]}"
        data = {**data, "request_id": request_id, "issued_at": iso_z(now_s)}
        payload = json.dumps(data).encode()
        try:
            parse_command(verb, payload)
        except CommandError as exc:
            return _error(400, str(exc))
        if send_command is None:
            return _error(503, "this hub has no broker connection to send commands on")
        send_command(tower_id, verb, data)
        store.audit(session.name, f"command:{verb}", tower_id, payload.decode(), now_s)
        return JSONResponse(
            {"tower_id": tower_id, "verb": verb, "request_id": request_id},
            status_code=202,
            headers=_NO_CACHE,
        )

    def index(request: Request) -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _PAGE_CSP, **_NO_CACHE},
        )

    def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return _not_found("file")
        return Response(found[0], media_type=found[1])

    def fires(request: Request) -> Response:
        include_cleared = request.query_params.get("all") in ("1", "true")
        return _geojson(
            fire_collection(
                store.fires(active_only=not include_cleared),
                store.acknowledgements(),
                store.snapshot_ids(),
            )
        )

    def fire(request: Request) -> Response:
        fire_id = request.path_params["fire_id"]
        found = store.fire(fire_id) if _ID_RE.match(fire_id) else None
        if found is None:
            return _not_found("fire")
        collection = fire_collection([found], store.acknowledgements(), store.snapshot_ids())
        return _geojson(collection["features"][0])

    def cap(request: Request) -> Response:
        fire_id = request.path_params["fire_id"]
        found = store.fire(fire_id) if _ID_RE.match(fire_id) else None
        if found is None:
            return _not_found("fire")
        return Response(fire_cap(found), media_type="application/cap+xml", headers=_NO_CACHE)

    def snapshot(request: Request) -> Response:
        alarm_id = request.path_params["alarm_id"]
        jpeg = store.snapshot(alarm_id) if _ID_RE.match(alarm_id) else None
        if jpeg is None:
            return _not_found("snapshot")
        return Response(jpeg, media_type="image/jpeg")

    async def acknowledge(request: Request) -> Response:
        fire_id = request.path_params["fire_id"]
        # Who acknowledged is the logged-in officer, never a name the body claims.
        session: Session = request.state.session
        if not _ID_RE.match(fire_id):
            return _not_found("fire")
        now_s = time.time()
        ack = store.acknowledge(fire_id, session.name, now_s)
        if ack is None:
            return _not_found("fire")
        store.audit(session.name, "acknowledge", fire_id, f"first by {ack.by_name}", now_s)
        return JSONResponse({"fire_id": ack.fire_id, "by": ack.by_name, "at_s": ack.at_s})

    def towers(request: Request) -> Response:
        return _geojson(tower_collection(store.towers()))

    def healthz(request: Request) -> Response:
        return JSONResponse(health() if health is not None else {"ok": True})

    officer_write = ("officer", True)
    return Starlette(
        routes=[
            # The page and its assets hold no data: they load for everyone and show a login.
            Route("/", index),
            Route("/static/{name}", asset),
            Route("/api/health", healthz),
            Route("/api/login", login, methods=["POST"]),
            Route("/api/logout", guarded("viewer", True, logout), methods=["POST"]),
            Route("/api/session", guarded("viewer", False, whoami)),
            Route("/api/audit", guarded("officer", False, audit_log)),
            Route("/api/fires", reader(fires)),
            Route("/api/fires/{fire_id}", reader(fire)),
            Route("/api/fires/{fire_id}/cap", reader(cap)),
            Route(
                "/api/fires/{fire_id}/acknowledge",
                guarded(*officer_write, acknowledge),
                methods=["POST"],
            ),
            Route("/api/alarms/{alarm_id}/snapshot", reader(snapshot)),
            Route("/api/towers", reader(towers)),
            Route(
                "/api/towers/{tower_id}/commands/{verb}",
                guarded(*officer_write, command),
                methods=["POST"],
            ),
        ]
    )
