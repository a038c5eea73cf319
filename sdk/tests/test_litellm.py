"""litellm integration through the real litellm package and the stub LLM on 127.0.0.1."""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle

import litellm
import pytest
from stub_llm import StubLLMServer, count_tokens, reply_text

import kaizen_sdk
from kaizen_sdk import _exporter, _tracer


class Collector:
    def __init__(self):
        self.items = []

    def enqueue_trace(self, trace):
        self.items.append(("trace", trace))

    def enqueue_score(self, score):
        self.items.append(("score", score))

    @property
    def traces(self):
        return [item for kind, item in self.items if kind == "trace"]

    @property
    def last(self):
        return self.traces[-1]


@pytest.fixture(scope="module")
def stub():
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def collector(monkeypatch, stub):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.delenv("KAIZEN_API_KEY", raising=False)
    sink = Collector()
    monkeypatch.setattr(_exporter, "get_exporter", lambda: sink)
    kaizen_sdk.instrument(litellm)
    yield sink
    kaizen_sdk.uninstrument(litellm)


@pytest.fixture
def connection(stub):
    return {"api_base": stub.base_url, "api_key": "sk-test"}


TRIAGE_PROMPT = "Triage this incident report quickly"
ASYNC_TRIAGE_PROMPT = "Triage this async incident"
OTHER_PROMPT = "Another kind of incident question"


def test_completion_traced(collector, connection):
    response = litellm.completion(model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], temperature=0, **connection)
    trace = collector.last
    assert len(collector.traces) == 1
    assert response.ct_trace_id == trace["id"]
    assert trace["library"] == "litellm"
    assert trace["task"] == "TRIAGE_PROMPT"
    assert trace["response_text"] == reply_text(TRIAGE_PROMPT)
    assert trace["model"] == "gpt-4o"
    assert trace["prompt_tokens"] == count_tokens(TRIAGE_PROMPT)
    assert trace["completion_tokens"] == count_tokens(reply_text(TRIAGE_PROMPT))
    assert trace["total_tokens"] == response.usage.total_tokens
    assert trace["parameters"] == {"temperature": 0}
    assert "api_key" not in trace["parameters"]
    assert trace["latency_ms"] > 0


def test_positional_model_and_messages(collector, connection):
    litellm.completion("openai/gpt-4o", [{"role": "user", "content": TRIAGE_PROMPT}], **connection)
    assert collector.last["messages"] == [{"role": "user", "content": TRIAGE_PROMPT}]
    assert collector.last["task"] == "TRIAGE_PROMPT"


def test_response_unchanged(collector, connection):
    response = litellm.completion(model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], **connection)
    dumped = response.model_dump()
    assert "ct_trace_id" not in dumped
    assert "ct_trace_id" not in response.model_dump_json()
    assert pickle.loads(pickle.dumps(response)) == response
    assert copy.deepcopy(response) == response
    response.ct_score(1.0)
    assert [kind for kind, _ in collector.items] == ["trace", "score"]


def test_stream_traced(collector, connection):
    stream = litellm.completion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], stream=True, **connection
    )
    assert isinstance(stream, litellm.CustomStreamWrapper)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == reply_text(TRIAGE_PROMPT)
    assert collector.last["response_text"] == text
    assert collector.last["incomplete"] is False
    assert stream.ct_trace_id == collector.last["id"]


def test_stream_with_usage(collector, connection):
    stream = litellm.completion(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": TRIAGE_PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        **connection,
    )
    for _ in stream:
        pass
    assert collector.last["total_tokens"] == count_tokens(TRIAGE_PROMPT) + count_tokens(reply_text(TRIAGE_PROMPT))


def test_stream_abandoned_incomplete(collector, connection):
    import gc

    stream = litellm.completion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], stream=True, **connection
    )
    next(iter(stream))
    del stream
    gc.collect()
    assert _tracer.drain_deferred()
    assert len(collector.traces) == 1
    assert collector.last["incomplete"] is True


def test_tool_calls_captured(collector, connection):
    tools = [{"type": "function", "function": {"name": "page_oncall", "parameters": {"type": "object", "properties": {}}}}]
    response = litellm.completion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], tools=tools, **connection
    )
    assert response.choices[0].message.tool_calls[0].function.name == "page_oncall"
    call = collector.last["response"]["choices"][0]["tool_calls"][0]
    assert call["function"]["name"] == "page_oncall"
    assert collector.last["parameters"]["tools"] == ["page_oncall"]

    for _ in litellm.completion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], tools=tools, stream=True, **connection
    ):
        pass
    call = collector.last["response"]["choices"][0]["tool_calls"][0]
    assert call["function"]["name"] == "page_oncall"


