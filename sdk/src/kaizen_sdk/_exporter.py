"""The exporter: a bounded in-memory queue drained by one background thread.

The calling thread only appends a trace or score to a deque under a lock. It never waits for
the network and never raises. When the queue is full, the item is dropped and counted rather
than the caller blocked. Everything else happens on one daemon thread per process, started
on the first enqueue:

- items are taken in FIFO order, cleaned (`_payload`), encoded once, and grouped into
  batches of at most `max_batch_size` items and about `max_batch_bytes` bytes, sent as soon
  as a batch is full, `flush()` is called, or the oldest item has waited `flush_interval`;
- batches are sent one at a time, so a score always reaches the server after the trace that
  was queued before it;
- transient failures (connection errors, timeouts, 408, 429, 5xx) are retried with
  exponential backoff and jitter, honouring `Retry-After`. Other 4xx are not retried, but a
  batch rejected with 413 is split in two first. A server that cannot be connected to is
  retried without limit, because the queue bound already caps memory. Failures of a server
  that responded count towards `max_retries`. Ingest is idempotent on the SDK's ids, so a
  retry after a lost response never duplicates data;
- with a spool directory, a batch that hits a transient failure goes to the on-disk spool
  (`_spool`) instead of being retried in memory. Later batches follow it there while it is
  non-empty, to keep the order. The spool is drained when the server responds again, also by
  the next process that opens the same directory.

`flush(timeout)` waits for what was queued before the call. At interpreter exit the queue is
flushed for at most `exit_timeout` seconds. What is left then is written to the spool if there
is one, and otherwise counted as dropped and logged. After `os.fork()` the child starts with
an empty queue and no thread, because the parent's pending items are the parent's to send.
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import random
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from kaizen_sdk import _tracer
from kaizen_sdk._config import Settings
from kaizen_sdk._encoding import encode
from kaizen_sdk._payload import RedactError, may_need_cleaning, prepare_score, prepare_trace
from kaizen_sdk._spool import Spool
from kaizen_sdk._transport import INGEST_PATH, RETRYABLE_STATUSES, Transport, retry_after_seconds

logger = logging.getLogger("kaizen_sdk.exporter")
instrument_logger = logging.getLogger("kaizen_sdk.instrument")

# Backoff before retry n (0-based) is min(MAX, BASE * 2**n), of which a random half is
# jitter, so many processes that lost the same server do not retry in lockstep.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
# A Retry-After longer than this is shortened to it, so one odd header cannot stall export.
RETRY_AFTER_MAX_SECONDS = 120.0
# Repeated warnings (queue full, rejected items) are logged at most once per this interval.
WARNING_INTERVAL_SECONDS = 60.0
# flush() without a timeout logs that it is still waiting this often.
FLUSH_WARNING_SECONDS = 30.0

TRACE = "trace"
SCORE = "score"

# Queued items the background thread cleans and encodes ahead of the batch they will go in.
# A queued trace contains about a dozen containers (messages, detection, response), and
# encoded it is one bytes object. Left in the queue until a batch fills, those containers
# set off the garbage collector on the application's thread and get promoted into its
# oldest generation, whose full collections cost far more than the encoding.
PREPARE_AHEAD_ITEMS = 32


class _RateLimitedLog:
    """Log a message of a given key at most once per interval, counting what was skipped."""

    def __init__(self, target: logging.Logger, interval: float) -> None:
        self._logger = target
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def log(self, key: str, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return

            self._last[key] = now
            skipped = self._skipped.pop(key, 0)

        if skipped:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, skipped, self._interval)
        self._logger.log(level, message, *args)


class _Due(enum.Enum):
    """Reason the background thread wakes up."""

    STOP = "stop"
    SPOOL = "spool"  # retry the batches in the on-disk spool
    PREPARE_AHEAD = "prepare-ahead"  # clean and encode queued items before their batch is due
    BATCH = "batch"  # take a batch and send it


@dataclass(slots=True)
class _Prepared:
    """One item after cleaning and encoding, ready to go into a batch."""

    kind: str
    body: bytes


@dataclass
class _Batch:
    traces: list[bytes] = field(default_factory=list)
    scores: list[bytes] = field(default_factory=list)
    # Items taken from the queue for this batch that will not be sent (dropped by redact or
    # not encodable). They are settled together with the batch, so flush() stays in order.
    skipped: int = 0
    size: int = 0
    settled: bool = False

    @property
    def items(self) -> int:
        return len(self.traces) + len(self.scores)

    @property
    def taken(self) -> int:
        return self.items + self.skipped

    def body(self) -> bytes:
        return b'{"traces":[' + b",".join(self.traces) + b'],"scores":[' + b",".join(self.scores) + b"]}"


@dataclass
class _Outcome:
    """Result of one POST: sent, or failed transiently (retry) or permanently (give up)."""

    sent: bool
    retryable: bool = False
    # False when the server could not be reached at all: no fault of the batch, so the
    # failure does not count towards max_retries.
    counted: bool = True
    reason: str = ""
    status: int | None = None
    retry_after: float | None = None
    accepted: int = 0
    rejected: int = 0


def backoff_delay(attempt: int) -> float:
    """Return the delay before retry `attempt` (0-based): exponential, capped, half of it jitter."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (2**attempt))
    return delay / 2 + random.uniform(0, delay / 2)


