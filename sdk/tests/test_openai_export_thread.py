"""openai traces built on the exporter's thread: what the caller snapshots and what is sent.

The real exporter gets a snapshot of each ended span and builds the trace dict on its own
thread. These tests send through the real openai client to the stub LLM, then read the
ingest bodies the exporter posted to an in-process endpoint (httpx.MockTransport).
"""

from __future__ import annotations

import gc
import json
import uuid
import weakref

import httpx
import openai
import pytest
from stub_llm import StubLLMServer, reply_text

import kaizen_sdk
from kaizen_sdk import _exporter
from kaizen_sdk._config import Settings

SNAPSHOT_PROMPT = "Summarize the ticket about the flooded server room"


class Ingest:
    def __init__(self) -> None:
        self.traces: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.traces.extend(body["traces"])
        items = [{"type": "trace", "id": trace["id"], "status": "accepted", "error": None} for trace in body["traces"]]
        return httpx.Response(200, json={"items": items})


@pytest.fixture(scope="module")
def stub():
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def ingest(monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    endpoint = Ingest()
    settings = Settings(api_key="test-key", base_url="http://ct.test", flush_interval=60)
    kaizen_sdk.instrument(openai)
    _exporter.configure(settings, http_transport=httpx.MockTransport(endpoint))
    yield endpoint
    kaizen_sdk.uninstrument(openai)
    _exporter.reset(0.5)


def test_trace_keeps_request_as_sent(ingest, stub):
    client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": SNAPSHOT_PROMPT}]
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)

    # The caller reuses its list and dicts before the exporter builds the trace.
    messages[1]["content"] = "changed after the call"
    messages.append({"role": "assistant", "content": "appended after the call"})
    assert kaizen_sdk.flush(5)

    assert len(ingest.traces) == 1
    trace = ingest.traces[0]
    assert trace["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": SNAPSHOT_PROMPT}]
    assert trace["prompt_text"] == f"Be brief.\n\n{SNAPSHOT_PROMPT}"
    assert trace["parameters"] == {"temperature": 0}
    assert trace["id"] == response.ct_trace_id


def test_queued_trace_frees_response(ingest, stub):
    # The response is read into plain values at the call: a queued trace that kept the
    # response model alive would hold a dozen objects in the garbage collector's generations.
    client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": SNAPSHOT_PROMPT}])
    reference = weakref.ref(response)

    del response
    gc.collect()

    assert kaizen_sdk.stats()["queued"] == 1
    assert reference() is None
    assert kaizen_sdk.flush(5)
    assert ingest.traces[0]["response_text"] == reply_text(SNAPSHOT_PROMPT)


def test_response_recorded_in_trace(ingest, stub):
    client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": SNAPSHOT_PROMPT}])
    assert kaizen_sdk.flush(5)

    trace = ingest.traces[0]
    assert trace["response_text"] == reply_text(SNAPSHOT_PROMPT) == response.choices[0].message.content
    assert trace["model"] == response.model
    assert trace["prompt_tokens"] == response.usage.prompt_tokens
    assert trace["completion_tokens"] == response.usage.completion_tokens
    assert trace["total_tokens"] == response.usage.total_tokens
    assert trace["response"]["choices"][0]["finish_reason"] == response.choices[0].finish_reason
    assert trace["started_at"].endswith("Z")
    assert trace["latency_ms"] > 0


def test_trace_ids_are_version_4_uuids(ingest, stub):
    client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    ids = {
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": SNAPSHOT_PROMPT}]).ct_trace_id
        for _ in range(20)
    }

    assert len(ids) == 20
    for trace_id in ids:
        parsed = uuid.UUID(trace_id)
        assert str(parsed) == trace_id
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
