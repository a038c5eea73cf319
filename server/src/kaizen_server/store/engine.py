"""Engine creation, transactions and migrations for SQLite and PostgreSQL.

SQLite runs in WAL mode, so readers never block the one writer, with a busy timeout. Every
write transaction starts with BEGIN IMMEDIATE. A deferred transaction that reads first and
writes later can fail at once with "database is locked" when another writer committed in
between, while IMMEDIATE takes the write lock up front and waits for it. The connections use
synchronous=NORMAL, which SQLite documents as safe with WAL. A committed transaction
survives a crash of the server process, and the database stays consistent after a power
loss or an operating system crash. Only the transactions committed last before such a crash
can be lost, because the WAL is synced at checkpoints rather than on every commit.

Within one process, SQLite write transactions also take a Python lock first, and the pool
hands out the most recently returned connection. Two reasons. A writer waiting on that lock
wakes as soon as it is free, while SQLite's default busy handler sleeps in steps that grow
from 1 to 100 ms. And consecutive writes mostly run on the same connection, which keeps its
page cache, because SQLite drops a connection's whole cache when another connection has
written since its last transaction.

Write transactions are retried a few times on PostgreSQL deadlocks and serialization failures
and on SQLite lock timeouts, so concurrent workers see these as latency, not as errors.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger("kaizen_server.store")

T = TypeVar("T")

WRITE_OPTION = "kaizen_write"
WRITE_ATTEMPTS = 4
# PostgreSQL SQLSTATEs worth a retry: serialization_failure, deadlock_detected.
RETRYABLE_PG_CODES = {"40001", "40P01"}
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# An arbitrary constant that names the "migrations running" PostgreSQL advisory lock.
MIGRATION_LOCK_KEY = 7_413_202_611
# {SQLite engine: the lock that its write transactions take in this process}
_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def create_db_engine(url: str) -> Engine:
    """Create the engine for `url` with the settings this server relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)

    if parsed.get_backend_name() == "postgresql":
        # psycopg prepares a statement after its 5th run, and PostgreSQL may then keep a generic
        # plan made while a table was still small: a sequential scan that gets slower with
        # every row. Planning each run costs well under a millisecond, so never prepare.
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args={"prepare_threshold": None})

    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE")


def _create_sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise ValueError(f"SQLite URL {url!r} names no file: use sqlite:///PATH/kaizen.db (an in-memory database is not shared between connections)")

    folder = Path(database).expanduser().parent
    if not folder.exists():
        # Logged because a URL with three slashes is relative: sqlite:///var/lib/kaizen.db
        # creates ./var/lib in the current folder, which is easy to miss.
        logger.info("created folder %s for the SQLite database", folder.resolve())
        folder.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_use_lifo=True,
    )
    _SQLITE_WRITE_LOCKS[engine] = threading.Lock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Ingest passes id lists to SQLite as JSON text, read by json_each().
        try:
            cursor.execute("SELECT count(*) FROM json_each('[]')")
        except sqlite3.OperationalError:
            raise ValueError(
                f"SQLite {sqlite3.sqlite_version} has no JSON functions (json_each), which the server needs; "
                "use a Python whose sqlite3 module is built with SQLite 3.38 or later, where they are always included"
            ) from None
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


def is_sqlite(engine_or_connection: Engine | Connection) -> bool:
    return engine_or_connection.dialect.name == "sqlite"


def _is_retryable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in RETRYABLE_PG_CODES:
        return True

    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def run_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one write transaction and commit it; retry on deadlocks and lock timeouts.

    The commit happens before this returns, so a caller that sends a 2xx response afterwards
    only ever acknowledges committed data. `work` must be safe to run again from the start.
    """
    lock = _SQLITE_WRITE_LOCKS.get(engine)
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with lock if lock is not None else nullcontext(), engine.connect() as connection:
                connection = connection.execution_options(**{WRITE_OPTION: True})
                with connection.begin():
                    return work(connection)
        except DBAPIError as exc:
            if attempt == WRITE_ATTEMPTS or not _is_retryable(exc):
                raise

            logger.warning("write transaction failed (attempt %d of %d), retrying: %s", attempt, WRITE_ATTEMPTS, exc.orig)
            time.sleep(0.05 * attempt)

    raise AssertionError("unreachable")


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """Open a read-only transaction; one snapshot for every statement of a request."""
    with engine.connect() as connection:
        with connection.begin():
            yield connection


def upgrade_database(engine: Engine) -> None:
    """Apply every pending Alembic migration to the database of `engine`.

    On PostgreSQL an advisory lock makes concurrent starts (several hosts, several workers)
    run the migrations one at a time, and the later ones find nothing left to do.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
