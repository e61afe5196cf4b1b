"""A stand-in tower for fault tests: one Uplink that commits an alarm every period.

    python tests/fault_tower.py OUTBOX HOST PORT PERIOD_S [OUTBOX_MAX_BYTES]

Prints `sent <seq>` (flushed) once each alarm is committed to the outbox, or
`refused <seq> <reason>` when the outbox cannot store it; runs until SIGTERM/SIGKILL.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_uplink import alarm  # noqa: E402

from edge.config import MqttSettings  # noqa: E402
from edge.outbox import DEFAULT_MAX_BYTES, OutboxError  # noqa: E402
from edge.uplink import Uplink  # noqa: E402


def main() -> None:
    outbox, host, port, period_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    max_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else DEFAULT_MAX_BYTES
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = MqttSettings(host=host, port=port, client_id="towerwatch-t1", keepalive_s=5)
    uplink = Uplink(
        settings,
        tower_id="t1",
        outbox_path=outbox,
        reconnect_min_delay_s=1,
        reconnect_max_delay_s=1,
        outbox_max_bytes=max_bytes,
    )
    uplink.start()
    seq = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    while not stop.wait(period_s):
        try:
            uplink.send_alarm(alarm(seq, "confirmed", alarm_id=f"t1-{seq:05d}"))
        except OutboxError as err:
            print(f"refused {seq} {err}", flush=True)
        else:
            print(f"sent {seq}", flush=True)
        seq += 1
    uplink.stop()


if __name__ == "__main__":
    main()
