"""Exporter fault tests: a real `kaizen serve` process, real sockets on 127.0.0.1.

Tests that kill or start the CT server run their own `kaizen serve`. The others share the
session's server and tell their traces apart by a unique task name. Where a fault must be
injected between the SDK and the server, a small HTTP proxy that this file owns sits between. Every test
checks the same two promises: the caller's enqueue returns at once whatever the server does,
and after recovery the server stores every trace exactly once.
"""

from __future__ import annotations

import collections
import datetime
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from e2e.conftest import CTServer, create_api_key, free_port, start_ct_server, stop_ct_server
from kaizen_sdk import _exporter
from kaizen_sdk._config import resolve_settings
from kaizen_sdk.client import CTClient

# An enqueue that takes this long has waited for the network; the real cost is microseconds.
ENQUEUE_BOUND_SECONDS = 0.5
INGEST_PATH = "/api/v1/ingest"


def make_trace(task: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "task": task,
        "messages": [{"role": "user", "content": "Summarize the ticket"}],
        "prompt_text": "Summarize the ticket",
        "response_text": "Done.",
        "model": "stub-model",
        "latency_ms": 12.5,
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "library": "openai",
        "parameters": {},
    }


def unique_task(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def stored_ids(server: CTServer, task: str) -> list[str]:
    """Return the id of every trace of `task` stored on the server (duplicates would show twice)."""
    with CTClient(server.api_key, server.base_url) as client:
        return [trace["id"] for trace in client.iter_traces(task=task, page_size=200)]


def wait_for_count(server: CTServer, task: str, expected: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    ids: list[str] = []
    while time.monotonic() < deadline:
        ids = stored_ids(server, task)
        if len(ids) >= expected:
            return ids
        time.sleep(0.2)

    raise AssertionError(f"server stored {len(ids)} of {expected} traces of {task} within {timeout} s:\n{server.log_tail()}")


def enqueue_all(traces: list[dict]) -> float:
    """Enqueue each trace the way the tracer does; return the slowest enqueue in seconds."""
    exporter = _exporter.get_exporter()
    slowest = 0.0
    for trace in traces:
        started = time.perf_counter()
        exporter.enqueue_trace(trace)
        slowest = max(slowest, time.perf_counter() - started)

    return slowest


def configure(base_url: str, api_key: str, **overrides):
    values = {"request_timeout": 1.0, "flush_interval": 0.05, "max_retries": 1000}
    values.update(overrides)
    return _exporter.configure(resolve_settings(api_key=api_key, base_url=base_url, **values))


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_exporter, "BACKOFF_BASE_SECONDS", 0.05)
    monkeypatch.setattr(_exporter, "BACKOFF_MAX_SECONDS", 0.5)
    yield
    _exporter.reset(1.0)


@pytest.fixture
def own_server(tmp_path: Path):
    """A CT server this test may kill and restart; yields a dict so the restarted one replaces it."""
    holder = {"server": start_ct_server(tmp_path / "server")}
    yield holder
    stop_ct_server(holder["server"])


class FaultProxy:
    """HTTP proxy on 127.0.0.1 that injects one scripted fault per ingest request.

    Faults: "500" and "429" respond without forwarding. "slow" forwards, then responds only
    after `slow_seconds` (beyond the client's timeout). "drop" forwards, then closes the
    connection without a response. Without a scripted fault the request passes through.
    `forwarded` counts, per trace id, how many requests carried it to the server.
    """

    def __init__(self, upstream: str, slow_seconds: float = 2.0) -> None:
        self.upstream = upstream
        self.slow_seconds = slow_seconds
        self.faults: collections.deque[str] = collections.deque()
        self.forwarded: collections.Counter[str] = collections.Counter()
        self.ingest_requests = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._relay(proxy._forward("GET", self.path, None, self.headers))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != INGEST_PATH:
                    self._relay(proxy._forward("POST", self.path, body, self.headers))
                    return

                with proxy.lock:
                    proxy.ingest_requests += 1
                    fault = proxy.faults.popleft() if proxy.faults else "pass"

                if fault in ("500", "429"):
                    headers = {"Retry-After": "1"} if fault == "429" else {}
                    self._answer(int(fault), b'{"detail": "injected fault"}', headers)
                    return

                response = proxy._forward("POST", self.path, body, self.headers)
                with proxy.lock:
                    proxy.forwarded.update(trace["id"] for trace in json.loads(body)["traces"])
                if fault == "drop":
                    self.close_connection = True  # the server stored the batch, the client gets no response
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                self._relay(response)

            def _relay(self, response: httpx.Response) -> None:
                self._answer(response.status_code, response.content, {"Content-Type": response.headers.get("Content-Type", "application/json")})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting ("slow"), so nobody reads the response

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, method: str, path: str, body: bytes | None, headers) -> httpx.Response:
        forwarded = {name: value for name, value in headers.items() if name.lower() in ("x-api-key", "content-type", "authorization")}
        return httpx.request(method, self.upstream + path, content=body, headers=forwarded, timeout=30)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_server_down_from_start(tmp_path: Path) -> None:
    directory = tmp_path / "server"
    directory.mkdir()
    db_url = f"sqlite:///{directory / 'kaizen.db'}"
    api_key = create_api_key(db_url)
    port = free_port()
    configure(f"http://127.0.0.1:{port}", api_key)
    task = unique_task("DOWN_FROM_START")
    traces = [make_trace(task) for _ in range(50)]

    slowest = enqueue_all(traces)
    assert not _exporter.flush(0.5)  # nothing listens yet

    server = start_ct_server(directory, port=port, db_url=db_url)
    try:
        assert _exporter.flush(30)
        ids = wait_for_count(server, task, len(traces))
    finally:
        stop_ct_server(server)

    assert slowest < ENQUEUE_BOUND_SECONDS
    assert sorted(ids) == sorted(trace["id"] for trace in traces)
    assert _exporter.stats()["retried"] >= 1
    assert _exporter.stats()["dropped"] == 0


