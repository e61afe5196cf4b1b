"""The durable outbox: order, acknowledgement, crash safety and the size-cap policy."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.outbox import Kind, Outbox, OutboxError

REPO = Path(__file__).resolve().parents[1]


def put_alarm(outbox: Outbox, alarm_id: str, seq: int, state: str, size: int = 10) -> int:
    return outbox.put(
        "towerwatch/t1/alarm",
        f"{alarm_id}:{seq}:{state}".encode().ljust(size, b"."),
        kind=Kind.ALARM,
        alarm_id=alarm_id,
        seq=seq,
        state=state,
    )


def put_snapshot(outbox: Outbox, alarm_id: str, size: int = 10) -> int:
    return outbox.put(
        f"towerwatch/t1/alarm/{alarm_id}/snapshot",
        b"\xff\xd8".ljust(size, b"\0"),
        kind=Kind.SNAPSHOT,
        alarm_id=alarm_id,
    )


def contents(outbox: Outbox) -> list[tuple[str, str | None, int | None, str | None]]:
    return [(r.kind.value, r.alarm_id, r.seq, r.state) for r in outbox.pending()]


def test_pending_is_insertion_order_and_ack_deletes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        ids = [put_alarm(outbox, "a1", seq, "updated") for seq in range(1, 6)]
        assert ids == sorted(ids)
        assert [r.seq for r in outbox.pending()] == [1, 2, 3, 4, 5]
        assert outbox.ack(ids[0]) is True
        assert outbox.ack(ids[0]) is False
        assert [r.seq for r in outbox.pending()] == [2, 3, 4, 5]
        assert [r.seq for r in outbox.pending(after_row_id=ids[2], limit=1)] == [4]
        assert outbox.depth() == 4


def test_rows_keep_every_field(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        outbox.put(
            "t/alarm",
            b"\x00\xffbinary",
            qos=1,
            retain=True,
            kind=Kind.ALARM,
            alarm_id="a9",
            seq=7,
            state="cleared",
            created_s=1_700_000_000.5,
        )
        (row,) = outbox.pending()
    assert (row.topic, row.payload, row.qos, row.retain) == ("t/alarm", b"\x00\xffbinary", 1, True)
    assert (row.kind, row.alarm_id, row.seq, row.state) == (Kind.ALARM, "a9", 7, "cleared")
    assert row.created_s == 1_700_000_000.5


def test_messages_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        put_alarm(outbox, "a1", 1, "confirmed")
        put_snapshot(outbox, "a1")
    with Outbox(path) as reopened:
        assert contents(reopened) == [
            ("alarm", "a1", 1, "confirmed"),
            ("snapshot", "a1", None, None),
        ]


def test_database_uses_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        put_alarm(outbox, "a1", 1, "confirmed")
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
        assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_row_ids_are_never_reused(tmp_path: Path) -> None:
    # An acknowledgement for a deleted row must never hit a newer message.
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        first = put_alarm(outbox, "a1", 1, "confirmed")
        outbox.ack(first)
        second = put_alarm(outbox, "a1", 2, "updated")
    assert second > first


def test_unwritable_location_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutboxError, match=str(blocker)):
        Outbox(blocker / "outbox.sqlite")


def test_alarm_rows_need_alarm_id_and_state(tmp_path: Path) -> None:
    with (
        Outbox(tmp_path / "o.sqlite") as outbox,
        pytest.raises(ValueError, match="alarm_id and state"),
    ):
        outbox.put("t", b"x", kind=Kind.ALARM)


def test_cap_coalesces_older_updates_of_the_same_alarm(tmp_path: Path) -> None:
    # Coalescing happens only as far as the cap requires.
    with Outbox(tmp_path / "o.sqlite", max_messages=3) as outbox:
        put_alarm(outbox, "a1", 1, "confirmed")
        put_alarm(outbox, "a2", 1, "confirmed")
        for seq in range(2, 7):
            put_alarm(outbox, "a1", seq, "updated")
        assert contents(outbox) == [
            ("alarm", "a1", 1, "confirmed"),
            ("alarm", "a2", 1, "confirmed"),
            ("alarm", "a1", 6, "updated"),
        ]
        assert outbox.dropped == 4


def test_cap_keeps_the_newest_update_of_each_alarm(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=3) as outbox:
        put_alarm(outbox, "a1", 2, "updated")
        put_alarm(outbox, "a2", 2, "updated")
        put_alarm(outbox, "a3", 2, "updated")
        put_alarm(outbox, "a4", 2, "updated")
        # No update is superseded and there is nothing else to drop: grow beyond the cap.
        assert outbox.depth() == 4
        assert outbox.over_cap


def test_cap_drops_oldest_snapshots_after_coalescing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=100, max_bytes=1000) as outbox:
        put_alarm(outbox, "a1", 1, "confirmed", size=100)
        put_snapshot(outbox, "a1", size=300)
        put_alarm(outbox, "a1", 2, "updated", size=100)
        put_snapshot(outbox, "a1", size=301)
        put_alarm(outbox, "a1", 3, "updated", size=100)
        # 901 bytes so far; a third snapshot forces the cap.
        put_snapshot(outbox, "a1", size=302)
        # First the superseded update (seq 2) goes, then the oldest snapshot.
        assert contents(outbox) == [
            ("alarm", "a1", 1, "confirmed"),
            ("snapshot", "a1", None, None),
            ("alarm", "a1", 3, "updated"),
            ("snapshot", "a1", None, None),
        ]
        assert [len(r.payload) for r in outbox.pending() if r.kind is Kind.SNAPSHOT] == [301, 302]
        assert outbox.size_bytes() <= 1000


@pytest.mark.parametrize("state", ["confirmed", "cleared", "test"])
def test_cap_never_drops_protected_states(tmp_path: Path, state: str) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=2) as outbox:
        for n in range(5):
            put_alarm(outbox, f"a{n}", 1, state)
        put_snapshot(outbox, "a0")
        assert [r.alarm_id for r in outbox.pending()] == ["a0", "a1", "a2", "a3", "a4"]
        assert outbox.over_cap


def test_status_rows_keep_only_the_newest(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.put("t/status", b'{"n": 1}', retain=True, kind=Kind.STATUS)
        put_alarm(outbox, "a1", 1, "confirmed")
        outbox.put("t/status", b'{"n": 2}', retain=True, kind=Kind.STATUS)
        assert [(r.kind.value, r.payload) for r in outbox.pending()] == [
            ("alarm", b"a1:1:confirmed"),
            ("status", b'{"n": 2}'),
        ]


_WRITER = """
import sys
from edge.outbox import Kind, Outbox
outbox = Outbox(sys.argv[1])
seq = 0
while True:
    seq += 1
    outbox.put("t/alarm", b"x" * 2000, kind=Kind.ALARM, alarm_id="a1", seq=seq, state="updated")
    print(seq, flush=True)