def test_error_propagates(collector, connection):
    # litellm 1.53 raises APIError for a 500, later releases InternalServerError.
    with pytest.raises((litellm.exceptions.InternalServerError, litellm.exceptions.APIError)) as caught:
        litellm.completion(
            model="openai/error-500", messages=[{"role": "user", "content": TRIAGE_PROMPT}], num_retries=0, max_retries=0, **connection
        )
    assert collector.last["error"] == f"{type(caught.value).__name__}: {caught.value}"


async def test_acompletion_traced(collector, connection):
    response = await litellm.acompletion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": ASYNC_TRIAGE_PROMPT}], **connection
    )
    assert response.ct_trace_id == collector.last["id"]
    assert collector.last["task"] == "ASYNC_TRIAGE_PROMPT"
    assert collector.last["response_text"] == reply_text(ASYNC_TRIAGE_PROMPT)

    stream = await litellm.acompletion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": ASYNC_TRIAGE_PROMPT}], stream=True, **connection
    )
    async for _ in stream:
        pass
    assert collector.last["response_text"] == reply_text(ASYNC_TRIAGE_PROMPT)
    assert len(collector.traces) == 2


async def test_acompletion_gather_tasks(collector, connection):
    def call(prompt):
        return litellm.acompletion(model="openai/gpt-4o", messages=[{"role": "user", "content": prompt}], **connection)

    prompts = [TRIAGE_PROMPT if i % 2 else OTHER_PROMPT for i in range(20)]
    results = await asyncio.gather(*(call(prompt) for prompt in prompts))
    by_id = {trace["id"]: trace for trace in collector.traces}
    assert len(by_id) == 20
    for prompt, result in zip(prompts, results):
        trace = by_id[result.ct_trace_id]
        assert trace["task"] == ("TRIAGE_PROMPT" if prompt == TRIAGE_PROMPT else "OTHER_PROMPT")
        assert trace["prompt_text"] == prompt


def test_import_after_instrument_traced(collector, connection):
    from litellm import completion

    completion(model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], **connection)
    assert len(collector.traces) == 1


def test_import_before_instrument_untraced(monkeypatch, connection):
    sink = Collector()
    monkeypatch.setattr(_exporter, "get_exporter", lambda: sink)
    from litellm import completion as imported_early

    kaizen_sdk.instrument(litellm)
    try:
        imported_early(model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], **connection)
        assert sink.traces == []
    finally:
        kaizen_sdk.uninstrument(litellm)


def test_patched_functions_keep_metadata(collector):
    assert litellm.completion.__name__ == "completion"
    assert inspect.signature(litellm.completion) == inspect.signature(litellm.completion.__wrapped__)
    assert "messages" in inspect.signature(litellm.completion).parameters
    assert litellm.completion.__doc__ == litellm.completion.__wrapped__.__doc__
    assert asyncio.iscoroutinefunction(litellm.acompletion)


def test_uninstrument_restores(monkeypatch):
    monkeypatch.setattr(_exporter, "get_exporter", lambda: None)
    completion, acompletion = litellm.completion, litellm.acompletion
    for _ in range(2):
        kaizen_sdk.instrument(litellm)
        assert litellm.completion is not completion
        kaizen_sdk.uninstrument(litellm)
        assert litellm.completion is completion
        assert litellm.acompletion is acompletion


async def test_completion_with_acompletion_flag(collector, connection):
    # litellm 1.53 fails on this call shape with or without the SDK; the dispatcher of
    # later releases turns it into acompletion().
    pytest.importorskip("litellm.chat_completions.dispatch")
    pending = litellm.completion(
        model="openai/gpt-4o", messages=[{"role": "user", "content": TRIAGE_PROMPT}], acompletion=True, **connection
    )
    assert inspect.isawaitable(pending)
    response = await pending
    assert response.ct_trace_id == collector.last["id"]
    assert collector.last["response_text"] == reply_text(TRIAGE_PROMPT)
    assert "acompletion" not in collector.last["parameters"]
    assert len(collector.traces) == 1
