"""HTTP API and the duty officer's page: thin handlers over the store.

Starlette (with uvicorn) because it is small, has no template or ORM layer we would not
use, serves plain sync handlers from a thread pool (the store is blocking), and its test
client drives the app without a socket.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.cap import fire_cap
from hub.geojson import fire_collection, tower_collection
from hub.store import Store

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


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": f"no such {what}"}, status_code=404)


def create_app(store: Store, refresh_s: float = 2.0, health: Any = None) -> Starlette:
    page = _static("index.html").decode().replace("{{refresh_ms}}", str(int(refresh_s * 1000)))
    assets = {
        "app.js": (_static("app.js"), "text/javascript; charset=utf-8"),
        "app.css": (_static("app.css"), "text/css; charset=utf-8"),
    }

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
        # Officer accounts come with the hub's access control; until then the page
        # names who acknowledged in the body and the hub records it as given.
        by_name = "duty officer"
        body = await request.body()
        if body:
            try:
                data = json.loads(body)
            except json.JSONDecodeError:
                return JSONResponse({"error": "body must be JSON"}, status_code=400)
            name = data.get("by") if isinstance(data, dict) else None
            if isinstance(name, str) and 0 < len(name) <= 100:
                by_name = name
        if not _ID_RE.match(fire_id):
            return _not_found("fire")
        ack = store.acknowledge(fire_id, by_name, time.time())
        if ack is None:
            return _not_found("fire")
        return JSONResponse({"fire_id": ack.fire_id, "by": ack.by_name, "at_s": ack.at_s})

    def towers(request: Request) -> Response:
        return _geojson(tower_collection(store.towers()))

    def healthz(request: Request) -> Response:
        return JSONResponse(health() if health is not None else {"ok": True})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name}", asset),
            Route("/api/fires", fires),
            Route("/api/fires/{fire_id}", fire),
            Route("/api/fires/{fire_id}/cap", cap),
            Route("/api/fires/{fire_id}/acknowledge", acknowledge, methods=["POST"]),
            Route("/api/alarms/{alarm_id}/snapshot", snapshot),
            Route("/api/towers", towers),
            Route("/api/health", healthz),
        ]
    )
