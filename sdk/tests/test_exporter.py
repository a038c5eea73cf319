"""The exporter against an in-process ingest endpoint (httpx.MockTransport).

These tests cover batching, ordering, retries, drops, the spool, payload hygiene and the
process-global functions. Real sockets and a real server are in tests/e2e.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import uuid
from typing import Callable

import httpx
import pytest

import kaizen_sdk
from kaizen_sdk import _exporter, _tracer
from kaizen_sdk._config import Settings
from kaizen_sdk._exporter import Exporter
from kaizen_sdk._spool import Spool
from kaizen_sdk._tracer import InstrumentOptions


class IngestEndpoint:
    """Record ingest bodies and respond to them. `script` contains responses to use first, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        self.attempt_times: list[float] = []
        self.script: list[Callable[[httpx.Request], httpx.Response] | httpx.Response | Exception] = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.attempts += 1
            self.attempt_times.append(time.monotonic())
            step = self.script.pop(0) if self.script else None

        if self.gate is not None:
            self.gate.wait(10)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        if callable(step):
            return step(request)

        body = json.loads(request.content)
        with self.lock:
            self.bodies.append(body)
        items = [{"type": "trace", "id": item["id"], "status": "accepted", "error": None} for item in body["traces"]]
        items += [{"type": "score", "id": item["id"], "status": "accepted", "error": None} for item in body["scores"]]
        return httpx.Response(200, json={"items": items})

    @property
    def trace_ids(self) -> list[str]:
        return [trace["id"] for body in self.bodies for trace in body["traces"]]

    @property
    def sequence(self) -> list[tuple[str, str]]:
        """Every delivered item as (kind, id), in delivery order (traces before scores in a body)."""
        result = []
        for body in self.bodies:
            result += [("trace", trace["id"]) for trace in body["traces"]]
            result += [("score", score["trace_id"]) for score in body["scores"]]
        return result


