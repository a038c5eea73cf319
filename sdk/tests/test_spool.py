"""The on-disk spool: order, size cap, leases, and sharing between instances."""

from __future__ import annotations

import time

from kaizen_sdk._spool import SPOOL_FILE_NAME, Spool


def test_spool_returns_batches_in_order(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1_000_000)
    spool.put(b"first", 1)
    spool.put(b"second", 2)

    first = spool.claim()
    spool.delete(first.row_id)
    second = spool.claim()

    assert first.body == b"first"
    assert first.items == 1
    assert second.body == b"second"
    assert second.items == 2
    assert (tmp_path / SPOOL_FILE_NAME).exists()


def test_spool_rejects_batch_over_cap(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=65_536)

    assert spool.put(b"a" * 40_000, 1)
    assert not spool.put(b"b" * 40_000, 1)
    assert spool.pending() == (1, 1)
    assert spool.stored_bytes() == 40_000


def test_claimed_row_not_claimed_twice(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1_000_000)
    spool.put(b"only", 3)

    claimed = spool.claim()

    assert claimed is not None
    assert spool.claim() is None


def test_released_row_counts_attempt(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1_000_000)
    spool.put(b"retry me", 1)

    spool.release(spool.claim().row_id, failed=True)
    again = spool.claim()

    assert again.body == b"retry me"
    assert again.attempts == 1


def test_expired_lease_is_claimed_again(tmp_path) -> None:
    crashed = Spool(str(tmp_path), max_bytes=1_000_000, lease_seconds=0.05)
    crashed.put(b"orphan", 1)
    assert crashed.claim() is not None

    time.sleep(0.1)
    survivor = Spool(str(tmp_path), max_bytes=1_000_000)

    assert survivor.claim().body == b"orphan"


def test_spool_survives_reopen(tmp_path) -> None:
    first = Spool(str(tmp_path), max_bytes=1_000_000)
    first.put(b"kept", 5)
    first.close()

    reopened = Spool(str(tmp_path / "."), max_bytes=1_000_000)

    assert reopened.pending() == (1, 5)
    assert reopened.claim().body == b"kept"


def test_spool_creates_missing_directory(tmp_path) -> None:
    directory = tmp_path / "a" / "b"

    Spool(str(directory), max_bytes=1_000_000).put(b"x", 1)

    assert (directory / SPOOL_FILE_NAME).exists()