def test_server_killed_mid_batch_and_restarted(own_server, tmp_path: Path) -> None:
    server = own_server["server"]
    port = int(server.base_url.rsplit(":", 1)[1])
    configure(server.base_url, server.api_key, max_batch_size=20)
    task = unique_task("KILLED_MID_BATCH")
    traces = [make_trace(task) for _ in range(600)]
    slowest = [0.0]

    def produce() -> None:
        for start in range(0, len(traces), 10):
            slowest[0] = max(slowest[0], enqueue_all(traces[start:start + 10]))
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.2)
    server.process.kill()  # SIGKILL while batches are in flight
    server.process.wait(10)
    producer.join()
    assert _exporter.stats()["queued"] > 0

    own_server["server"] = start_ct_server(tmp_path / "server", port=port, db_url=server.db_url)
    assert _exporter.flush(60)
    ids = wait_for_count(own_server["server"], task, len(traces))

    assert slowest[0] < ENQUEUE_BOUND_SECONDS
    assert len(ids) == len(traces)
    assert set(ids) == {trace["id"] for trace in traces}
    assert _exporter.stats()["dropped"] == 0


@pytest.mark.parametrize("fault", ["500", "429", "slow", "drop"])
def test_transient_fault_recovers_once(ct_server, fault: str) -> None:
    server = ct_server
    with FaultProxy(server.base_url, slow_seconds=1.5) as proxy:
        proxy.faults.extend([fault, fault])
        configure(proxy.base_url, server.api_key, request_timeout=1.0, max_batch_size=25)
        task = unique_task(f"FAULT_{fault.upper()}")
        traces = [make_trace(task) for _ in range(100)]

        started = time.monotonic()
        slowest = enqueue_all(traces)
        delivered = _exporter.flush(30)
        elapsed = time.monotonic() - started
        ids = wait_for_count(server, task, len(traces))

    assert slowest < ENQUEUE_BOUND_SECONDS
    assert delivered
    assert len(ids) == len(traces)
    assert set(ids) == {trace["id"] for trace in traces}
    assert _exporter.stats()["retried"] >= 2
    if fault == "429":
        assert elapsed >= 2.0  # two Retry-After: 1 responses were honoured
    if fault in ("slow", "drop"):
        # The server stored those batches although the client saw an error. They were sent
        # again, yet the store still contains each trace once.
        assert max(proxy.forwarded.values()) >= 2


