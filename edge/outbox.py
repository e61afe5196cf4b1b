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

Storage faults: a file that is not a database, fails SQLite's quick check or cannot be
written (truncated, bit-flipped, read-only) is moved aside as
`<name>.corrupt-<UTC time>` with its WAL, every row still readable is copied into a
fresh outbox, and `recovered` says what happened (the status reports it as a reason
for `degraded`). Every SQLite error surfaces as an `OutboxError` naming the path; a
full disk says so instead of a masking rollback error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
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


_COLUMNS = "row_id, topic, payload, qos, retain, kind, alarm_id, seq, state, created_s"
_SIDE_FILES = ("", "-wal", "-shm")


def _is_disk_full(err: BaseException) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or (isinstance(err, OSError) and err.errno == errno.ENOSPC)


def _describe_sqlite(err: BaseException) -> str:
    if _is_disk_full(err):
        return "disk full (free space on the state folder, storage.state_dir)"
    return str(err)


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
        self.recovered: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutboxError(f"outbox ({self.path}): cannot open: {err}") from err
        try:
            self._db = self._open_checked()
        except (sqlite3.DatabaseError, OSError) as err:
            # sqlite3.DatabaseError also covers "attempt to write a readonly database".
            self._db = self._recover(err)

    def _open_checked(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves so that the
        # cap policy and the insert are one transaction.
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(
                    f"outbox ({self.path}): cannot enable WAL journaling (got {mode})"
                )
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            # A write proves the file (and its folder, for the WAL) is writable now.
            db.execute("BEGIN IMMEDIATE")
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def _recover(self, cause: BaseException) -> sqlite3.Connection:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            for suffix in _SIDE_FILES:
                source = self.path.with_name(self.path.name + suffix)
                if source.exists():
                    source.rename(aside.with_name(aside.name + suffix))
        except OSError as err:
            raise OutboxError(
                f"outbox ({self.path}): unusable ({cause}) and cannot be moved aside: {err}"
            ) from err
        # A read-only file must become writable for SQLite to replay its WAL; when it is
        # not ours to change, salvage reads what it can.
        with contextlib.suppress(OSError):
            aside.chmod(0o600)
        rows = _salvage(aside)
        try:
            db = self._open_checked()
            if rows:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(
                f"outbox ({self.path}): unusable ({cause}); moved to {aside.name} but a new "
                f"one cannot be created: {_describe_sqlite(err)}"
            ) from err
        self.recovered = (
            f"outbox ({self.path}) was unusable ({str(cause)[:120]}): moved to {aside.name}, "
            f"{len(rows)} message(s) salvaged"
        )
        log.error("outbox_recovered", path=str(self.path), aside=str(aside), salvaged=len(rows),
                  cause=str(cause)[:200])  # fmt: skip
        return db

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
                    # SQLite may already have rolled back (disk full does): a failing
                    # ROLLBACK must not mask the error that matters.
                    if self._db.in_transaction:
                        try:
                            self._db.execute("ROLLBACK")
                        except sqlite3.Error as rollback_err:
                            log.warning("outbox_rollback_failed", error=str(rollback_err))
                    raise
            except (sqlite3.Error, OSError) as err:
                raise OutboxError(
                    f"outbox ({self.path}): cannot store message for {topic}: "
                    f"{_describe_sqlite(err)}"
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
            " AND n.topic = o.topic"
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
            try:
                rows = self._db.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise OutboxError(f"outbox ({self.path}): cannot read pending rows: {err}") from err
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

    def _read_totals(self) -> tuple[int, int]:
        with self._lock:
            try:
                return self._totals()
            except sqlite3.Error as err:
                raise OutboxError(f"outbox ({self.path}): cannot count rows: {err}") from err

    def depth(self) -> int:
        """Number of messages waiting for the broker's acknowledgement."""
        return self._read_totals()[0]

    def size_bytes(self) -> int:
        return self._read_totals()[1]

    @property
    def over_cap(self) -> bool:
        count, size = self._read_totals()
        return count > self.max_messages or size > self.max_bytes


def _salvage(path: Path) -> list[tuple[object, ...]]:
    """Rows still readable in a damaged outbox, oldest first (empty when none are)."""
    _pad_truncated(path)
    try:
        db = sqlite3.connect(path, timeout=1.0)
    except sqlite3.Error:
        return []
    found: dict[int, tuple[object, ...]] = {}
    try:
        # Each row is found by its own seek from the root, so one unreadable page
        # loses only the rows on it: a failed seek skips ahead (then back from the
        # end), doubling the jump so a large hole costs few probes.
        for sql, sign in (
            (f"SELECT {_COLUMNS} FROM outbox WHERE row_id > ? ORDER BY row_id LIMIT 1", 1),
            (f"SELECT {_COLUMNS} FROM outbox WHERE row_id < ? ORDER BY row_id DESC LIMIT 1", -1),
        ):
            _seek_all(db, sql, sign, found)
    finally:
        db.close()
    return [found[k] for k in sorted(found)]


def _pad_truncated(path: Path) -> None:
    """Zero-fill a cut-off file to the size its header states.

    SQLite refuses a file shorter than its header's page count outright; with the
    missing pages zeroed only the rows on them are lost.
    """
    try:
        with path.open("r+b") as f:
            header = f.read(100)
            if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
                return
            page_size = int.from_bytes(header[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            pages = int.from_bytes(header[28:32], "big")
            expected = page_size * pages
            size = f.seek(0, 2)
            if size < expected <= size + 1024 * 1024 * 1024:
                f.truncate(expected)
    except OSError:
        return


# Row ids are positive 64-bit integers.
_MAX_ROW_ID = 2**63 - 1


def _seek_all(
    db: sqlite3.Connection, sql: str, sign: int, found: dict[int, tuple[object, ...]]
) -> None:
    position = 0 if sign > 0 else _MAX_ROW_ID
    jump = 1
    for _ in range(1_000_000):  # bounded: a damaged file must not hang the start
        try:
            row = db.execute(sql, (position,)).fetchone()
        except sqlite3.Error:
            position += sign * jump
            jump *= 2
            if not 0 <= position <= _MAX_ROW_ID:
                return
            continue
        if row is None:
            return
        if _plausible(row):
            found[int(row[0])] = tuple(row)
        position = int(row[0])
        jump = 1
        if sign < 0 and position in found and len(found) > 1 and position - 1 in found:
            return  # met the rows the forward pass already read


def _plausible(row: tuple[object, ...]) -> bool:
    row_id, topic, payload, qos, retain, kind = row[:6]
    return (
        isinstance(row_id, int)
        and isinstance(topic, str)
        and isinstance(payload, bytes)
        and qos in (0, 1, 2)
        and retain in (0, 1)
        and kind in {k.value for k in Kind}
        and isinstance(row[9], float | int)
    )