"""


def test_kill_9_while_writing_loses_no_committed_message(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert writer.stdout is not None
    committed = 0
    deadline = time.monotonic() + 20
    while committed < 40 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        committed = int(line)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    # Lines already in the pipe were committed too.
    for line in writer.stdout.read().split():
        committed = int(line)
    writer.stdout.close()
    assert committed >= 40, "writer did not get going"

    with Outbox(path) as outbox:
        assert outbox._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [r.seq for r in outbox.pending()]
    # Every put that returned is there; at most the one in progress follows; no gaps.
    assert seqs[:committed] == list(range(1, committed + 1))
    assert len(seqs) in (committed, committed + 1)


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"\x00garbage after a power cut" * 100)
    with Outbox(path) as outbox:
        assert outbox.recovered is not None
        assert "moved to outbox.sqlite.corrupt-" in outbox.recovered
        assert "0 message(s) salvaged" in outbox.recovered
        put_alarm(outbox, "a1", 1, "confirmed")
        assert outbox.depth() == 1
    asides = list(tmp_path.glob("outbox.sqlite.corrupt-*"))
    assert [p.name.endswith("Z") for p in asides] == [True]


def test_a_damaged_outbox_is_salvaged_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        for seq in range(1, 301):
            put_alarm(outbox, "a1", seq, "confirmed", size=200)
        outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with path.open("r+b") as f:  # flip bytes in the middle of the table's pages
        f.seek(size // 2)
        f.write(b"\xde\xad\xbe\xef" * 512)
    with Outbox(path) as outbox:
        assert outbox.recovered is not None
        salvaged = outbox.depth()
        assert 0 < salvaged < 300
        seqs = [row.seq for row in outbox.pending()]
        assert seqs == sorted(seqs)
        assert seqs[0] == 1 and seqs[-1] == 300  # both ends of the damage survive
        put_alarm(outbox, "a1", 301, "confirmed")


def test_a_truncated_outbox_keeps_its_readable_rows(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        for seq in range(1, 201):
            put_alarm(outbox, "a1", seq, "confirmed", size=200)
        outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.truncate(path, path.stat().st_size * 2 // 3)
    with Outbox(path) as outbox:
        assert outbox.recovered is not None
        assert 0 < outbox.depth() < 200
        assert outbox.pending()[0].seq == 1


def test_disk_full_at_put_says_so_and_keeps_the_outbox_usable(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        put_alarm(outbox, "a1", 1, "confirmed")
        pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
        outbox._db.execute(f"PRAGMA max_page_count={pages}")  # the file cannot grow
        with pytest.raises(OutboxError, match=r"disk full \(free space on the state folder"):
            put_snapshot(outbox, "a1", size=200_000)
        assert outbox.depth() == 1
        outbox._db.execute("PRAGMA max_page_count=1000000")
        put_alarm(outbox, "a1", 2, "cleared")
        assert outbox.depth() == 2


def test_storage_errors_after_open_are_outbox_errors(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.close()
    with pytest.raises(OutboxError, match="outbox.sqlite"):
        outbox.pending()
    with pytest.raises(OutboxError, match="outbox.sqlite"):
        outbox.depth()
