"""systemd notifications (sd_notify(3) over NOTIFY_SOCKET); every call is a no-op outside systemd."""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)


def notify(state: str) -> bool:
    """Send one sd_notify message; True when sent, False when not under systemd.

    A leading `@` in NOTIFY_SOCKET names a Linux abstract socket (`\\0` prefix).
    A send error is logged, never raised: losing a notification must not stop the tower.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        log.warning(
            "sd_notify_failed", notify_socket=os.environ.get("NOTIFY_SOCKET"), error=str(err)
        )
        return False
    return True


def ready() -> bool:
    """READY=1: config loaded and local devices set up (the uplink may still be connecting)."""
    return notify("READY=1")


def status(text: str) -> bool:
    """STATUS=…: one line shown by `systemctl status`."""
    return notify("STATUS=" + text.replace("\n", " "))


def watchdog() -> bool:
    """WATCHDOG=1: send from the main loop only after it really processed frames."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog_interval_s() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when no watchdog is set.

    Follows sd_watchdog_enabled(3): WATCHDOG_PID, when set, must be this process.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        timeout_us = int(usec)
    except ValueError:
        log.warning("sd_watchdog_usec_invalid", watchdog_usec=usec)
        return None
    if timeout_us <= 0:
        return None
    return timeout_us / 2 / 1_000_000