def test_exit_with_dead_server_is_bounded(tmp_path: Path) -> None:
    # A listening socket that never answers: the worst case, every request waits for its timeout.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(64)
    port = blackhole.getsockname()[1]
    script = textwrap.dedent(
        f"""
        import time, uuid, datetime
        from kaizen_sdk import _exporter
        from kaizen_sdk._config import resolve_settings
        exporter = _exporter.configure(resolve_settings(
            api_key="key", base_url="http://127.0.0.1:{port}", request_timeout=30, exit_timeout=1.0))
        for _ in range(200):
            exporter.enqueue_trace({{"id": str(uuid.uuid4()), "task": "EXIT", "latency_ms": 1.0,
                                    "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}})
        time.sleep(0.2)  # the first batch is now waiting on the blackhole
        print(time.monotonic(), flush=True)
        """
    )
    try:
        completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        ended = time.monotonic()
    finally:
        blackhole.close()

    assert completed.returncode == 0, completed.stderr
    exit_seconds = ended - float(completed.stdout.strip().splitlines()[-1])
    # exit_timeout (1 s) plus interpreter teardown on a busy machine; the request timeout
    # (30 s) would show if the exit flush were not bounded.
    assert exit_seconds < 2.5
    assert "not sent to" in completed.stderr


def test_spool_survives_restart(tmp_path: Path) -> None:
    directory = tmp_path / "server"
    directory.mkdir()
    db_url = f"sqlite:///{directory / 'kaizen.db'}"
    api_key = create_api_key(db_url)
    port = free_port()
    spool_dir = tmp_path / "spool"
    task = unique_task("SPOOLED")
    script = textwrap.dedent(
        f"""
        import datetime, json, uuid
        from kaizen_sdk import _exporter
        from kaizen_sdk._config import resolve_settings
        exporter = _exporter.configure(resolve_settings(
            api_key={api_key!r}, base_url="http://127.0.0.1:{port}", spool_dir={str(spool_dir)!r}))
        ids = []
        for _ in range(120):
            trace_id = str(uuid.uuid4())
            ids.append(trace_id)
            exporter.enqueue_trace({{"id": trace_id, "task": {task!r}, "latency_ms": 1.0,
                                    "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}})
        print(json.dumps(ids), flush=True)
        """
    )

    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    expected = json.loads(completed.stdout.strip().splitlines()[-1])
    assert elapsed < 15  # the dead server never held up exit beyond the bound

    server = start_ct_server(directory, port=port, db_url=db_url)
    try:
        configure(server.base_url, api_key, spool_dir=str(spool_dir))  # the next process
        ids = wait_for_count(server, task, len(expected))
    finally:
        stop_ct_server(server)

    assert sorted(ids) == sorted(expected)


def _child_enqueues(task: str, count: int, queue) -> None:
    traces = [make_trace(task) for _ in range(count)]
    enqueue_all(traces)
    queue.put([trace["id"] for trace in traces])
    # No flush here: the exporter's exit flush for multiprocessing children sends them.


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_traces_arrive_once(ct_server) -> None:
    server = ct_server
    with FaultProxy(server.base_url) as proxy:
        configure(proxy.base_url, server.api_key, flush_interval=0.5)
        task = unique_task("FORKED")
        parent_traces = [make_trace(task) for _ in range(10)]
        enqueue_all(parent_traces)  # still queued when the children fork

        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        children = [context.Process(target=_child_enqueues, args=(task, 15, queue)) for _ in range(2)]
        for child in children:
            child.start()
        child_ids = [trace_id for _ in children for trace_id in queue.get(timeout=30)]
        for child in children:
            child.join(30)

        assert _exporter.flush(30)
        ids = wait_for_count(server, task, len(parent_traces) + len(child_ids))

    expected = {trace["id"] for trace in parent_traces} | set(child_ids)
    assert [child.exitcode for child in children] == [0, 0]
    assert len(ids) == len(expected)
    assert set(ids) == expected
    assert set(proxy.forwarded) == expected
    assert max(proxy.forwarded.values()) == 1  # the parent's queue was sent by the parent only


