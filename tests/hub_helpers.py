"""Shared pieces of the hub tests: a store of either backend, and a two-tower county."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.geodesy import destination
from hub.store import PostgresStore, SqliteStore, Store

# The development and CI machines run PostgreSQL here (trust auth, database `test`).
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"

TOWER_A = (41.08, 121.90)
TOWER_B = destination(*TOWER_A, 90.0, 15_000.0)
FIRE = destination(*destination(*TOWER_A, 90.0, 7_500.0), 0.0, 6_614.4)


def postgres_schema() -> Iterator[str]:
    """A private schema for one test, dropped afterwards; fails clearly without a server."""
    import psycopg

    schema = f"hubtest_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_DSN} is needed for the hub tests: {exc}")
    try:
        yield schema
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


def make_store(backend: str, tmp_path: Path, schema: str | None) -> Store:
    if backend == "sqlite":
        return SqliteStore(tmp_path / "hub.sqlite3")
    assert schema is not None
    return PostgresStore(POSTGRES_DSN, schema)
