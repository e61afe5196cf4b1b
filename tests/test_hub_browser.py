"""The officer's page in a real browser (Debian's chromium via Playwright), fed by real MQTT."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.synth import alarm_payload, status_payload
from tests.conftest import MosquittoBroker
from tests.hub_helpers import FIRE, OFFICER, TOWER_A, TOWER_B, HubProcess, publish

CHROMIUM = "/usr/bin/chromium"
# Nothing but the hub: no updater, no first-run pages, no network of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def hub(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(mqtt_broker.port, tmp_path / "hub").start()
    yield process
    process.stop()


def _alarm(tid: str, tower: tuple[float, float], seq: int, state: str) -> str:
    return json.dumps(
        alarm_payload(
            alarm_id=f"{tid}-b1",
            seq=seq,
            tower_id=tid,
            tower_lat=tower[0],
            tower_lon=tower[1],
            fire_lat=FIRE[0],
            fire_lon=FIRE[1],
            state=state,
        )
    )


def test_fire_appears_on_map_and_list_then_leaves_when_cleared(
    browser: object, hub: HubProcess, mqtt_broker: MosquittoBroker
) -> None:
    assert shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    page = browser.new_page()  # type: ignore[attr-defined]
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(hub.url) else None,
    )
    page.goto(hub.url + "/")
    # Nothing shows before a login; a wrong password is refused on the page.
    page.wait_for_selector("#login:not([hidden])", timeout=10_000)
    page.fill("#login-name", OFFICER[0])
    page.fill("#login-password", "not-the-password")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login-error:has-text('wrong name or password')", timeout=10_000)
    page.fill("#login-password", OFFICER[1])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login[hidden]", state="attached", timeout=10_000)
    assert "officer" in page.locator("#who").inner_text()
    publish(
        mqtt_broker.port,
        [
            ("towerwatch/T1/status", json.dumps(status_payload("T1", *TOWER_A)), True),
            (
                "towerwatch/T2/status",
                json.dumps(status_payload("T2", *TOWER_B, state="degraded")),
                True,
            ),
            ("towerwatch/T1/alarm", _alarm("T1", TOWER_A, 1, "confirmed"), False),
            ("towerwatch/T2/alarm", _alarm("T2", TOWER_B, 1, "confirmed"), False),
        ],
    )
    fire_id = hub.wait_for(
        lambda: [
            f["id"]
            for f in hub.get_json("/api/fires")["features"]
            if f["properties"]["range_source"] == "triangulated"
        ],
        "the fused fire",
    )[0]
    page.wait_for_selector(f'#layer-fires [data-fire-id="{fire_id}"]', timeout=15_000)
    page.wait_for_selector(f'#fires li[data-fire-id="{fire_id}"]', timeout=15_000)
    item = page.locator(f'#fires li[data-fire-id="{fire_id}"]')
    text = item.inner_text()
    assert "T1, T2" in text and "triangulated" in text and "UTC" in text
    assert (
        page.locator('#layer-towers [data-tower-id="T2"]').get_attribute("class")
        == "tower-degraded"
    )
    assert page.locator(f'#layer-rays [data-fire-id="{fire_id}"]').count() == 2
    assert page.locator(f'#layer-areas [data-fire-id="{fire_id}"]').count() == 1

    # Keyboard: tab to the fire, select it with Enter, acknowledge with the button.
    item.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#layer-fires .selected[data-fire-id="{fire_id}"]', timeout=5_000)
    page.locator(f'#fires li[data-fire-id="{fire_id}"] button[data-ack]').focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#fires li.acknowledged[data-fire-id="{fire_id}"]', timeout=10_000)

    publish(
        mqtt_broker.port,
        [
            ("towerwatch/T1/alarm", _alarm("T1", TOWER_A, 2, "cleared"), False),
            ("towerwatch/T2/alarm", _alarm("T2", TOWER_B, 2, "cleared"), False),
        ],
    )
    page.wait_for_selector(
        f'#layer-fires [data-fire-id="{fire_id}"]', state="detached", timeout=15_000
    )
    page.wait_for_selector(f'#fires li[data-fire-id="{fire_id}"]', state="detached", timeout=15_000)
    assert page.locator("#fires li").count() == 0
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])", timeout=10_000)
    assert outside == []