def test_many_threads_all_arrive_once(ct_server) -> None:
    server = ct_server
    configure(server.base_url, server.api_key, request_timeout=10.0)
    task = unique_task("THREADS")
    per_thread = [[make_trace(task) for _ in range(1250)] for _ in range(8)]
    slowest = [0.0] * 8

    def work(index: int) -> None:
        slowest[index] = enqueue_all(per_thread[index])

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert _exporter.flush(120)
    with CTClient(server.api_key, server.base_url) as client:
        counts = {item["task"]: item["trace_count"] for item in client.list_tasks()}
    ids = stored_ids(server, task)

    assert max(slowest) < ENQUEUE_BOUND_SECONDS
    assert counts[task] == 10_000
    assert len(ids) == 10_000
    assert set(ids) == {trace["id"] for traces in per_thread for trace in traces}
    assert _exporter.stats()["dropped"] == 0


FAULT_SUMMARY_PROMPT = "Summarize this ticket for the on-call engineer: {ticket}"


def test_openai_calls_unaffected_by_dead_server(tmp_path: Path, stub_llm, monkeypatch: pytest.MonkeyPatch) -> None:
    openai = pytest.importorskip("openai")
    import kaizen_sdk

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    directory = tmp_path / "server"
    directory.mkdir()
    db_url = f"sqlite:///{directory / 'kaizen.db'}"
    api_key = create_api_key(db_url)
    port = free_port()
    kaizen_sdk.instrument(openai, api_key=api_key, base_url=f"http://127.0.0.1:{port}", request_timeout=1.0, flush_interval=0.05)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    results = []
    slowest = 0.0
    try:
        for index in range(20):
            started = time.perf_counter()
            results.append(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": FAULT_SUMMARY_PROMPT.format(ticket=f"printer {index} jams")}],
                )
            )
            slowest = max(slowest, time.perf_counter() - started)

        server = start_ct_server(directory, port=port, db_url=db_url)
        try:
            assert kaizen_sdk.flush(30)
            stored = [server.wait_for_trace(result.ct_trace_id) for result in results]
        finally:
            stop_ct_server(server)
    finally:
        kaizen_sdk.uninstrument(openai)

    assert slowest < 1.0  # the stub answers in milliseconds; a call never waits for the CT server
    assert all(result.choices[0].message.content for result in results)
    assert {trace["task"] for trace in stored} == {"FAULT_SUMMARY_PROMPT"}
    assert len({trace["id"] for trace in stored}) == 20


def test_openai_threads_all_arrive_once(ct_server, stub_llm, monkeypatch: pytest.MonkeyPatch) -> None:
    openai = pytest.importorskip("openai")
    import kaizen_sdk

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    kaizen_sdk.instrument(openai, api_key=ct_server.api_key, base_url=ct_server.base_url, flush_interval=0.05)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    marker = uuid.uuid4().hex[:8]
    trace_ids: list[list[str]] = [[] for _ in range(8)]

    def work(index: int) -> None:
        for call in range(40):
            result = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": FAULT_SUMMARY_PROMPT.format(ticket=f"{marker} thread {index} call {call}")}],
            )
            trace_ids[index].append(result.ct_trace_id)

    try:
        threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert kaizen_sdk.flush(30)
    finally:
        kaizen_sdk.uninstrument(openai)

    expected = {trace_id for ids in trace_ids for trace_id in ids}
    with CTClient(ct_server.api_key, ct_server.base_url) as api:
        stored = [trace for trace in api.iter_traces(task="FAULT_SUMMARY_PROMPT", page_size=200) if trace["id"] in expected]
    assert len(expected) == 320
    assert len(stored) == 320
    assert all(marker in trace["prompt_text"] for trace in stored)
    assert _exporter.stats()["sent"] == 320
    assert _exporter.stats()["dropped"] == 0
