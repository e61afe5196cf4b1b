"""The hub's store behind one small interface: SQLite (one file) or PostgreSQL (shared).

Both speak the same SQL (``ON CONFLICT`` upserts); only connection, placeholders, the
binary column type and the fusion lock differ. Alarm messages are kept per
``(alarm_id, seq)`` so a repeated delivery is recognised, and the latest message of each
alarm is kept by the highest ``seq`` so late, out-of-order deliveries change nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.messages import AlarmMessage
from hub.model import FireMessage

# Fusion passes of every hub instance sharing one PostgreSQL store are serialised on
# this advisory lock key ("twfire" in ASCII), so two instances never race on a fire.
_FUSION_LOCK_KEY = 0x7477666972650000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS towers (
    tower_id TEXT PRIMARY KEY,
    status TEXT,
    state TEXT,
    updated_s DOUBLE PRECISION,
    malformed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS alarm_messages (
    alarm_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    tower_id TEXT NOT NULL,
    received_s DOUBLE PRECISION NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (alarm_id, seq)
);
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY,
    tower_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    payload TEXT NOT NULL,
    updated_s DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state);
CREATE TABLE IF NOT EXISTS fires (
    fire_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    updated_s DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS fires_state ON fires (state);
CREATE TABLE IF NOT EXISTS acknowledgements (
    fire_id TEXT PRIMARY KEY,
    by_name TEXT NOT NULL,
    at_s DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    alarm_id TEXT PRIMARY KEY,
    tower_id TEXT NOT NULL,
    received_s DOUBLE PRECISION NOT NULL,
    jpeg {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_s DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_s DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    at_s DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_s);
"""


@dataclass(frozen=True)
class TowerRow:
    tower_id: str
    status: dict[str, Any] | None
    state: str | None
    updated_s: float | None
    malformed: int
    last_error: str | None


@dataclass(frozen=True)
class Session:
    name: str
    role: str
    csrf: str
    expires_s: float


@dataclass(frozen=True)
class AuditEntry:
    at_s: float
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class Acknowledgement:
    fire_id: str
    by_name: str
    at_s: float