def make_trace(**fields) -> dict:
    trace = {
        "id": str(uuid.uuid4()),
        "task": "SUMMARIZE_PROMPT",
        "messages": [{"role": "user", "content": "hello"}],
        "prompt_text": "hello",
        "latency_ms": 1.0,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    trace.update(fields)
    return trace


def make_score(trace_id: str) -> dict:
    return {"id": str(uuid.uuid4()), "trace_id": trace_id, "score": 1.0, "scored_by": "sdk", "created_at": "2026-01-01T00:00:00+00:00"}


def settings(**overrides) -> Settings:
    values = {"api_key": "test-key", "base_url": "http://ct.test", "flush_interval": 0.05, "request_timeout": 2.0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def endpoint() -> IngestEndpoint:
    return IngestEndpoint()


@pytest.fixture
def exporters():
    created: list[Exporter] = []

    def make(endpoint: IngestEndpoint, **overrides) -> Exporter:
        exporter = Exporter(settings(**overrides), http_transport=httpx.MockTransport(endpoint))
        created.append(exporter)
        return exporter

    yield make
    for exporter in created:
        exporter.shutdown(0)
        exporter._stop_thread(2)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_exporter, "BACKOFF_BASE_SECONDS", 0.01)
    monkeypatch.setattr(_exporter, "BACKOFF_MAX_SECONDS", 0.05)


@pytest.fixture(autouse=True)
def reset_global():
    yield
    _exporter.reset(0.5)


def test_batches_by_count(endpoint, exporters) -> None:
    exporter = exporters(endpoint, max_batch_size=100)
    traces = [make_trace() for _ in range(250)]

    for trace in traces:
        exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert [len(body["traces"]) for body in endpoint.bodies] == [100, 100, 50]
    assert endpoint.trace_ids == [trace["id"] for trace in traces]
    assert exporter.stats()["sent"] == 250
    assert exporter.stats()["queued"] == 0


def test_batches_by_bytes(endpoint, exporters) -> None:
    exporter = exporters(endpoint, max_batch_bytes=4096)
    traces = [make_trace(prompt_text="p" * 1500) for _ in range(6)]

    for trace in traces:
        exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    for body in endpoint.bodies:
        assert len(json.dumps(body)) <= 4096
    assert endpoint.trace_ids == [trace["id"] for trace in traces]


def test_oversized_item_sent_alone(endpoint, exporters) -> None:
    exporter = exporters(endpoint, max_batch_bytes=2048)
    small = make_trace()
    big = make_trace(prompt_text="b" * 10_000)

    exporter.enqueue_trace(small)
    exporter.enqueue_trace(big)

    assert exporter.flush(5)
    assert [len(body["traces"]) for body in endpoint.bodies] == [1, 1]
    assert endpoint.trace_ids == [small["id"], big["id"]]


def test_flush_interval_sends_without_flush(endpoint, exporters) -> None:
    exporter = exporters(endpoint, flush_interval=0.1)
    trace = make_trace()

    exporter.enqueue_trace(trace)
    deadline = time.monotonic() + 5
    while not endpoint.bodies and time.monotonic() < deadline:
        time.sleep(0.01)

    assert endpoint.trace_ids == [trace["id"]]


def test_score_travels_after_its_trace(endpoint, exporters) -> None:
    exporter = exporters(endpoint, max_batch_size=3)
    traces = [make_trace() for _ in range(5)]

    for trace in traces:
        exporter.enqueue_trace(trace)
        exporter.enqueue_score(make_score(trace["id"]))

    assert exporter.flush(5)
    sequence = endpoint.sequence
    for trace in traces:
        assert sequence.index(("trace", trace["id"])) < sequence.index(("score", trace["id"]))


def test_retries_server_error(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    endpoint.script = [httpx.Response(500, json={"detail": "boom"}), httpx.Response(503)]
    trace = make_trace()

    exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert endpoint.attempts == 3
    assert endpoint.trace_ids == [trace["id"]]
    assert exporter.stats()["retried"] == 2
    assert exporter.stats()["dropped"] == 0


def test_retries_connection_error(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    endpoint.script = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]
    trace = make_trace()

    exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert endpoint.trace_ids == [trace["id"]]
    assert exporter.stats()["retried"] == 2


def test_honours_retry_after(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    endpoint.script = [httpx.Response(429, headers={"Retry-After": "0.3"})]

    exporter.enqueue_trace(make_trace())

    assert exporter.flush(5)
    assert endpoint.attempts == 2
    assert endpoint.attempt_times[1] - endpoint.attempt_times[0] >= 0.29


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_error_not_retried(endpoint, exporters, status: int) -> None:
    exporter = exporters(endpoint)
    endpoint.script = [httpx.Response(status, json={"detail": "bad"})]

    exporter.enqueue_trace(make_trace())

    assert not exporter.flush(5)
    assert endpoint.attempts == 1
    assert exporter.stats()["dropped"] == 1
    assert exporter.stats()["retried"] == 0


def test_request_timeout_status_retried(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    endpoint.script = [httpx.Response(408)]

    exporter.enqueue_trace(make_trace())

    assert exporter.flush(5)
    assert endpoint.attempts == 2


def test_too_large_batch_split(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    endpoint.script = [httpx.Response(413)]
    traces = [make_trace() for _ in range(4)]

    for trace in traces:
        exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert [len(body["traces"]) for body in endpoint.bodies] == [2, 2]
    assert endpoint.trace_ids == [trace["id"] for trace in traces]


def test_gives_up_after_max_retries(endpoint, exporters, caplog) -> None:
    exporter = exporters(endpoint, max_retries=2)
    endpoint.script = [httpx.Response(500)] * 3

    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.exporter"):
        exporter.enqueue_trace(make_trace())
        assert not exporter.flush(5)

    assert endpoint.attempts == 3
    assert exporter.stats()["dropped"] == 1
    assert exporter.stats()["retried"] == 2
    assert sum("retry" in record.message for record in caplog.records) == 2
    assert any("gave up on a batch of 1 items" in record.message for record in caplog.records)


def test_rejected_items_counted(endpoint, exporters, caplog) -> None:
    exporter = exporters(endpoint)
    trace = make_trace()
    endpoint.script = [
        httpx.Response(200, json={"items": [{"type": "trace", "id": trace["id"], "status": "rejected", "error": "task: too long"}]})
    ]

    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.exporter"):
        exporter.enqueue_trace(trace)
        exporter.flush(5)

    assert exporter.stats()["rejected"] == 1
    assert exporter.stats()["sent"] == 0
    assert any("task: too long" in record.message for record in caplog.records)


def test_full_queue_drops_and_warns_once(endpoint, exporters, caplog) -> None:
    exporter = exporters(endpoint, max_queue_size=5, max_batch_size=1)
    endpoint.gate = threading.Event()

    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.exporter"):
        started = time.monotonic()
        for _ in range(50):
            exporter.enqueue_trace(make_trace())
        elapsed = time.monotonic() - started

    endpoint.gate.set()
    stats = exporter.stats()
    warnings = [record for record in caplog.records if "queue is full" in record.message]
    assert elapsed < 1.0  # generous: enqueue never waits for the blocked sender
    assert stats["dropped"] >= 44
    assert stats["enqueued"] + stats["dropped"] == 50
    assert len(warnings) == 1


def test_flush_bounded_when_server_hangs(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    endpoint.gate = threading.Event()
    exporter.enqueue_trace(make_trace())

    started = time.monotonic()
    delivered = exporter.flush(0.2)
    elapsed = time.monotonic() - started
    endpoint.gate.set()

    assert not delivered
    assert elapsed < 1.0


def test_flush_with_nothing_queued(endpoint, exporters) -> None:
    exporter = exporters(endpoint)

    assert exporter.flush(0)
    assert endpoint.attempts == 0


def test_flush_waits_for_deferred_span_end(endpoint) -> None:
    # The span of an abandoned stream is ended on the tracer's background thread after the
    # garbage collector finds the stream; flush() must wait for that before it flushes.
    _exporter.configure(settings(flush_interval=60), http_transport=httpx.MockTransport(endpoint))
    span = _tracer.start_span("openai", [{"role": "user", "content": "hi"}], model="gpt-4o", options=InstrumentOptions())
    assert span is not None
    _tracer.defer(time.sleep, 0.3)  # the background thread is still busy when flush() starts
    _tracer.defer(functools.partial(span.end, incomplete=True))

    assert kaizen_sdk.flush(5)
    assert span.trace_id in endpoint.trace_ids
    delivered = [trace for body in endpoint.bodies for trace in body["traces"]]
    assert delivered[0]["incomplete"] is True


def test_flush_timeout_covers_deferred_work(endpoint) -> None:
    _exporter.configure(settings(flush_interval=60), http_transport=httpx.MockTransport(endpoint))
    _tracer.defer(time.sleep, 0.5)

    started = time.monotonic()
    delivered = kaizen_sdk.flush(0.1)
    elapsed = time.monotonic() - started

    assert not delivered
    assert elapsed < 0.4
    assert _tracer.drain_deferred()


def test_redact_applied_before_send(endpoint, exporters) -> None:
    def redact(trace: dict) -> dict | None:
        if trace["task"] == "SECRET":
            return None
        trace["prompt_text"] = "<masked>"
        return trace

    exporter = exporters(endpoint, redact=redact)
    kept = make_trace(prompt_text="my card is 4111")
    secret = make_trace(task="SECRET")

    exporter.enqueue_trace(kept)
    exporter.enqueue_trace(secret)

    assert exporter.flush(5)
    assert endpoint.trace_ids == [kept["id"]]
    assert endpoint.bodies[0]["traces"][0]["prompt_text"] == "<masked>"
    assert exporter.stats()["redacted"] == 1


def test_failing_redact_drops_trace(endpoint, exporters) -> None:
    def redact(trace: dict) -> dict:
        raise RuntimeError("regex failed")

    exporter = exporters(endpoint, redact=redact)
    exporter.enqueue_trace(make_trace(prompt_text="secret"))
    exporter.flush(5)

    assert endpoint.trace_ids == []
    assert exporter.stats()["dropped"] == 1


def test_hygiene_applied_before_send(endpoint, exporters) -> None:
    exporter = exporters(endpoint, max_field_chars=1000)
    image = "data:image/png;base64," + "A" * 4000
    trace = make_trace(
        prompt_text="q" * 5000,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}],
    )

    exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    sent = endpoint.bodies[0]["traces"][0]
    assert len(sent["prompt_text"]) == 1000
    assert "original length 5000" in sent["prompt_text"]
    assert sent["messages"][0]["content"][0]["type"] == "image_ref"
    assert sent["messages"][0]["content"][0]["bytes"] == 3000
    assert trace["prompt_text"] == "q" * 5000


def test_unencodable_values_sent_as_text(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    trace = make_trace(parameters={"stop": object(), "when": time})

    exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert isinstance(endpoint.bodies[0]["traces"][0]["parameters"]["stop"], str)


def test_spool_keeps_batches_until_server_returns(endpoint, exporters, tmp_path) -> None:
    exporter = exporters(endpoint, spool_dir=str(tmp_path))
    endpoint.script = [httpx.ConnectError("refused")] * 3
    traces = [make_trace() for _ in range(3)]

    for trace in traces:
        exporter.enqueue_trace(trace)
        exporter.flush(5)

    deadline = time.monotonic() + 5
    while len(endpoint.trace_ids) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)

    assert endpoint.trace_ids == [trace["id"] for trace in traces]
    assert exporter.stats()["spooled"] >= 1
    assert Spool(str(tmp_path), 1_000_000).pending() == (0, 0)


def test_spool_resent_by_next_exporter(endpoint, exporters, tmp_path) -> None:
    dead = IngestEndpoint()
    dead.script = [httpx.ConnectError("refused")] * 100
    first = exporters(dead, spool_dir=str(tmp_path))
    traces = [make_trace() for _ in range(5)]
    for trace in traces:
        first.enqueue_trace(trace)
    first.shutdown(0.2)

    assert Spool(str(tmp_path), 1_000_000).pending()[1] == 5

    _exporter.configure(settings(spool_dir=str(tmp_path)), http_transport=httpx.MockTransport(endpoint))
    deadline = time.monotonic() + 5
    while len(endpoint.trace_ids) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)

    assert sorted(endpoint.trace_ids) == sorted(trace["id"] for trace in traces)
    assert len(endpoint.trace_ids) == 5


def test_shutdown_spools_leftovers(endpoint, exporters, tmp_path) -> None:
    exporter = exporters(endpoint, spool_dir=str(tmp_path), flush_interval=60, max_batch_size=1000)
    endpoint.gate = threading.Event()  # the server hangs: nothing is delivered in time
    for _ in range(7):
        exporter.enqueue_trace(make_trace())
    exporter.flush(0.1)

    delivered = exporter.shutdown(0.1)
    endpoint.gate.set()

    assert not delivered
    assert Spool(str(tmp_path), 1_000_000).pending()[1] == 7


def test_shutdown_without_spool_counts_loss(endpoint, exporters, caplog) -> None:
    exporter = exporters(endpoint)
    endpoint.gate = threading.Event()
    for _ in range(3):
        exporter.enqueue_trace(make_trace())

    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.exporter"):
        delivered = exporter.shutdown(0.1)
    endpoint.gate.set()

    assert not delivered
    assert exporter.stats()["dropped"] == 3
    assert any("KAIZEN_SPOOL_DIR" in record.message for record in caplog.records)


def test_enqueue_after_shutdown_drops(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    exporter.shutdown(0)

    exporter.enqueue_trace(make_trace())

    assert exporter.stats()["dropped"] == 1


def test_enqueue_from_many_threads(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    ids_per_thread: list[list[str]] = [[] for _ in range(8)]

    def work(index: int) -> None:
        for _ in range(500):
            trace = make_trace()
            ids_per_thread[index].append(trace["id"])
            exporter.enqueue_trace(trace)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert exporter.flush(10)
    assert sorted(endpoint.trace_ids) == sorted(trace_id for ids in ids_per_thread for trace_id in ids)


def test_configure_without_key_warns_once(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.instrument"):
        first = _exporter.configure(Settings())
        second = _exporter.configure(Settings())

    warnings = [record for record in caplog.records if record.name == "kaizen_sdk.instrument"]
    assert first is None
    assert second is None
    assert _exporter.get_exporter() is None
    assert len(warnings) == 1
    assert "KAIZEN_API_KEY" in warnings[0].message
    assert _exporter.flush(0.1)
    assert _exporter.stats()["sent"] == 0


def test_configure_reuses_equal_settings(endpoint) -> None:
    first = _exporter.configure(settings())
    second = _exporter.configure(settings())

    assert first is not None
    assert first is second
    assert _exporter.get_exporter() is first
    assert _exporter.get_settings() == settings()


def test_configure_without_key_keeps_exporter(endpoint) -> None:
    configured = _exporter.configure(settings())

    assert _exporter.configure(Settings()) is configured


def test_reconfigure_moves_queue(endpoint) -> None:
    old_endpoint = IngestEndpoint()
    old_endpoint.gate = threading.Event()
    old = _exporter.configure(settings(flush_interval=60), http_transport=httpx.MockTransport(old_endpoint))
    traces = [make_trace() for _ in range(3)]
    for trace in traces:
        old.enqueue_trace(trace)

    new = _exporter.configure(settings(base_url="http://other.test"), http_transport=httpx.MockTransport(endpoint))
    old_endpoint.gate.set()

    assert new is not old
    assert _exporter.flush(5)
    assert endpoint.trace_ids == [trace["id"] for trace in traces]


def test_module_flush_and_stats(endpoint) -> None:
    exporter = _exporter.configure(settings(), http_transport=httpx.MockTransport(endpoint))
    exporter.enqueue_trace(make_trace())

    assert _exporter.flush(5)
    assert _exporter.stats()["sent"] == 1


def test_stats_without_exporter() -> None:
    stats = _exporter.stats()

    assert stats["queued"] == 0
    assert stats["sent"] == 0
    assert stats["retried"] == 0
    assert stats["dropped"] == 0


def test_reset_forgets_exporter(endpoint) -> None:
    _exporter.configure(settings(), http_transport=httpx.MockTransport(endpoint))

    _exporter.reset()

    assert _exporter.get_exporter() is None
    assert _exporter.get_settings() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_starts_empty(endpoint) -> None:
    endpoint.gate = threading.Event()  # the parent's first batch stays pending across the fork
    exporter = _exporter.configure(settings(), http_transport=httpx.MockTransport(endpoint))
    parent_trace = make_trace()
    exporter.enqueue_trace(parent_trace)
    exporter.flush(0.1)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its state through the pipe, never return into pytest
        try:
            child_endpoint = IngestEndpoint()
            child = _exporter.get_exporter()
            queued_at_start = child.stats()["queued"]
            child._http_transport = httpx.MockTransport(child_endpoint)
            child_trace = make_trace()
            child.enqueue_trace(child_trace)
            delivered = child.flush(5)
            report = {"queued_at_start": queued_at_start, "delivered": delivered, "ids": child_endpoint.trace_ids, "expected": child_trace["id"]}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)

    os.close(write_end)
    os.waitpid(pid, 0)
    report = json.loads(os.read(read_end, 65536))
    os.close(read_end)
    endpoint.gate.set()

    assert report["queued_at_start"] == 0
    assert report["delivered"] is True
    assert report["ids"] == [report["expected"]]
    assert _exporter.flush(5)
    assert endpoint.trace_ids == [parent_trace["id"]]


def test_unreachable_server_retried_past_max(endpoint, exporters) -> None:
    exporter = exporters(endpoint, max_retries=1)
    endpoint.script = [httpx.ConnectError("refused")] * 5
    trace = make_trace()

    exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert endpoint.trace_ids == [trace["id"]]
    assert exporter.stats()["retried"] == 5


def test_event_loop_not_blocked(endpoint, exporters) -> None:
    import asyncio

    exporter = exporters(endpoint, max_batch_size=10)
    endpoint.gate = threading.Event()  # every send hangs

    async def main() -> float:
        gaps = []

        async def ticker() -> None:
            last = time.monotonic()
            for _ in range(20):
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        async def producer() -> None:
            for _ in range(20):
                for _ in range(50):
                    exporter.enqueue_trace(make_trace())
                await asyncio.sleep(0.01)

        await asyncio.gather(ticker(), producer())
        return max(gaps)

    longest_gap = asyncio.run(main())
    endpoint.gate.set()

    assert longest_gap < 0.5  # generous: a blocked loop would stall for the request timeout (2 s)


def test_non_finite_numbers_sent_as_null(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    odd = make_trace(parameters={"temperature": float("nan"), "top_p": float("inf")})
    normal = make_trace()

    exporter.enqueue_trace(odd)
    exporter.enqueue_trace(normal)

    assert exporter.flush(5)
    assert endpoint.trace_ids == [odd["id"], normal["id"]]
    assert endpoint.bodies[0]["traces"][0]["parameters"] == {"temperature": None, "top_p": None}


def test_circular_trace_dropped_alone(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    circular = make_trace()
    circular["parameters"] = {"self": circular}
    normal = make_trace()

    exporter.enqueue_trace(circular)
    exporter.enqueue_trace(normal)
    exporter.flush(5)

    assert endpoint.trace_ids == [normal["id"]]
    assert exporter.stats()["dropped"] == 1


def test_non_dict_item_dropped_alone(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    normal = make_trace()

    exporter.enqueue_trace(["not", "a", "dict"])  # type: ignore[arg-type]
    exporter.enqueue_trace(normal)
    exporter.flush(5)

    assert endpoint.trace_ids == [normal["id"]]
    assert exporter.stats()["dropped"] == 1


def test_full_spool_drops_and_counts(endpoint, exporters, tmp_path, caplog) -> None:
    exporter = exporters(endpoint, spool_dir=str(tmp_path), spool_max_bytes=65_536, max_batch_size=10)
    endpoint.script = [httpx.ConnectError("refused")] * 1000

    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.exporter"):
        for _ in range(100):
            exporter.enqueue_trace(make_trace(prompt_text="p" * 2000))
        delivered = exporter.flush(5)

    stats = exporter.stats()
    assert not delivered
    assert stats["spooled"] + stats["dropped"] == 100
    assert stats["dropped"] > 0
    assert Spool(str(tmp_path), 65_536).stored_bytes() <= 65_536
    assert any("spool" in record.message and "is full" in record.message for record in caplog.records)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_items_encoded_ahead_of_batch(endpoint, exporters) -> None:
    # With a long flush interval and a large batch, no batch is due. The thread still turns
    # each group of queued traces into encoded bytes while they wait.
    exporter = exporters(endpoint, flush_interval=30.0, max_batch_size=500)
    traces = [make_trace() for _ in range(_exporter.PREPARE_AHEAD_ITEMS + 5)]

    for trace in traces:
        exporter.enqueue_trace(trace)

    assert wait_until(lambda: len(exporter._carry) >= _exporter.PREPARE_AHEAD_ITEMS)
    assert endpoint.bodies == []
    assert all(isinstance(item.body, bytes) for item in list(exporter._carry))
    assert exporter.stats()["queued"] == len(traces)
    assert exporter.flush(5)
    assert endpoint.trace_ids == [trace["id"] for trace in traces]


def test_encoded_ahead_items_keep_flush_deadline(endpoint, exporters) -> None:
    # Traces encoded ahead wait in the carry. A trace queued after them must not restart
    # their flush_interval: the batch is due one interval after the first trace arrived.
    exporter = exporters(endpoint, flush_interval=1.0, max_batch_size=500)
    first = [make_trace() for _ in range(_exporter.PREPARE_AHEAD_ITEMS)]
    started = time.monotonic()
    for trace in first:
        exporter.enqueue_trace(trace)
    assert wait_until(lambda: len(exporter._carry) == len(first))

    time.sleep(max(0.0, started + 0.7 - time.monotonic()))
    late = make_trace()
    exporter.enqueue_trace(late)

    assert wait_until(lambda: endpoint.bodies, timeout=5)
    sent_after = endpoint.attempt_times[0] - started
    assert sent_after < 1.45, f"first batch sent {sent_after:.2f} s after the first trace; flush_interval is 1.0 s"
    assert endpoint.trace_ids == [trace["id"] for trace in first] + [late["id"]]


def test_redact_drop_ahead_keeps_order(endpoint, exporters) -> None:
    def drop_odd(trace: dict) -> dict | None:
        return None if trace["task"] == "odd" else trace

    exporter = exporters(endpoint, flush_interval=30.0, max_batch_size=500, redact=drop_odd)
    traces = [make_trace(task="odd" if index % 2 else "even") for index in range(2 * _exporter.PREPARE_AHEAD_ITEMS)]
    score = make_score(traces[-2]["id"])

    for trace in traces:
        exporter.enqueue_trace(trace)
    exporter.enqueue_score(score)

    assert wait_until(lambda: len(exporter._carry) >= _exporter.PREPARE_AHEAD_ITEMS)
    assert exporter.flush(5)
    assert endpoint.trace_ids == [trace["id"] for trace in traces if trace["task"] == "even"]
    assert endpoint.sequence[-1] == ("score", traces[-2]["id"])
    assert exporter.stats()["redacted"] == _exporter.PREPARE_AHEAD_ITEMS
    assert exporter.stats()["queued"] == 0


def test_tuple_dict_keys_sent_as_text(endpoint, exporters) -> None:
    exporter = exporters(endpoint)
    trace = make_trace(parameters={("top", "p"): 0.5, "seed": 7})

    exporter.enqueue_trace(trace)

    assert exporter.flush(5)
    assert endpoint.bodies[0]["traces"][0]["parameters"] == {"('top', 'p')": 0.5, "seed": 7}


def test_http_client_built_before_thread(endpoint, exporters) -> None:
    # Built by the thread itself, the client's imports and CA bundle took that thread
    # seconds while a busy application held the GIL.
    exporter = exporters(endpoint)

    assert exporter._thread is None
    assert exporter._transport is not None
