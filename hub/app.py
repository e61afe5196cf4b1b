"""Wires one hub instance together and runs it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import structlog
import uvicorn

from hub.config import HubConfig
from hub.fires import Fuser
from hub.ingest import Ingest
from hub.service import FusionWorker, HubMqtt
from hub.store import open_store
from hub.web import WebSecurity, create_app

log = structlog.get_logger("hub")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its shutdown, which would skip ours; we own signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_hub(config: HubConfig) -> int:
    """Run the hub; returns the exit code. The store is opened before anything listens."""
    store = open_store(config.store)
    fuser = Fuser(config.fusion.settings())
    worker_box: list[FusionWorker] = []

    def poke() -> None:
        if worker_box:
            worker_box[0].poke()

    ingest = Ingest(
        store,
        config.mqtt.topic_prefix,
        config.limits.max_json_bytes,
        config.limits.max_snapshot_bytes,
        on_alarm=poke,
        max_clock_ahead_s=config.limits.max_clock_ahead_s,
        max_tower_shift_m=config.limits.max_tower_shift_m,
        max_fire_range_m=config.limits.max_fire_range_m,
        max_bearing_mismatch_deg=config.limits.max_bearing_mismatch_deg,
    )
    mqtt = HubMqtt(config, ingest)
    worker = FusionWorker(store, fuser, mqtt.publish_fire, config.fusion.debounce_s)
    worker_box.append(worker)

    def health() -> dict[str, Any]:
        return {
            "mqtt_connected": mqtt.connected.is_set(),
            "messages": dict(ingest.outcomes),
            "handler_errors": mqtt.handler_errors,
            "fusion_passes": worker.passes,
            "fusion_errors": worker.errors,
        }

    http = config.http
    security = WebSecurity(
        anonymous_read=http.anonymous_read,
        session_ttl_s=http.session_ttl_s,
        login_attempts=http.login_attempts,
        login_window_s=http.login_window_s,
        trusted_proxies=frozenset(http.trusted_proxies),
    )
    app = create_app(store, http.refresh_s, health, security, mqtt.publish_command)
    server = _Server(
        uvicorn.Config(
            app,
            host=config.http.host,
            port=config.http.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    worker.start()
    mqtt.start()
    log.info(
        "hub_started",
        broker=f"{config.mqtt.host}:{config.mqtt.port}",
        http=f"http://{config.http.host}:{config.http.port}/",
        store=config.store.backend,
    )
    try:
        server.run()
    finally:
        mqtt.stop()
        worker.stop()
        store.close()
        log.info("hub_stopped")
    return 0 if server.started else 1