class Store(ABC):
    """What the hub keeps. Every method is one transaction and safe from any thread."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._batch_state = threading.local()

    # -- backend hooks
    @abstractmethod
    def _connection(self) -> Any: ...

    @abstractmethod
    def _begin_fusion(self, cur: Any) -> None: ...

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        """Held around every transaction: the one SQLite connection is shared by threads."""
        return self._lock

    @abstractmethod
    def close(self) -> None: ...

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        current = getattr(self._batch_state, "cursor", None)
        if current is not None:
            yield current  # inside batch(): the batch commits
            return
        with self._guard():
            conn = self._connection()
            cur = conn.cursor()
            try:
                yield cur
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cur.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run every call of this thread inside one transaction (one commit for many messages).

        On an error nothing of the batch is kept and the error propagates.
        """
        with self._transaction() as cur:
            self._batch_state.cursor = cur
            try:
                yield
            finally:
                self._batch_state.cursor = None

    def _exec(self, cur: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        cur.execute(self._sql(sql), params)
        return cur

    # -- towers
    def record_status(self, tower_id: str, status: dict[str, Any], state: str, at_s: float) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO towers (tower_id, status, state, updated_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tower_id) DO UPDATE SET status = excluded.status, "
                "state = excluded.state, updated_s = excluded.updated_s",
                (tower_id, json.dumps(status), state, at_s),
            )

    def record_malformed(self, tower_id: str, reason: str) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO towers (tower_id, malformed, last_error) VALUES (?, 1, ?) "
                "ON CONFLICT (tower_id) DO UPDATE SET malformed = towers.malformed + 1, "
                "last_error = excluded.last_error",
                (tower_id, reason[:500]),
            )

    def tower_position(self, tower_id: str) -> tuple[float, float] | None:
        """(lat, lon) from the tower's last status, when it reported one."""
        with self._transaction() as cur:
            row = self._exec(
                cur, "SELECT status FROM towers WHERE tower_id = ?", (tower_id,)
            ).fetchone()
        position = json.loads(row[0]).get("position") if row and row[0] else None
        return None if not position else (float(position["lat"]), float(position["lon"]))

    def towers(self) -> list[TowerRow]:
        with self._transaction() as cur:
            rows = self._exec(
                cur,
                "SELECT tower_id, status, state, updated_s, malformed, last_error FROM towers "
                "ORDER BY tower_id",
            ).fetchall()
        return [
            TowerRow(r[0], json.loads(r[1]) if r[1] else None, r[2], r[3], int(r[4]), r[5])
            for r in rows
        ]

    # -- alarms
    def record_alarm(self, alarm: AlarmMessage, payload: str, at_s: float) -> bool:
        """Keep one alarm message; False when this (alarm_id, seq) was already kept."""
        with self._transaction() as cur:
            inserted = self._exec(
                cur,
                "INSERT INTO alarm_messages (alarm_id, seq, tower_id, received_s, payload) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (alarm_id, seq) DO NOTHING",
                (alarm.alarm_id, alarm.seq, alarm.tower.id, at_s, payload),
            ).rowcount
            if inserted != 1:
                return False
            self._exec(
                cur,
                "INSERT INTO alarms (alarm_id, tower_id, seq, state, payload, updated_s) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (alarm_id) DO UPDATE SET "
                "seq = excluded.seq, state = excluded.state, payload = excluded.payload, "
                "updated_s = excluded.updated_s WHERE excluded.seq > alarms.seq",
                (alarm.alarm_id, alarm.tower.id, alarm.seq, alarm.state, payload, at_s),
            )
        return True

    def alarm_message_count(self) -> int:
        with self._transaction() as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM alarm_messages").fetchone()[0])

    def latest_alarm(self, alarm_id: str) -> AlarmMessage | None:
        with self._transaction() as cur:
            row = self._exec(
                cur, "SELECT payload FROM alarms WHERE alarm_id = ?", (alarm_id,)
            ).fetchone()
        return AlarmMessage.from_json(row[0]) if row else None

    def _open_alarms(self, cur: Any) -> list[AlarmMessage]:
        rows = self._exec(
            cur, "SELECT payload FROM alarms WHERE state <> 'cleared' ORDER BY alarm_id"
        ).fetchall()
        return [AlarmMessage.from_json(r[0]) for r in rows]

    def open_alarms(self) -> list[AlarmMessage]:
        with self._transaction() as cur:
            return self._open_alarms(cur)

    # -- fires
    def _fires(self, cur: Any, active_only: bool) -> list[FireMessage]:
        where = " WHERE state = 'active'" if active_only else ""
        rows = self._exec(cur, f"SELECT payload FROM fires{where} ORDER BY fire_id").fetchall()
        return [FireMessage.model_validate_json(r[0]) for r in rows]

    def fires(self, active_only: bool = True) -> list[FireMessage]:
        with self._transaction() as cur:
            return self._fires(cur, active_only)

    def fire(self, fire_id: str) -> FireMessage | None:
        with self._transaction() as cur:
            row = self._exec(
                cur, "SELECT payload FROM fires WHERE fire_id = ?", (fire_id,)
            ).fetchone()
        return FireMessage.model_validate_json(row[0]) if row else None

    def _save_fire(self, cur: Any, fire: FireMessage, at_s: float) -> FireMessage:
        row = self._exec(
            cur, "SELECT version FROM fires WHERE fire_id = ?", (fire.fire_id,)
        ).fetchone()
        if row is not None and int(row[0]) >= fire.version:
            # The id was used before (a fire cleared and seen again): continue its versions.
            fire = fire.model_copy(update={"version": int(row[0]) + 1})
        self._exec(
            cur,
            "INSERT INTO fires (fire_id, state, version, payload, updated_s) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (fire_id) DO UPDATE SET state = excluded.state, "
            "version = excluded.version, payload = excluded.payload, updated_s = excluded.updated_s",
            (fire.fire_id, fire.state, fire.version, fire.to_json(), at_s),
        )
        return fire

    def fuse(self, fuser: Any, at_s: float) -> list[FireMessage]:
        """One fusion pass under the store-wide lock: open alarms → changed fires, saved."""
        with self._transaction() as cur:
            self._begin_fusion(cur)
            alarms = self._open_alarms(cur)
            previous = {f.fire_id: f for f in self._fires(cur, active_only=True)}
            changes = fuser.reconcile(alarms, previous, at_s)
            return [self._save_fire(cur, fire, at_s) for fire in changes]

    # -- acknowledgements
    def acknowledge(self, fire_id: str, by_name: str, at_s: float) -> Acknowledgement | None:
        """Record the first acknowledgement of a fire; None when the fire is unknown."""
        with self._transaction() as cur:
            if (
                self._exec(cur, "SELECT 1 FROM fires WHERE fire_id = ?", (fire_id,)).fetchone()
                is None
            ):
                return None
            self._exec(
                cur,
                "INSERT INTO acknowledgements (fire_id, by_name, at_s) VALUES (?, ?, ?) "
                "ON CONFLICT (fire_id) DO NOTHING",
                (fire_id, by_name, at_s),
            )
            row = self._exec(
                cur, "SELECT by_name, at_s FROM acknowledgements WHERE fire_id = ?", (fire_id,)
            ).fetchone()
        return Acknowledgement(fire_id, row[0], float(row[1]))

    def acknowledgements(self) -> dict[str, Acknowledgement]:
        with self._transaction() as cur:
            rows = self._exec(cur, "SELECT fire_id, by_name, at_s FROM acknowledgements").fetchall()
        return {r[0]: Acknowledgement(r[0], r[1], float(r[2])) for r in rows}

    # -- accounts, sessions and the audit log
    def add_user(self, name: str, role: str, password_hash: str, at_s: float) -> bool:
        """Create an account; False when the name is taken (nothing is overwritten)."""
        with self._transaction() as cur:
            return bool(
                self._exec(
                    cur,
                    "INSERT INTO users (name, role, password_hash, created_s) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, role, password_hash, at_s),
                ).rowcount
                == 1
            )

    def user(self, name: str) -> tuple[str, str] | None:
        """(role, password_hash) of an account."""
        with self._transaction() as cur:
            row = self._exec(
                cur, "SELECT role, password_hash FROM users WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def open_session(self, token_sha256: str, name: str, csrf: str, expires_s: float) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO sessions (token_sha256, name, csrf, expires_s) VALUES (?, ?, ?, ?)",
                (token_sha256, name, csrf, expires_s),
            )

    def session(self, token_sha256: str, now_s: float) -> Session | None:
        """The live session of a token; expired ones are dropped here. The role is read from
        the account each time, so a changed or removed account takes effect at once."""
        with self._transaction() as cur:
            self._exec(cur, "DELETE FROM sessions WHERE expires_s <= ?", (now_s,))
            row = self._exec(
                cur,
                "SELECT s.name, u.role, s.csrf, s.expires_s FROM sessions s "
                "JOIN users u ON u.name = s.name WHERE s.token_sha256 = ?",
                (token_sha256,),
            ).fetchone()
        return None if row is None else Session(row[0], row[1], row[2], float(row[3]))

    def close_session(self, token_sha256: str) -> None:
        with self._transaction() as cur:
            self._exec(cur, "DELETE FROM sessions WHERE token_sha256 = ?", (token_sha256,))

    def audit(self, actor: str, action: str, target: str, detail: str, at_s: float) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO audit (at_s, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (at_s, actor, action, target, detail),
            )

    def audit_log(self, limit: int = 500) -> list[AuditEntry]:
        """The newest entries first."""
        with self._transaction() as cur:
            rows = self._exec(
                cur,
                "SELECT at_s, actor, action, target, detail FROM audit ORDER BY at_s DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [AuditEntry(float(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    # -- snapshots
    def record_snapshot(self, alarm_id: str, tower_id: str, jpeg: bytes, at_s: float) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO snapshots (alarm_id, tower_id, received_s, jpeg) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (alarm_id) DO UPDATE SET tower_id = excluded.tower_id, "
                "received_s = excluded.received_s, jpeg = excluded.jpeg",
                (alarm_id, tower_id, at_s, jpeg),
            )

    def snapshot(self, alarm_id: str) -> bytes | None:
        with self._transaction() as cur:
            row = self._exec(
                cur, "SELECT jpeg FROM snapshots WHERE alarm_id = ?", (alarm_id,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def snapshot_ids(self) -> set[str]:
        with self._transaction() as cur:
            return {r[0] for r in self._exec(cur, "SELECT alarm_id FROM snapshots").fetchall()}


class SqliteStore(Store):
    """One file, nothing to install; one connection shared under the store's lock."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA.format(blob="BLOB"))
        self._conn.commit()

    def _connection(self) -> sqlite3.Connection:
        return self._conn

    def _begin_fusion(self, cur: Any) -> None:
        # The store's lock already serialises this process; one file means one hub.
        return None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresStore(Store):
    """Several hub instances over one database; fusion passes serialised by an advisory lock.

    Each thread has its own connection, so a fusion pass never holds up the ingest of
    the messages that arrive meanwhile.
    """

    placeholder = "%s"

    def __init__(self, dsn: str, schema: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self.dsn = dsn
        self.schema = schema
        self._local = threading.local()
        self._all: list[Any] = []
        conn = self._connection()
        with conn.cursor() as cur:
            # Two instances starting together must not both create the tables.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_FUSION_LOCK_KEY,))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for statement in _SCHEMA.format(blob="BYTEA").split(";"):
                if statement.strip():
                    cur.execute(statement)
        conn.commit()

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(
                self.dsn, autocommit=False, options=f"-c search_path={self.schema}"
            )
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _begin_fusion(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_FUSION_LOCK_KEY,))

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def open_store(settings: Any) -> Store:
    """The store a hub config names (``store`` section of hub.config.HubConfig)."""
    if settings.backend == "postgresql":
        return PostgresStore(settings.postgresql_dsn, settings.postgresql_schema)
    return SqliteStore(Path(settings.sqlite_path))