class Exporter:
    """Queue of traces and scores for one CT server, drained by a background thread."""

    def __init__(self, settings: Settings, *, http_transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._http_transport = http_transport
        self._spool_failed_to_open = False
        self._init_state()
        # The HTTP client is built here, on the thread that configures the exporter, not by the
        # background thread. Building it imports httpcore and loads the CA bundle. A thread
        # doing that file I/O waits for the GIL after each read while the application's thread
        # runs, which took seconds while traces piled up in the queue.
        self._transport = self._new_transport()

    # ----- state -------------------------------------------------------------------------

    def _init_state(self) -> None:
        """Set up a fresh, empty state; also what a forked child starts from."""
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._queue: deque[tuple[str, dict]] = deque()
        # Items already cleaned and encoded, in queue order: prepared ahead of their batch, or
        # left over from the last one. None stands for an item that redact or encoding dropped,
        # so it is settled in its place.
        self._carry: deque[_Prepared | None] = deque()
        self._inflight: _Batch | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Monotonic time at which the oldest waiting item (in the queue, in the carry or being
        # encoded ahead) was queued. A batch is due flush_interval after it.
        self._oldest_at = 0.0
        self._preparing_ahead = False
        # flush() bookkeeping: items are settled in queue order, so "settled >= n" means the
        # first n enqueued items are done (sent, spooled or dropped).
        self._enqueued = 0
        self._settled = 0
        self._failed = 0
        self._flush_target = 0
        self._counts = {"sent": 0, "retried": 0, "dropped": 0, "rejected": 0, "spooled": 0, "redacted": 0}
        self._transport: Transport | None = None
        self._spool: Spool | None = None
        self._spool_pending = False
        self._spool_retry_at = 0.0
        self._spool_attempt = 0
        self._warnings = _RateLimitedLog(logger, WARNING_INTERVAL_SECONDS)
        self._pid = os.getpid()

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its locks may have been held at fork
        # time: start over. The parent's queued items stay the parent's to send. The old
        # HTTP client and SQLite connection are dropped, not closed, because closing them
        # could disturb the parent's copies.
        self._init_state()

    # ----- caller side -------------------------------------------------------------------

    def enqueue_trace(self, trace: Any) -> None:
        """Queue one trace; never blocks on I/O and never raises.

        ``trace`` is a dict in the wire format, or an object with a ``to_trace()`` method
        that returns one (the tracer's ended span), called on the export thread.
        """
        self._enqueue(TRACE, trace)

    def enqueue_score(self, score: dict) -> None:
        """Queue one score behind everything queued before it (its trace included)."""
        self._enqueue(SCORE, score)

    def _enqueue(self, kind: str, payload: dict) -> None:
        try:
            with self._lock:
                if self._stopping:
                    self._counts["dropped"] += 1
                    full = None
                elif len(self._queue) + len(self._carry) >= self.settings.max_queue_size:
                    self._counts["dropped"] += 1
                    full = True
                else:
                    full = False
                    self._queue.append((kind, payload))
                    self._enqueued += 1
                    if self._thread is None:
                        self._start_thread_locked()
                    queued = len(self._queue)
                    if queued == 1 and not self._carry and not self._preparing_ahead:
                        # Nothing else waits: this item starts the flush clock, and the thread,
                        # which may be waiting without a timeout, has to learn of it.
                        self._oldest_at = time.monotonic()
                        self._condition.notify()
                    elif queued % PREPARE_AHEAD_ITEMS == 0 or queued + len(self._carry) >= self.settings.max_batch_size:
                        self._condition.notify()

            if full:
                self._warnings.log(
                    "queue-full",
                    logging.WARNING,
                    "exporter queue is full (%d items): dropped a %s; raise max_queue_size "
                    "(KAIZEN_MAX_QUEUE_SIZE) or check that the CT server at %s is reachable",
                    self.settings.max_queue_size,
                    kind,
                    self.settings.base_url,
                )
            elif full is None:
                self._warnings.log("stopped", logging.WARNING, "exporter is shut down: dropped a %s", kind)
        except Exception as exc:  # tracing must never break the caller
            self._warnings.log("enqueue-error", logging.ERROR, "could not queue a %s: %r", kind, exc)

    def _start_thread_locked(self) -> None:
        thread = threading.Thread(target=self._run, name="kaizen-exporter", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. "can't create new thread at interpreter shutdown"
            self._warnings.log("thread-start", logging.ERROR, "could not start the exporter thread: %s", exc)
            return

        self._thread = thread
        _register_multiprocessing_exit_flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before the call is sent, spooled or dropped.

        Returns True when all of it reached the server, False when the timeout expired first
        or some of it was spooled or dropped. `timeout=None` waits until then, which lasts as
        long as the server cannot be reached (a warning is logged every 30 s meanwhile).
        """
        if threading.current_thread() is self._thread:
            return False  # a redact callable calling flush() would wait for itself

        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._condition:
            target = self._enqueued
            failed_before = self._failed
            if self._settled >= target:
                return True
            if self._stopping:
                return False  # shut down: what is left was spooled or dropped, or is stuck in flight

            if self._thread is None:
                self._start_thread_locked()
            self._flush_target = max(self._flush_target, target)
            self._spool_retry_at = 0.0
            self._condition.notify_all()
            while self._settled < target:
                remaining = FLUSH_WARNING_SECONDS if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._condition.wait(remaining) and deadline is None:
                    logger.warning(
                        "flush() is still waiting for %d traces and scores; the CT server at %s "
                        "does not accept them yet",
                        target - self._settled,
                        self.settings.base_url,
                    )

            return self._failed == failed_before

    def stats(self) -> dict:
        """Return counters: queued (waiting in memory), sent, retried, dropped and more.

        `sent` counts items the server accepted or already had, and `rejected` the items it
        rejected one by one. `spooled` counts items written to the on-disk spool, `redacted`
        traces that the redact callable dropped. `dropped` counts items lost for any other
        reason: queue full, given up after retries, batch rejected, shut down.
        """
        with self._lock:
            queued = len(self._queue) + len(self._carry) + (self._inflight.taken if self._inflight else 0)
            result = {"queued": queued, "enqueued": self._enqueued, **self._counts}

        return result

    # ----- shutdown ----------------------------------------------------------------------

    def shutdown(self, timeout: float) -> bool:
        """Flush for at most `timeout` s, then spool or drop what is left and stop the thread.

        Returns True when everything was sent.
        """
        delivered = self.flush(timeout)
        with self._condition:
            self._stopping = True
            leftovers = list(self._queue)
            carried = list(self._carry)
            inflight = self._inflight
            self._queue.clear()
            self._carry.clear()
            # What was taken out of the queue here is settled now: spooled or dropped below.
            self._settled += len(leftovers) + len(carried)
            self._failed += len(leftovers) + len(carried)
            self._condition.notify_all()

        if delivered or not (leftovers or carried or inflight):
            return delivered

        self._save_leftovers(leftovers, carried, inflight)
        return False

    def _save_leftovers(self, leftovers: list[tuple[str, dict]], carried: list[_Prepared | None], inflight: _Batch | None) -> None:
        count = len(leftovers) + len(carried) + (inflight.items if inflight else 0)
        if count == 0:
            return

        spool = self._open_spool()
        if spool is None:
            with self._lock:
                self._counts["dropped"] += count
            logger.warning(
                "%d traces and scores were not sent to %s before exit and are lost; set "
                "KAIZEN_SPOOL_DIR to keep them on disk until the server is back",
                count,
                self.settings.base_url,
            )
            return

        # The in-flight batch is spooled too: if its request does reach the server after all,
        # the spooled copy is a harmless duplicate because ingest is idempotent.
        batches = [inflight] if inflight is not None and inflight.items else []
        batch = _Batch()
        for item in [*carried, *(self._prepare(kind, payload) for kind, payload in leftovers)]:
            if item is None:
                continue
            if batch.items and (batch.items >= self.settings.max_batch_size or batch.size + len(item.body) > self.settings.max_batch_bytes):
                batches.append(batch)
                batch = _Batch()
            self._add_to_batch(batch, item)
        if batch.items:
            batches.append(batch)

        stored = 0
        for pending in batches:
            stored += pending.items if self._spool_put(pending) else 0
        logger.info("spooled %d of %d unsent traces and scores to %s at exit", stored, count, spool.path)

    def _stop_thread(self, timeout: float) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            thread = self._thread

        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ----- background thread -------------------------------------------------------------

    def _run(self) -> None:
        logger.debug("exporter thread started (pid %d, server %s)", os.getpid(), self.settings.base_url)
        try:
            if self._transport is None:  # a forked child starts without one
                self._transport = self._new_transport()
            if self._open_spool() is not None:
                self._spool_pending = self._spool.pending()[0] > 0
            while True:
                if self._spool_due():
                    self._drain_spool_safely()

                try:
                    batch = self._take_batch()
                except Exception:
                    self._drop_inflight_after_bug()
                    continue
                if batch is None:
                    break
                if batch.taken:
                    self._deliver_safely(batch)
        except Exception:
            logger.exception("exporter thread failed; traces queued from now on are not sent")
        finally:
            logger.debug("exporter thread stopped (pid %d)", os.getpid())

    def _new_transport(self) -> Transport:
        return Transport(
            self.settings.base_url,
            self.settings.api_key,
            timeout=self.settings.request_timeout,
            http_transport=self._http_transport,
            log_requests=False,  # one httpx INFO line per batch would flood the user's logs
        )

    def _drop_inflight_after_bug(self) -> None:
        # The items taken for the batch are lost, but the thread lives on and flush() waiters
        # are released instead of waiting for items that will never be settled.
        logger.exception("taking a batch from the queue failed unexpectedly; dropped it")
        self._preparing_ahead = False
        placeholder = self._inflight
        if placeholder is not None:
            self._count_dropped(placeholder.taken)
            self._settle(placeholder, failed=placeholder.taken)

    def _deliver_safely(self, batch: _Batch) -> None:
        # A bug in one delivery must cost that batch, not every trace after it.
        try:
            self._deliver(batch)
        except Exception:
            logger.exception("delivering a batch of %d items failed unexpectedly; dropped it", batch.items)
            self._count_dropped(batch.items)
            self._settle(batch, failed=batch.items)

    def _drain_spool_safely(self) -> None:
        try:
            self._drain_spool()
        except Exception:
            logger.exception("sending spooled batches failed unexpectedly; trying again later")
            self._schedule_spool_retry(_Outcome(False, retryable=True))

    def _spool_due(self) -> bool:
        return self._spool is not None and self._spool_pending and time.monotonic() >= self._spool_retry_at

    def _take_batch(self) -> _Batch | None:
        """Wait for a batch to be due and take it; None means stop, an empty batch means "check the spool"."""
        settings = self.settings
        while True:
            with self._condition:
                due = self._wait_until_due()
                if due is _Due.STOP:
                    return None
                if due is _Due.SPOOL:
                    return _Batch()

                if due is _Due.PREPARE_AHEAD:
                    ahead = list(self._queue)
                    self._queue.clear()
                    self._inflight = _Batch(skipped=len(ahead))  # counts as queued while cleaning
                    self._preparing_ahead = True
                else:
                    carried = list(self._carry)
                    self._carry.clear()
                    raw = [self._queue.popleft() for _ in range(min(len(self._queue), settings.max_batch_size - len(carried)))]
                    self._oldest_at = time.monotonic()
                    self._inflight = _Batch(skipped=len(carried) + len(raw))  # counts as queued while cleaning

            # Cleaning runs the user's redact callable, so it happens outside the lock.
            if due is _Due.PREPARE_AHEAD:
                prepared_ahead = [self._prepare(kind, payload) for kind, payload in ahead]
                with self._lock:
                    self._carry.extend(prepared_ahead)
                    self._inflight = None
                    self._preparing_ahead = False
                continue

            return self._fill_batch(carried + [self._prepare(kind, payload) for kind, payload in raw])

    def _wait_until_due(self) -> _Due:
        """Wait, holding the condition, until there is something for the background thread to do."""
        settings = self.settings
        while True:
            waiting = len(self._queue) + len(self._carry)
            if self._stopping:
                return _Due.STOP

            now = time.monotonic()
            timeout: float | None = None
            if waiting:
                if waiting >= settings.max_batch_size or self._settled < self._flush_target:
                    return _Due.BATCH
                timeout = settings.flush_interval - (now - self._oldest_at)
                if timeout <= 0:
                    return _Due.BATCH
                if len(self._queue) >= PREPARE_AHEAD_ITEMS:
                    return _Due.PREPARE_AHEAD
            if self._spool_pending and self._spool is not None:
                until_spool = self._spool_retry_at - now
                if until_spool <= 0:
                    return _Due.SPOOL
                timeout = until_spool if timeout is None else min(timeout, until_spool)
            self._condition.wait(timeout)

    def _fill_batch(self, prepared: list[_Prepared | None]) -> _Batch:
        """Put prepared items into one batch up to its limits; the rest go back to the carry."""
        settings = self.settings
        batch = _Batch()
        overflow: list[_Prepared] = []
        for item in prepared:
            if item is None:
                batch.skipped += 1
                continue
            if overflow or (batch.items and (batch.items >= settings.max_batch_size or batch.size + len(item.body) > settings.max_batch_bytes)):
                overflow.append(item)
                continue
            self._add_to_batch(batch, item)

        with self._lock:
            self._carry.extendleft(reversed(overflow))
            self._inflight = batch

        return batch

    @staticmethod
    def _add_to_batch(batch: _Batch, item: _Prepared) -> None:
        (batch.traces if item.kind == TRACE else batch.scores).append(item.body)
        batch.size += len(item.body) + 1

    def _prepare(self, kind: str, payload: dict) -> _Prepared | None:
        settings = self.settings
        try:
            if kind == TRACE and not isinstance(payload, dict) and hasattr(payload, "to_trace"):
                # An ended span from the tracer: its dict is built here, off the caller's thread.
                payload = payload.to_trace(json_safe=settings.redact is not None)
            if not isinstance(payload, dict):
                raise TypeError(f"expected a dict in the wire format, got {type(payload).__name__}")
            if kind == SCORE:
                return _Prepared(kind, self._encode_clean(payload, prepare_score))
            if settings.redact is None:
                return _Prepared(kind, self._encode_clean(payload, prepare_trace))

            cleaned = prepare_trace(payload, max_field_chars=settings.max_field_chars, redact=settings.redact)
            if cleaned is None:
                with self._lock:
                    self._counts["redacted"] += 1
                return None
            return _Prepared(kind, encode(cleaned))
        except RedactError as exc:
            # Sending the trace unredacted could leak what redact was meant to hide.
            self._warnings.log("redact", logging.ERROR, "dropped trace %s: %s", _item_id(payload), exc)
        except Exception as exc:  # circular references (RecursionError), odd mappings: drop this item only
            self._warnings.log("encode", logging.ERROR, "dropped %s %s: cannot clean or encode it: %r", kind, _item_id(payload), exc)

        with self._lock:
            self._counts["dropped"] += 1
        return None

    def _encode_clean(self, payload: dict, prepare: Callable[..., dict]) -> bytes:
        """Encode an item that no redact callable reads, cleaning it first only when its JSON shows a need.

        Nearly every item contains no media and no string near the size cap, and checking its
        JSON for them costs a small part of cleaning it.
        """
        max_chars = self.settings.max_field_chars
        body = encode(payload)
        if not may_need_cleaning(body, max_chars):
            return body

        return encode(prepare(payload, max_field_chars=max_chars))

    def _settle(self, batch: _Batch, *, failed: int) -> None:
        with self._condition:
            if batch.settled:
                return

            batch.settled = True
            self._settled += batch.taken
            self._failed += failed
            if self._inflight is batch:
                self._inflight = None
            self._condition.notify_all()

    def _deliver(self, batch: _Batch) -> None:
        if not batch.items:
            self._settle(batch, failed=0)
            return

        if self._spool is not None and self._spool_pending:
            # Older batches wait in the spool: send them first, or follow them there.
            self._spool_retry_at = 0.0 if self._settled < self._flush_target else self._spool_retry_at
            if self._spool_due():
                self._drain_spool()
            if self._spool_pending:
                spooled = self._spool_put(batch)
                self._settle(batch, failed=batch.items)
                if not spooled:
                    self._count_dropped(batch.items)
                return

        undelivered = self._send_with_retries(batch)
        self._settle(batch, failed=undelivered)

    def _count_dropped(self, items: int) -> None:
        with self._lock:
            self._counts["dropped"] += items

    def _send_with_retries(self, batch: _Batch) -> int:
        """Send one batch; return how many of its items did not reach the server."""
        body = batch.body()
        attempt = 0
        counted_failures = 0
        while True:
            outcome = self._post(body)
            if outcome.sent:
                self._record_sent(outcome, batch.items)
                return outcome.rejected

            if self._stopping:
                # shutdown() already spooled or counted this in-flight batch. Logging from a
                # daemon thread while the interpreter finalizes can crash it, so stay quiet.
                return batch.items

            if not outcome.retryable:
                if outcome.status == 413 and batch.items > 1:
                    return self._send_halves(batch)
                logger.error(
                    "CT server rejected a batch of %d items (%s); dropped it without retrying",
                    batch.items,
                    outcome.reason,
                )
                self._count_dropped(batch.items)
                return batch.items

            if self._open_spool() is not None:
                logger.warning("sending a batch of %d items failed (%s); spooled it to %s", batch.items, outcome.reason, self._spool.path)
                self._schedule_spool_retry(outcome)
                if not self._spool_put(batch):
                    self._count_dropped(batch.items)
                return batch.items

            # Only failures of a server that responded count. While it cannot be reached at
            # all, the batch waits until it is back, and the queue bound limits memory.
            counted_failures += 1 if outcome.counted else 0
            if counted_failures > self.settings.max_retries:
                logger.error(
                    "gave up on a batch of %d items after %d attempts (%s); dropped it",
                    batch.items,
                    attempt + 1,
                    outcome.reason,
                )
                self._count_dropped(batch.items)
                return batch.items

            delay = self._retry_delay(outcome, attempt)
            attempt += 1
            logger.warning(
                "sending a batch of %d items failed (%s); retry %d in %.1f s",
                batch.items,
                outcome.reason,
                attempt,
                delay,
            )
            with self._lock:
                self._counts["retried"] += 1
            if self._sleep(delay):
                # Shutting down: shutdown() spools or counts this in-flight batch.
                return batch.items

    def _send_halves(self, batch: _Batch) -> int:
        logger.warning("CT server rejected a batch of %d items as too large (HTTP 413); sending it in two halves", batch.items)
        items = [_Prepared(TRACE, body) for body in batch.traces] + [_Prepared(SCORE, body) for body in batch.scores]
        middle = len(items) // 2
        undelivered = 0
        for part in (items[:middle], items[middle:]):
            half = _Batch()
            for item in part:
                self._add_to_batch(half, item)
            undelivered += self._send_with_retries(half)

        return undelivered

    @staticmethod
    def _retry_delay(outcome: _Outcome, attempt: int) -> float:
        if outcome.retry_after is not None:
            return min(outcome.retry_after, RETRY_AFTER_MAX_SECONDS)

        return backoff_delay(attempt)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless shutting down; return True when interrupted by shutdown."""
        with self._condition:
            return self._condition.wait_for(lambda: self._stopping, timeout=seconds)

    def _record_sent(self, outcome: _Outcome, items: int) -> None:
        with self._lock:
            self._counts["sent"] += items - outcome.rejected
            self._counts["rejected"] += outcome.rejected

    def _post(self, body: bytes) -> _Outcome:
        transport = self._transport
        try:
            response = transport.post_bytes(INGEST_PATH, body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return _Outcome(False, retryable=True, counted=False, reason=f"cannot connect ({type(exc).__name__}: {exc})")
        except httpx.TimeoutException as exc:
            return _Outcome(False, retryable=True, reason=f"timed out after {self.settings.request_timeout:g} s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Outcome(False, retryable=True, reason=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a closed client at shutdown, an unexpected httpx error
            return _Outcome(False, retryable=True, reason=f"{type(exc).__name__}: {exc}")

        status = response.status_code
        if 200 <= status < 300:
            return self._read_ingest_response(response)

        reason = f"HTTP {status} from {self.settings.base_url}{INGEST_PATH}"
        detail = _problem_detail(response)
        if detail:
            reason += f": {detail}"
        if status in RETRYABLE_STATUSES:
            return _Outcome(False, retryable=True, reason=reason, status=status, retry_after=retry_after_seconds(response))

        if status in (401, 403):
            reason += "; check the API key (KAIZEN_API_KEY)"
        return _Outcome(False, retryable=False, reason=reason, status=status)

    def _read_ingest_response(self, response: httpx.Response) -> _Outcome:
        try:
            items = response.json().get("items") or []
        except (ValueError, AttributeError):
            items = []

        rejected = [item for item in items if isinstance(item, dict) and item.get("status") == "rejected"]
        for item in rejected[:3]:
            self._warnings.log(
                "rejected",
                logging.WARNING,
                "CT server rejected %s %s: %s",
                item.get("type"),
                item.get("id"),
                item.get("error"),
            )

        return _Outcome(True, status=response.status_code, rejected=len(rejected))

    # ----- spool -------------------------------------------------------------------------

    def _open_spool(self) -> Spool | None:
        if self.settings.spool_dir is None or self._spool_failed_to_open:
            return None

        if self._spool is None:
            try:
                self._spool = Spool(self.settings.spool_dir, self.settings.spool_max_bytes)
            except Exception as exc:
                self._spool_failed_to_open = True
                logger.error("cannot open the spool in %s (%s); continuing without it", self.settings.spool_dir, exc)
                return None

        return self._spool

    def _spool_put(self, batch: _Batch) -> bool:
        spool = self._open_spool()
        if spool is None:
            return False

        try:
            stored = spool.put(batch.body(), batch.items)
        except Exception as exc:
            logger.error("writing a batch of %d items to the spool %s failed: %s", batch.items, spool.path, exc)
            return False

        if not stored:
            self._warnings.log(
                "spool-full",
                logging.WARNING,
                "spool %s is full (%d bytes); dropped a batch of %d items; raise spool_max_bytes "
                "(KAIZEN_SPOOL_MAX_BYTES)",
                spool.path,
                spool.max_bytes,
                batch.items,
            )
            return False

        with self._lock:
            self._counts["spooled"] += batch.items
        self._spool_pending = True
        return True

    def _schedule_spool_retry(self, outcome: _Outcome) -> None:
        self._spool_retry_at = time.monotonic() + self._retry_delay(outcome, self._spool_attempt)
        self._spool_attempt += 1

    def _drain_spool(self) -> None:
        """Send spooled batches, oldest first, until the spool is empty or a send fails."""
        spool = self._spool
        while not self._stopping:
            try:
                row = spool.claim()
            except Exception as exc:
                logger.error("reading the spool %s failed: %s", spool.path, exc)
                self._schedule_spool_retry(_Outcome(False, retryable=True))
                return

            if row is None:
                if self._spool_attempt:
                    logger.info("spool %s is empty again; sending directly", spool.path)
                self._spool_pending = False
                self._spool_attempt = 0
                return

            if row.attempts:
                with self._lock:
                    self._counts["retried"] += 1
            outcome = self._post(row.body)
            if outcome.sent:
                spool.delete(row.row_id)
                self._record_sent(outcome, row.items)
                continue

            # As in memory, only failures of a server that responded count towards max_retries,
            # so an outage of any length loses nothing that fits in the spool.
            counted = outcome.counted
            if not outcome.retryable or (counted and row.attempts + 1 > self.settings.max_retries):
                spool.delete(row.row_id)
                self._count_dropped(row.items)
                logger.error("dropped a spooled batch of %d items after %d attempts (%s)", row.items, row.attempts + 1, outcome.reason)
                continue

            spool.release(row.row_id, failed=counted)
            self._schedule_spool_retry(outcome)
            logger.warning(
                "sending a spooled batch of %d items failed (%s); next try in %.1f s",
                row.items,
                outcome.reason,
                max(0.0, self._spool_retry_at - time.monotonic()),
            )
            return


def _item_id(payload: Any) -> Any:
    return payload.get("id") if isinstance(payload, dict) else getattr(payload, "trace_id", None)


def _problem_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]

    if isinstance(data, dict):
        detail = data.get("detail") or data.get("title") or data.get("error")
        if detail is not None:
            return str(detail)[:300]

    return str(data)[:200]


# ----- process-global exporter -----------------------------------------------------------

_state_lock = threading.Lock()
_exporter: Exporter | None = None
_settings: Settings | None = None
_warned_no_key = False
_atexit_registered = False
_multiprocessing_registered_pid: int | None = None


def configure(settings: Settings, *, http_transport: httpx.BaseTransport | None = None) -> Exporter | None:
    """Make `settings` the process's export settings and return the exporter, or None without a key.

    Without an API key nothing is sent and one warning is logged on `kaizen_sdk.instrument`.
    A call without a key after an earlier call with one keeps the earlier exporter.
    Calling again with equal settings returns the same exporter; with different settings a
    new exporter takes over the old one's queue.
    """
    global _exporter, _settings, _warned_no_key, _atexit_registered
    with _state_lock:
        if not settings.api_key:
            if _exporter is not None:
                logger.debug("settings without an API key; keeping the exporter configured earlier")
                return _exporter

            _settings = settings
            if not _warned_no_key:
                _warned_no_key = True
                instrument_logger.warning(
                    "no Kaizen API key: traces are dropped and nothing is sent; pass api_key= to "
                    "instrument() or set KAIZEN_API_KEY"
                )
            return None

        if _exporter is not None and _exporter.settings == settings and http_transport is None:
            return _exporter

        exporter = Exporter(settings, http_transport=http_transport)
        if _exporter is not None:
            _take_over(exporter, _exporter)
        _exporter = exporter
        _settings = settings
        if not _atexit_registered:
            atexit.register(_flush_at_exit)
            _atexit_registered = True

    logger.info("exporting traces to %s (batch %d items, queue %d items)", settings.base_url, settings.max_batch_size, settings.max_queue_size)
    _resume_spool(exporter)
    return exporter


def _take_over(new: Exporter, old: Exporter) -> None:
    """Move the old exporter's queue to the new one and stop the old thread."""
    with old._condition:
        queued = list(old._queue)
        carried = list(old._carry)
        old._queue.clear()
        old._carry.clear()
        old._stopping = True
        old._condition.notify_all()

    with new._lock:
        new._carry.extend(carried)
        new._queue.extend(queued)
        new._enqueued += len(queued) + len(carried)
        if new._queue or new._carry:
            new._oldest_at = time.monotonic()
            new._start_thread_locked()


def _resume_spool(exporter: Exporter) -> None:
    """Start the thread at once when the spool contains batches left by an earlier process."""
    spool = exporter._open_spool()
    if spool is None:
        return

    try:
        batches, items = spool.pending()
    except Exception as exc:
        logger.error("reading the spool %s failed: %s", spool.path, exc)
        return

    if not batches:
        return

    logger.info("spool %s contains %d batches (%d items) from an earlier run; sending them", spool.path, batches, items)
    with exporter._lock:
        if exporter._thread is None:
            exporter._start_thread_locked()


def get_exporter() -> Exporter | None:
    """Return the process's exporter, or None when no API key is configured."""
    return _exporter


def get_settings() -> Settings | None:
    """Return the settings of the last `configure()`, or None before the first one."""
    return _settings


def flush(timeout: float | None = None) -> bool:
    """Block until traces and scores queued so far reach the CT server, for at most `timeout` s.

    Returns True when all of them were delivered (also when nothing is configured), False when
    the timeout expired or some were spooled or dropped. Never raises.
    """
    exporter = _exporter
    if exporter is None:
        return True

    try:
        # Spans of abandoned streams and unparsed raw responses are ended on the tracer's
        # background thread after the garbage collector finds them; drain that first, so
        # their traces are queued before the exporter's flush target is taken.
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        drained = _tracer.drain_deferred(timeout)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return exporter.flush(remaining) and drained
    except Exception as exc:
        logger.error("flush failed: %r", exc)
        return False


_EMPTY_STATS = {"queued": 0, "enqueued": 0, "sent": 0, "retried": 0, "dropped": 0, "rejected": 0, "spooled": 0, "redacted": 0}


def stats() -> dict:
    """Return the exporter's counters (queued, sent, retried, dropped, ...); zeros when not configured."""
    exporter = _exporter
    if exporter is None:
        return dict(_EMPTY_STATS)

    return exporter.stats()


def reset(timeout: float = 1.0) -> None:
    """Flush for at most `timeout` s, stop the thread and forget the exporter and settings (for tests)."""
    global _exporter, _settings, _warned_no_key
    with _state_lock:
        exporter = _exporter
        _exporter = None
        _settings = None
        _warned_no_key = False

    if exporter is None:
        return

    exporter.shutdown(timeout)
    exporter._stop_thread(timeout)
    thread = exporter._thread
    if thread is None or not thread.is_alive():
        if exporter._transport is not None:
            exporter._transport.close()
        if exporter._spool is not None:
            exporter._spool.close()


def _flush_at_exit() -> None:
    exporter = _exporter
    if exporter is None or exporter._pid != os.getpid():
        return

    try:
        exporter.shutdown(exporter.settings.exit_timeout)
    except Exception as exc:
        logger.error("flush at exit failed: %r", exc)


def _register_multiprocessing_exit_flush() -> None:
    """Flush at exit in a multiprocessing child, which ends with os._exit() and skips atexit."""
    global _multiprocessing_registered_pid
    multiprocessing = sys.modules.get("multiprocessing")
    pid = os.getpid()
    if multiprocessing is None or _multiprocessing_registered_pid == pid:
        return

    try:
        if multiprocessing.parent_process() is None:
            return

        from multiprocessing import util

        util.Finalize(None, _flush_at_exit, exitpriority=100)
        _multiprocessing_registered_pid = pid
    except Exception as exc:
        logger.debug("could not register the exit flush with multiprocessing: %r", exc)


def _after_fork_in_child() -> None:
    global _state_lock
    _state_lock = threading.Lock()
    exporter = _exporter
    if exporter is not None:
        exporter._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
