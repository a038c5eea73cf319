"""Memory stays flat over many traced calls that mix successes, errors and abandoned streams.

The 10,000-call test counts live objects (tracemalloc slows it past a minute); a shorter
test measures allocated bytes with tracemalloc.

The calls go through the real openai client with an in-process ``MockTransport``
that serves the stub LLM's bodies, so 10,000 calls take seconds, not minutes.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import tracemalloc

import openai
import pytest
from stub_llm import chat_chunks, chat_completion

import kaizen_sdk
from kaizen_sdk import _exporter, _result, _tracer
from kaizen_sdk.integrations.openai import _patch

# openai 3.x sends through httpx2, older releases through httpx; both have MockTransport.
http = importlib.import_module("httpx2" if importlib.util.find_spec("openai._httpx2") else "httpx")

CALLS = 10_000
MEMORY_PROMPT = "Check memory for this prompt"


class Discard:
    def enqueue_trace(self, trace):
        pass

    def enqueue_score(self, score):
        pass


def handler(request: http.Request) -> http.Response:
    body = json.loads(request.content)
    if body["model"] == "error-500":
        return http.Response(500, json={"error": {"message": "injected", "type": "server_error"}})
    if body.get("stream"):
        events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chat_chunks(body)) + "data: [DONE]\n\n"
        return http.Response(200, content=events.encode(), headers={"content-type": "text/event-stream"})
    return http.Response(200, json=chat_completion(body))


@pytest.fixture
def client(monkeypatch):
    monkeypatch.delenv("KAIZEN_API_KEY", raising=False)
    monkeypatch.setattr(_exporter, "get_exporter", lambda: Discard())
    kaizen_sdk.instrument(openai)
    http_client = http.Client(transport=http.MockTransport(handler))
    yield openai.OpenAI(base_url="http://stub.invalid/v1", api_key="sk-test", max_retries=0, http_client=http_client)
    kaizen_sdk.uninstrument(openai)


def one_call(client: openai.OpenAI, index: int) -> None:
    messages = [{"role": "user", "content": MEMORY_PROMPT}]
    kind = index % 4
    if kind == 0:
        client.chat.completions.create(model="gpt-4o", messages=messages)
    elif kind == 1:
        try:
            client.chat.completions.create(model="error-500", messages=messages)
        except openai.InternalServerError:
            pass
    elif kind == 2:
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        next(iter(stream))  # abandoned after one chunk
    else:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
        del raw  # never parsed


def settle() -> None:
    """Collect garbage and let the spans of abandoned streams end on the background thread."""
    gc.collect()
    assert _tracer.drain_deferred()
    gc.collect()


def dead_result_entries() -> list[int]:
    """Return the keys of result entries whose result was garbage collected: a real leak."""
    return [key for key, (ref, _trace_id) in list(_result._entries.items()) if ref() is None]


@pytest.mark.slow
def test_memory_flat_over_many_calls(client):
    for index in range(500):
        one_call(client, index)
    settle()
    # Other tests may leave entries whose result is still alive (litellm keeps a response
    # in a logging coroutine that never ran); those are not this test's, so only entries
    # added from here on count.
    entries_before = set(_result._entries)
    open_spans_before = set(_tracer._open_spans.keys())
    raw_pending_before = set(_patch._raw_pending)
    objects_before = len(gc.get_objects())

    for index in range(CALLS):
        one_call(client, index)
    settle()

    objects_after = len(gc.get_objects())
    assert set(_result._entries) - entries_before == set()
    assert dead_result_entries() == []
    assert set(_tracer._open_spans.keys()) - open_spans_before == set()
    assert set(_patch._raw_pending) - raw_pending_before == set()
    # One object left behind per call would add 10,000; allow for caches warming up.
    assert objects_after - objects_before < 500, f"{objects_after - objects_before} objects more after {CALLS} calls"


def test_memory_bytes_flat(client):
    for index in range(200):
        one_call(client, index)
    settle()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()

    for index in range(500):
        one_call(client, index)
    settle()

    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Per-call state left behind would cost hundreds of bytes per call.
    assert after - before < 64 * 1024, f"memory grew by {after - before} bytes over 500 calls"
