"""openai integration through the real openai package and the stub LLM on 127.0.0.1.

The exporter is replaced by an in-memory collector, so these tests check the trace dicts
the SDK builds for every call shape; tests/e2e checks that they land in a CT server.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import inspect
import pickle
import threading

import openai
import pytest
from pydantic import BaseModel
from stub_llm import StubLLMServer, count_tokens, reply_text

import kaizen_sdk
from kaizen_sdk import _exporter, _tracer
from kaizen_sdk.integrations.openai import _compat

from openai.resources.chat.completions import AsyncCompletions, Completions


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
    monkeypatch.delenv("KAIZEN_API_KEY", raising=False)
    sink = Collector()
    monkeypatch.setattr(_exporter, "get_exporter", lambda: sink)
    kaizen_sdk.instrument(openai)
    yield sink
    kaizen_sdk.uninstrument(openai)


@pytest.fixture
def client(stub):
    return openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def aclient(stub):
    return openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)


QUESTION = "Summarize the ticket about the broken printer"
ASYNC_PROMPT = "Classify this async ticket"
FIRST_PROMPT = "First kind of question"
SECOND_PROMPT = "Second kind of question"


def expected_reply(prompt=QUESTION, index=0):
    return reply_text(prompt, index)


# --- plain calls ------------------------------------------------------------------------


def test_plain_call_traced(collector, client):
    REVIEW_PROMPT = "Review this code: {code}"
    response = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": REVIEW_PROMPT.format(code="x = 1")}], temperature=0.3
    )

    trace = collector.last
    assert len(collector.traces) == 1
    assert response.ct_trace_id == trace["id"]
    assert trace["task"] == "REVIEW_PROMPT"
    assert trace["library"] == "openai"
    assert trace["messages"] == [{"role": "user", "content": "Review this code: x = 1"}]
    assert trace["response_text"] == response.choices[0].message.content
    assert trace["model"] == "gpt-4o"
    assert trace["prompt_tokens"] == response.usage.prompt_tokens
    assert trace["completion_tokens"] == response.usage.completion_tokens
    assert trace["total_tokens"] == response.usage.total_tokens
    assert trace["parameters"] == {"temperature": 0.3}
    assert trace["latency_ms"] > 0
    assert trace["error"] is None
    assert trace["source_file"].endswith("test_openai.py")


def test_response_unchanged_by_tracing(collector, client, stub):
    messages = [{"role": "user", "content": QUESTION}]
    traced = client.chat.completions.create(model="gpt-4o", messages=messages)
    kaizen_sdk.uninstrument(openai)
    plain = client.chat.completions.create(model="gpt-4o", messages=messages)

    assert hasattr(traced, "ct_trace_id")
    assert not hasattr(plain, "ct_trace_id")
    assert traced.model_dump(exclude={"id", "created"}) == plain.model_dump(exclude={"id", "created"})
    assert set(traced.model_dump()) == set(plain.model_dump())
    assert traced.model_dump_json() == traced.model_copy().model_dump_json()
    assert pickle.loads(pickle.dumps(traced)) == traced
    assert copy.deepcopy(traced) == traced
    assert "ct_trace_id" not in traced.model_dump_json()


def test_ct_score_after_trace(collector, client):
    response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    response.ct_score(0.9)
    kinds = [kind for kind, _ in collector.items]
    assert kinds == ["trace", "score"]
    assert collector.items[1][1]["trace_id"] == response.ct_trace_id
    assert collector.items[1][1]["scored_by"] == "sdk"


def test_n_choices_and_tools_captured(collector, client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    messages = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "printer is HP"},
    ]
    client.chat.completions.create(model="gpt-4o", messages=messages, n=2)
    trace = collector.last
    assert trace["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "printer is HP"}
    assert trace["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert [choice["index"] for choice in trace["response"]["choices"]] == [0, 1]
    assert trace["response"]["choices"][1]["content"] == expected_reply(index=1)

    client.chat.completions.create(model="gpt-4o", messages=messages[:1], tools=tools)
    trace = collector.last
    call = trace["response"]["choices"][0]["tool_calls"][0]
    assert call["function"]["name"] == "lookup"
    assert trace["response"]["choices"][0]["finish_reason"] == "tool_calls"
    assert trace["response_text"] is None
    assert trace["parameters"]["tools"] == ["lookup"]


def test_base64_image_stored_as_reference(collector, client):
    image = base64.b64encode(b"\xff\xd8\xff" + b"\x01" * 100_000).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe the photo"},
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
            ],
        }
    ]
    client.chat.completions.create(model="gpt-4o", messages=messages)
    part = collector.last["messages"][0]["content"][1]
    assert part["type"] == "image_ref"
    assert part["media_type"] == "image/jpeg"
    assert part["bytes"] == 100_003
    assert len(str(collector.last)) < 5_000


def test_arguments_not_mutated(collector, client, stub):
    messages = [{"role": "user", "content": QUESTION}]
    snapshot = copy.deepcopy(messages)
    stub.clear()
    for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
        pass
    assert messages == snapshot
    assert "stream_options" not in stub.requests[-1]["body"]


def test_generator_messages_still_sent(collector, client):
    def messages():
        yield {"role": "user", "content": QUESTION}

    response = client.chat.completions.create(model="gpt-4o", messages=messages())
    assert response.choices[0].message.content == expected_reply()
    assert collector.last["messages"] == [{"role": "user", "content": QUESTION}]


def test_omit_sentinels_ignored(collector, client):
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=openai.omit,
        max_tokens=openai.NOT_GIVEN,
    )
    assert collector.last["parameters"] == {}


def test_error_propagates_unchanged(collector, client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="error-500", messages=[{"role": "user", "content": QUESTION}])
    trace = collector.last
    assert trace["error"].startswith("InternalServerError: ")
    assert "injected error" in trace["error"]
    assert trace["response_text"] is None
    # The innermost frame of the traceback is openai's, not the SDK's.
    tb = caught.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert "kaizen_sdk" not in tb.tb_frame.f_code.co_filename


def test_tracing_failure_returns_result(collector, client, monkeypatch, caplog):
    from kaizen_sdk.integrations.openai import _patch

    def broken(*args, **kwargs):
        raise RuntimeError("reader bug")

    monkeypatch.setattr(_patch, "record_response", broken)
    monkeypatch.setattr(_tracer, "_log_state", {})
    response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    response_again = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert response.choices[0].message.content == expected_reply()
    assert response_again.choices[0].message.content == expected_reply()
    assert caplog.text.count("could not read the openai response") == 1


# --- streams ----------------------------------------------------------------------------


def test_stream_consumed_by_for(collector, client):
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True)
    assert isinstance(stream, openai.Stream)
    assert stream.ct_trace_id
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    trace = collector.last
    assert text == expected_reply()
    assert trace["id"] == stream.ct_trace_id
    assert trace["response_text"] == expected_reply()
    assert trace["incomplete"] is False
    assert trace["prompt_tokens"] is None
    assert trace["total_tokens"] is None


def test_stream_include_usage_tokens(collector, client):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    trace = collector.last
    assert trace["prompt_tokens"] == count_tokens(QUESTION)
    assert trace["completion_tokens"] == count_tokens(expected_reply())
    assert trace["total_tokens"] == trace["prompt_tokens"] + trace["completion_tokens"]


def test_stream_context_manager(collector, client):
    with client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True) as stream:
        chunks = list(stream)
    assert len(chunks) > 2
    assert collector.last["response_text"] == expected_reply()
    assert collector.last["incomplete"] is False
    assert len(collector.traces) == 1


def test_stream_break_marks_incomplete(collector, client):
    with client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True) as stream:
        for index, _ in enumerate(stream):
            if index == 2:
                break
    trace = collector.last
    assert trace["incomplete"] is True
    assert trace["response_text"] == "Stub reply"


def test_stream_closed_unread(collector, client):
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True)
    stream.close()
    assert collector.last["incomplete"] is True
    assert collector.last["response_text"] is None


def test_stream_abandoned_ends_on_gc(collector, client):
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    assert _tracer.drain_deferred()
    assert len(collector.traces) == 1
    assert collector.last["incomplete"] is True


def test_stream_tool_calls_and_n(collector, client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    for _ in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], tools=tools, stream=True):
        pass
    call = collector.last["response"]["choices"][0]["tool_calls"][0]
    assert call["function"]["name"] == "lookup"
    assert call["function"]["arguments"] == '{"input": "%s"}' % QUESTION

    for _ in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], n=2, stream=True):
        pass
    choices = collector.last["response"]["choices"]
    assert [choice["content"] for choice in choices] == [expected_reply(), expected_reply(index=1)]


def test_chat_stream_helper(collector, client):
    with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]) as stream:
        for _ in stream:
            pass
    assert len(collector.traces) == 1
    assert collector.last["response_text"] == expected_reply()
    assert kaizen_sdk.last_trace_id() == collector.last["id"]


# --- raw responses, parse, Responses API -------------------------------------------------


def test_with_raw_response(collector, client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    assert completion.ct_trace_id == raw.ct_trace_id
    assert collector.last["response_text"] == expected_reply()
    assert collector.last["total_tokens"] == completion.usage.total_tokens
    assert raw.parse() is completion


def test_with_raw_response_stream(collector, client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    for _ in stream:
        pass
    assert collector.last["response_text"] == expected_reply()
    assert len(collector.traces) == 1


def test_with_raw_response_never_parsed(collector, client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert raw.http_response.json()["choices"]
    del raw
    gc.collect()
    assert _tracer.drain_deferred()
    assert len(collector.traces) == 1
    assert collector.last["response_text"] == expected_reply()


def test_raw_response_address_reuse(collector, client):
    # A dead raw response's finalizer only defers its work. Before that work runs, a new raw
    # response can be allocated at the same address and register under the same id: the
    # old span must still end, with its own response, and the new one must stay pending.
    from kaizen_sdk.integrations.openai import _patch

    release = threading.Event()
    _tracer.defer(release.wait, 5)  # hold the background thread until both are registered

    old = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    key = id(old)
    old_trace_id = old.ct_trace_id
    del old
    gc.collect()

    new = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "second"}])
    with _patch._raw_lock:
        # What an allocation at the same address does to the pending entries.
        _patch._raw_pending[key] = _patch._raw_pending.pop(id(new))
    release.set()
    assert _tracer.drain_deferred()

    assert [trace["id"] for trace in collector.traces] == [old_trace_id]
    assert collector.last["response_text"] == expected_reply()
    assert _patch._raw_pending[key][2].trace_id == new.ct_trace_id

    # Put the entry back where `new` finds it, so its trace ends in this test.
    with _patch._raw_lock:
        _patch._raw_pending[id(new)] = _patch._raw_pending.pop(key)
    new.parse()
    assert [trace["id"] for trace in collector.traces] == [old_trace_id, new.ct_trace_id]


def test_with_streaming_response(collector, client):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
    ) as response:
        completion = response.parse()
    assert completion.ct_trace_id == collector.last["id"]
    assert collector.last["response_text"] == expected_reply()

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True
    ) as response:
        for _ in response.parse():
            pass
    assert collector.last["response_text"] == expected_reply()
    assert len(collector.traces) == 2


class Ticket(BaseModel):
    title: str
    priority: int


def test_structured_parse(collector, client):
    completion = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], response_format=Ticket
    )
    assert completion.choices[0].message.parsed == Ticket(title="stub", priority=1)
    assert completion.ct_trace_id == collector.last["id"]
    assert collector.last["response_text"] == '{"title": "stub", "priority": 1}'
    assert collector.last["parameters"]["response_format"] == "Ticket"
    assert len(collector.traces) == 1


def test_responses_api(collector, client):
    response = client.responses.create(model="gpt-4o", input=QUESTION, instructions="Answer briefly")
    trace = collector.last
    assert response.ct_trace_id == trace["id"]
    assert trace["messages"] == [
        {"role": "system", "content": "Answer briefly"},
        {"role": "user", "content": QUESTION},
    ]
    assert trace["response_text"] == response.output_text
    assert trace["prompt_tokens"] == response.usage.input_tokens
    assert trace["completion_tokens"] == response.usage.output_tokens
    assert trace["total_tokens"] == response.usage.total_tokens


def test_responses_api_streamed(collector, client):
    stream = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": QUESTION}], stream=True)
    assert isinstance(stream, openai.Stream)
    for _ in stream:
        pass
    trace = collector.last
    assert trace["response_text"] == expected_reply()
    assert trace["total_tokens"] is not None
    assert trace["incomplete"] is False

    with client.responses.stream(model="gpt-4o", input=QUESTION) as events:
        for _ in events:
            pass
    assert collector.last["response_text"] == expected_reply()
    assert len(collector.traces) == 2


# --- async --------------------------------------------------------------------------------


async def test_async_plain_and_stream(collector, aclient):
    response = await aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": ASYNC_PROMPT}])
    assert response.ct_trace_id == collector.last["id"]
    assert collector.last["task"] == "ASYNC_PROMPT"
    assert kaizen_sdk.last_trace_id() == response.ct_trace_id

    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": ASYNC_PROMPT}], stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream)
    async for _ in stream:
        pass
    assert collector.last["response_text"] == expected_reply(ASYNC_PROMPT)
    assert collector.last["total_tokens"] is not None

    async with await aclient.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": ASYNC_PROMPT}], stream=True
    ) as stream:
        async for _ in stream:
            break
    assert collector.last["incomplete"] is True
    assert len(collector.traces) == 3


async def test_async_latency_covers_await(collector, aclient):
    pending = aclient.chat.completions.create(model="delay-150", messages=[{"role": "user", "content": QUESTION}])
    await asyncio.sleep(0.3)
    await pending
    assert 140 <= collector.last["latency_ms"] < 290


async def test_async_raw_parse_responses(collector, aclient):
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert raw.parse().ct_trace_id == collector.last["id"]

    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
    ) as response:
        parsed = await response.parse()
    assert parsed.ct_trace_id == collector.last["id"]

    parsed = await aclient.chat.completions.parse(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], response_format=Ticket)
    assert parsed.choices[0].message.parsed.title == "stub"

    response = await aclient.responses.create(model="gpt-4o", input=QUESTION)
    assert response.ct_trace_id == collector.last["id"]
    stream = await aclient.responses.create(model="gpt-4o", input=QUESTION, stream=True)
    async for _ in stream:
        pass
    assert collector.last["response_text"] == expected_reply()
    assert len(collector.traces) == 5


async def test_async_error_propagates(collector, aclient):
    with pytest.raises(openai.RateLimitError):
        await aclient.chat.completions.create(model="error-429", messages=[{"role": "user", "content": QUESTION}])
    assert collector.last["error"].startswith("RateLimitError: ")


async def test_gather_names_each_call(collector, aclient):
    def ask(prompt):
        return aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])

    results = await asyncio.gather(*(ask(FIRST_PROMPT if i % 2 else SECOND_PROMPT) for i in range(50)))
    by_id = {trace["id"]: trace for trace in collector.traces}
    assert len(by_id) == 50
    for result in results:
        trace = by_id[result.ct_trace_id]
        expected = "FIRST_PROMPT" if "First" in trace["prompt_text"] else "SECOND_PROMPT"
        assert trace["task"] == expected
        assert trace["response_text"] == result.choices[0].message.content


# --- patching invariants --------------------------------------------------------------------


def test_patched_methods_keep_metadata(collector):
    for owner, name in ((Completions, "create"), (AsyncCompletions, "create"), (Completions, "parse")):
        patched = vars(owner)[name]
        original = patched.__wrapped__
        assert patched.__name__ == original.__name__
        assert patched.__doc__ == original.__doc__
        assert inspect.signature(patched) == inspect.signature(original)
    # asyncio.iscoroutinefunction honours the marker on 3.11; inspect needs 3.12 for it.
    assert asyncio.iscoroutinefunction(vars(AsyncCompletions)["parse"])


def test_uninstrument_restores_originals(monkeypatch):
    monkeypatch.setattr(_exporter, "get_exporter", lambda: None)
    targets = [(target.owner, target.name) for target in _compat.targets()]
    targets += [(cls, "parse") for cls, _ in _compat.raw_response_classes()]
    originals = {key: vars(key[0])[key[1]] for key in targets}
    for _ in range(2):
        kaizen_sdk.instrument(openai)
        kaizen_sdk.instrument(openai)
        assert all(vars(owner)[name] is not originals[(owner, name)] for owner, name in targets)
        kaizen_sdk.uninstrument(openai)
        assert all(vars(owner)[name] is originals[(owner, name)] for owner, name in targets)
    kaizen_sdk.uninstrument(openai)


def test_double_instrument_one_trace(collector, client):
    kaizen_sdk.instrument(openai)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert len(collector.traces) == 1


def copy_outcome(action, value):
    try:
        action(value)
    except Exception as exc:  # noqa: BLE001 - the outcome itself is compared
        return type(exc)
    return None


def test_client_copies_as_unpatched(collector, client, stub):
    patched = {name: copy_outcome(action, client) for name, action in (("deepcopy", copy.deepcopy), ("pickle", pickle.dumps))}
    kaizen_sdk.uninstrument(openai)
    plain_client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    plain = {name: copy_outcome(action, plain_client) for name, action in (("deepcopy", copy.deepcopy), ("pickle", pickle.dumps))}
    assert patched == plain
    kaizen_sdk.instrument(openai)
    copied = client.copy()
    response = copied.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert response.ct_trace_id == collector.last["id"]


def test_unsupported_module_rejected():
    import json

    with pytest.raises(ValueError, match="cannot instrument"):
        kaizen_sdk.instrument(json)
    with pytest.raises(ValueError, match="cannot instrument"):
        kaizen_sdk.uninstrument(json)


def test_streaming_response_read_raw(collector, client):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    del response
    gc.collect()
    assert _tracer.drain_deferred()
    assert len(collector.traces) == 1
    assert collector.last["incomplete"] is True
    assert collector.last["error"] is None


def test_stream_copies_as_unpatched(collector, client, stub):
    operations = (("deepcopy", copy.deepcopy), ("pickle", pickle.dumps), ("copy", copy.copy))
    traced = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True)
    patched = {name: copy_outcome(action, traced) for name, action in operations}
    kaizen_sdk.uninstrument(openai)
    bare = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], stream=True)
    plain = {name: copy_outcome(action, bare) for name, action in operations}
    assert patched == plain
    assert isinstance(copy.copy(traced), openai.Stream)
    traced.close()
    bare.close()
