"""Durable SQLite outbox: every alarm and snapshot is committed before it is published.

Rows are deleted only when the broker acknowledged them (`ack`). WAL journaling with
`synchronous=FULL` makes each `put()` durable when it returns, and every change is
one transaction, so a `kill -9` or a power cut leaves either the old or the new state.

Size-cap policy, applied inside the same transaction as each `put()` when the outbox
holds more than `max_messages` rows or `max_bytes` of payload:

1. alarm messages in state `confirmed`, `cleared` and `test` are never dropped;
2. an older `updated` of an alarm is coalesced away when a newer `updated` of the same
   alarm is queued (the newest one carries the current position, size and growth);
3. then the oldest snapshots are dropped;
4. then superseded status rows are dropped (only the newest status matters).

If the cap still cannot be met, the outbox grows beyond it rather than lose an alarm
state, and `over_cap` says so (the status reports it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)

DEFAULT_MAX_MESSAGES = 10_000
# 256 MiB: a few thousand snapshots of 50-100 kB on a gateway's SD card or eMMC.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# A second process (or a crashed one's lock) must not make put() fail at once.
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
    retain INTEGER NOT NULL CHECK (retain IN (0, 1)),
    kind TEXT NOT NULL CHECK (kind IN ('alarm', 'snapshot', 'status')),
    alarm_id TEXT,
    seq INTEGER,
    state TEXT,
    created_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_alarm ON outbox (alarm_id, kind, state);
"""
# AUTOINCREMENT: a row id is never reused, so an acknowledgement for a row that the
# cap already removed can never delete a newer message that took its id.


class Kind(StrEnum):
    ALARM = "alarm"
    SNAPSHOT = "snapshot"
    STATUS = "status"


# Alarm states the cap policy must never drop.
PROTECTED_STATES = frozenset({"confirmed", "cleared", "test"})


class OutboxError(Exception):
    """The outbox database cannot be opened or written; the message names the path."""


@dataclass(frozen=True)
class OutboxRow:
    row_id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: Kind
    alarm_id: str | None
    seq: int | None
    state: str | None
    created_s: float


class Outbox:
    """A durable FIFO of MQTT messages; safe to call from several threads."""

    def __init__(
        self,
        path: Path | str,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        if max_messages < 1:
            raise ValueError(f"outbox max_messages: must be >= 1, got {max_messages}")
        if max_bytes < 1:
            raise ValueError(f"outbox max_bytes: must be >= 1, got {max_bytes}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves so that
            # the cap policy and the insert are one transaction.
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(
                    f"outbox ({self.path}): cannot enable WAL journaling (got {mode})"
                )
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"outbox ({self.path}): cannot open: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        kind: Kind,
        alarm_id: str | None = None,
        seq: int | None = None,
        state: str | None = None,
        created_s: float | None = None,
    ) -> int:
        """Store one message durably and return its row id (committed when this returns)."""
        if kind is Kind.ALARM and (alarm_id is None or state is None):
            raise ValueError("outbox put: an alarm message needs alarm_id and state")
        created = time.time() if created_s is None else created_s
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if kind is Kind.STATUS:
                        # Only the newest status is worth sending after an outage.
                        cur = self._db.execute("DELETE FROM outbox WHERE kind = 'status'")
                        self.dropped += cur.rowcount
                    cur = self._db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain, kind, alarm_id, seq,"
                        " state, created_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            topic,
                            bytes(payload),
                            qos,
                            int(retain),
                            kind.value,
                            alarm_id,
                            seq,
                            state,
                            created,
                        ),
                    )
                    row_id = int(cur.lastrowid or 0)
                    self._enforce_cap()
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                raise OutboxError(
                    f"outbox ({self.path}): cannot store message for {topic}: {err}"
                ) from err
        return row_id

    def _totals(self) -> tuple[int, int]:
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()
        return int(count), int(size)

    def _over(self) -> bool:
        count, size = self._totals()
        return count > self.max_messages or size > self.max_bytes

    def _drop_oldest(self, where: str) -> bool:
        row = self._db.execute(
            f"SELECT row_id, kind, alarm_id, seq FROM outbox o WHERE {where} ORDER BY row_id LIMIT 1"
        ).fetchone()
        if row is None:
            return False
        self._db.execute("DELETE FROM outbox WHERE row_id = ?", (row[0],))
        self.dropped += 1
        log.warning(
            "outbox_cap_drop",
            path=str(self.path),
            row_id=row[0],
            kind=row[1],
            alarm_id=row[2],
            seq=row[3],
        )
        return True

    def _enforce_cap(self) -> None:
        superseded_update = (
            "o.kind = 'alarm' AND o.state = 'updated' AND EXISTS (SELECT 1 FROM outbox n"
            " WHERE n.kind = 'alarm' AND n.state = 'updated' AND n.alarm_id = o.alarm_id"
            " AND n.row_id > o.row_id)"
        )
        for where in (superseded_update, "o.kind = 'snapshot'", "o.kind = 'status'"):
            while self._over():
                if not self._drop_oldest(where):
                    break
        if self._over():
            count, size = self._totals()
            log.warning(
                "outbox_over_cap",
                path=str(self.path),
                messages=count,
                bytes=size,
                max_messages=self.max_messages,
                max_bytes=self.max_bytes,
                reason="only protected alarm states left",
            )

    def pending(self, after_row_id: int = 0, limit: int | None = None) -> list[OutboxRow]:
        """Messages not yet acknowledged, oldest first, with row id > `after_row_id`."""
        sql = (
            "SELECT row_id, topic, payload, qos, retain, kind, alarm_id, seq, state, created_s"
            " FROM outbox WHERE row_id > ? ORDER BY row_id"
        )
        params: tuple[int, ...] = (after_row_id,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (after_row_id, limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            OutboxRow(
                row_id=r[0],
                topic=r[1],
                payload=bytes(r[2]),
                qos=r[3],
                retain=bool(r[4]),
                kind=Kind(r[5]),
                alarm_id=r[6],
                seq=r[7],
                state=r[8],
                created_s=r[9],
            )
            for r in rows
        ]

    def ack(self, row_id: int) -> bool:
        """Delete an acknowledged message; False when it was already gone."""
        with self._lock:
            try:
                cur = self._db.execute("DELETE FROM outbox WHERE row_id = ?", (row_id,))
            except sqlite3.Error as err:
                raise OutboxError(
                    f"outbox ({self.path}): cannot delete row {row_id}: {err}"
                ) from err
        return cur.rowcount > 0

    def depth(self) -> int:
        """Number of messages waiting for the broker's acknowledgement."""
        with self._lock:
            return self._totals()[0]

    def size_bytes(self) -> int:
        with self._lock:
            return self._totals()[1]

    @property
    def over_cap(self) -> bool:
        with self._lock:
            return self._over()
