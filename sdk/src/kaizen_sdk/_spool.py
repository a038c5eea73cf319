"""On-disk spool: batches that could not be sent wait in a SQLite file until the server is back.

SQLite because it ships with Python, survives a crash mid-write (WAL journal) and lets
several processes (gunicorn workers, a restarted app) share one spool safely. Each row is one
encoded ingest body. A process claims a row with a lease before sending it and deletes it
after the server accepted it. If the process dies in between, the lease expires and another
process sends the row again. That can send a batch twice, which is harmless because ingest is
idempotent on the SDK's ids.

The file is capped at `max_bytes` of stored bodies: a batch that would exceed the cap is
rejected (the caller counts it as dropped) and the older rows are kept, so what is spooled
first is sent first.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("kaizen_sdk.spool")

SPOOL_FILE_NAME = "kaizen-spool.sqlite3"

# A claimed row is offered to other processes again after this many seconds. It must exceed
# the time one send can take (request timeout), or two processes would send the same batch.
DEFAULT_LEASE_SECONDS = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    items INTEGER NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True)
class SpooledBatch:
    """One claimed row: the encoded ingest body and how many items it carries."""

    row_id: int
    body: bytes
    items: int
    attempts: int


class Spool:
    """A size-capped queue of encoded batches in `<directory>/kaizen-spool.sqlite3`.

    Safe to use from several threads of one process (one connection behind a lock) and from
    several processes. After `os.fork()` the child must open its own `Spool`.
    """

    def __init__(self, directory: str, max_bytes: int, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = os.path.join(directory, SPOOL_FILE_NAME)
        self.max_bytes = max_bytes
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(_SCHEMA)

    def put(self, body: bytes, items: int) -> bool:
        """Store one batch; return False (and store nothing) when the cap would be exceeded."""
        with self._lock:
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                (stored,) = connection.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM batches").fetchone()
                if stored + len(body) > self.max_bytes:
                    connection.execute("ROLLBACK")
                    return False

                connection.execute(
                    "INSERT INTO batches (body, items, created_at) VALUES (?, ?, ?)",
                    (body, items, time.time()),
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

        return True

    def claim(self) -> SpooledBatch | None:
        """Lease the oldest row nobody holds, or return None when there is none."""
        now = time.time()
        with self._lock:
            row = self._connection.execute(
                "UPDATE batches SET lease_until = ? "
                "WHERE id = (SELECT id FROM batches WHERE lease_until < ? ORDER BY id LIMIT 1) "
                "RETURNING id, body, items, attempts",
                (now + self.lease_seconds, now),
            ).fetchone()

        if row is None:
            return None

        return SpooledBatch(row_id=row[0], body=bytes(row[1]), items=row[2], attempts=row[3])

    def delete(self, row_id: int) -> None:
        """Remove a row after the server accepted it, or after it was given up."""
        with self._lock:
            self._connection.execute("DELETE FROM batches WHERE id = ?", (row_id,))

    def release(self, row_id: int, *, failed: bool) -> None:
        """Give a claimed row back so it is sent again later; `failed` counts an attempt."""
        with self._lock:
            self._connection.execute(
                "UPDATE batches SET lease_until = 0, attempts = attempts + ? WHERE id = ?",
                (1 if failed else 0, row_id),
            )

    def pending(self) -> tuple[int, int]:
        """Return the number of stored batches and of items in them."""
        with self._lock:
            batches, items = self._connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(items), 0) FROM batches"
            ).fetchone()

        return batches, items

    def stored_bytes(self) -> int:
        with self._lock:
            (stored,) = self._connection.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM batches").fetchone()

        return stored

    def close(self) -> None:
        with self._lock:
            try:
                self._connection.close()
            except sqlite3.Error as exc:
                logger.debug("closing the spool %s failed: %s", self.path, exc)
