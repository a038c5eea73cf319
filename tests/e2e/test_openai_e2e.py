"""openai end to end: the real openai client, the stub LLM and a running CT server.

Each test makes a call, flushes the exporter and reads the trace back from the server by
the ``ct_trace_id`` the SDK attached (or ``kaizen_sdk.last_trace_id()``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid

import openai
import pytest
from pydantic import BaseModel
from stub_llm import count_tokens, reply_text

import kaizen_sdk
from kaizen_sdk import _exporter

# Prompts held by module variables: task detection names the traces after them.
E2E_SUMMARY_PROMPT = "Summarize this support ticket in one line: {ticket}"
E2E_LABEL_PROMPT = "Label the sentiment of this review: {review}"
E2E_IMAGE_PROMPT = "Describe what the attached picture shows"


class Invoice(BaseModel):
    number: str
    total: float


@pytest.fixture
def ct(kaizen_env):
    kaizen_sdk.instrument(openai)
    return kaizen_env


@pytest.fixture
def client(stub_llm):
    return openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def aclient(stub_llm):
    return openai.AsyncOpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)


def ticket() -> str:
    return f"printer {uuid.uuid4().hex[:8]} jams"


def landed(ct, trace_id: str, **expected) -> dict:
    assert kaizen_sdk.flush(timeout=10)
    trace = ct.wait_for_trace(trace_id)
    for name, value in expected.items():
        assert trace[name] == value, f"{name}: {trace[name]!r} != {value!r}"
    return trace


def test_plain_call_lands(ct, client):
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    trace = landed(
        ct,
        response.ct_trace_id,
        task="E2E_SUMMARY_PROMPT",
        model="gpt-4o-mini",
        prompt_text=prompt,
        response_text=reply_text(prompt),
        prompt_tokens=count_tokens(prompt),
        completion_tokens=count_tokens(reply_text(prompt)),
        error=None,
    )
    assert trace["messages"] == [{"role": "user", "content": prompt}]
    assert trace["total_tokens"] == response.usage.total_tokens
    assert trace["latency_ms"] > 0
    assert trace["source_variable"] == "E2E_SUMMARY_PROMPT"
    assert trace["source_file"].endswith("test_openai_e2e.py")
    assert trace["source_line"] > 0


def test_ct_score_and_client_score(ct, client):
    prompt = E2E_LABEL_PROMPT.format(review=ticket())
    first = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    first.ct_score(0.8)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    landed(ct, second.ct_trace_id)
    with kaizen_sdk.CTClient(api_key=ct.api_key, base_url=ct.base_url) as api:
        api.score(second.ct_trace_id, 0.25, scored_by="reviewer")

    assert kaizen_sdk.flush(timeout=10)
    scored = ct.wait_for_trace(first.ct_trace_id, predicate=lambda trace: trace["score"] is not None)
    assert scored["score"] == 0.8
    assert scored["scored_by"] == "sdk"
    by_client = ct.wait_for_trace(second.ct_trace_id, predicate=lambda trace: trace["score"] is not None)
    assert by_client["score"] == 0.25
    assert by_client["scored_by"] == "reviewer"


def test_no_key_warns_and_sends_nothing(kaizen_env, client, monkeypatch, caplog):
    monkeypatch.delenv("KAIZEN_API_KEY")
    _exporter.reset()
    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.instrument"):
        kaizen_sdk.instrument(openai)
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    assert response.choices[0].message.content == reply_text(prompt)
    assert "no Kaizen API key" in caplog.text
    assert kaizen_sdk.flush(timeout=5)
    assert kaizen_env.get_trace(response.ct_trace_id) is None


def test_task_map_and_ignore_unmapped(kaizen_env, client):
    kaizen_sdk.instrument(openai, task_map={"E2E_SUMMARY_PROMPT": "summaries"}, ignore_unmapped=True)
    mapped = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": E2E_SUMMARY_PROMPT.format(ticket=ticket())}]
    )
    unmapped = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": E2E_LABEL_PROMPT.format(review=ticket())}]
    )
    landed(kaizen_env, mapped.ct_trace_id, task="summaries")
    assert not hasattr(unmapped, "ct_trace_id")
    assert unmapped.choices[0].message.content


def test_instrument_twice_one_trace(ct, client):
    kaizen_sdk.instrument(openai)
    marker = ticket()
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": E2E_SUMMARY_PROMPT.format(ticket=marker)}]
    )
    landed(ct, response.ct_trace_id)
    same = [trace for trace in ct.list_traces(task="E2E_SUMMARY_PROMPT", limit=100) if marker in trace["prompt_text"]]
    assert len(same) == 1


def test_stream_lands_with_usage(ct, client):
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass
    trace = landed(ct, stream.ct_trace_id, response_text=reply_text(prompt), prompt_tokens=count_tokens(prompt))
    assert trace["total_tokens"] == count_tokens(prompt) + count_tokens(reply_text(prompt))


def test_stream_without_usage_unknown_tokens(ct, client):
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    with client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True) as stream:
        for _ in stream:
            pass
    landed(
        ct,
        stream.ct_trace_id,
        response_text=reply_text(prompt),
        prompt_tokens=None,
        completion_tokens=None,
        total_tokens=None,
        incomplete=False,
    )


def test_stream_broken_early_incomplete(ct, client):
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()
    trace = landed(ct, stream.ct_trace_id, response_text="Stub reply")
    assert trace["incomplete"] is True


def test_raw_and_streaming_response(ct, client):
    prompt = E2E_LABEL_PROMPT.format(review=ticket())
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    completion = raw.parse()
    landed(ct, completion.ct_trace_id, task="E2E_LABEL_PROMPT", response_text=reply_text(prompt))

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
    ) as response:
        for _ in response.parse():
            pass
    landed(ct, kaizen_sdk.last_trace_id(), task="E2E_LABEL_PROMPT", response_text=reply_text(prompt))


def test_structured_parse_lands(ct, client):
    prompt = E2E_LABEL_PROMPT.format(review=ticket())
    completion = client.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], response_format=Invoice
    )
    assert completion.choices[0].message.parsed == Invoice(number="stub", total=1.5)
    landed(ct, completion.ct_trace_id, task="E2E_LABEL_PROMPT", response_text='{"number": "stub", "total": 1.5}')


def test_responses_api_lands(ct, client):
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    response = client.responses.create(model="gpt-4o-mini", input=prompt)
    landed(ct, response.ct_trace_id, task="E2E_SUMMARY_PROMPT", response_text=response.output_text,
           total_tokens=response.usage.total_tokens)

    stream = client.responses.create(model="gpt-4o-mini", input=prompt, stream=True)
    for _ in stream:
        pass
    landed(ct, stream.ct_trace_id, task="E2E_SUMMARY_PROMPT", response_text=reply_text(prompt))


def test_choices_tools_and_images_land(ct, client):
    prompt = E2E_IMAGE_PROMPT
    image = base64.b64encode(b"\x89PNG" + bytes(20_000)).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
            ],
        },
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "zoom", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "zoomed in"},
    ]
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, n=2)
    trace = landed(ct, response.ct_trace_id, task="E2E_IMAGE_PROMPT")
    assert trace["messages"][0]["content"][1]["type"] == "image_ref"
    assert trace["messages"][0]["content"][1]["bytes"] == 20_004
    assert trace["messages"][2]["role"] == "tool"
    assert trace["response_text"] == reply_text(prompt)

    tools = [{"type": "function", "function": {"name": "zoom", "parameters": {"type": "object", "properties": {}}}}]
    called = client.chat.completions.create(model="gpt-4o-mini", messages=messages[:1], tools=tools)
    trace = landed(ct, called.ct_trace_id)
    assert trace["response_text"] is None
    assert trace["response"]["choices"][0]["tool_calls"][0]["function"]["name"] == "zoom"
    assert called.choices[0].message.tool_calls[0].function.name == "zoom"


def test_error_lands_and_propagates(ct, client):
    prompt = E2E_SUMMARY_PROMPT.format(ticket=ticket())
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="error-500", messages=[{"role": "user", "content": prompt}])
    trace = landed(ct, kaizen_sdk.last_trace_id(), task="E2E_SUMMARY_PROMPT", response_text=None)
    assert trace["error"].startswith("InternalServerError: ")


async def test_async_calls_land(ct, aclient):
    prompt = E2E_LABEL_PROMPT.format(review=ticket())
    response = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
    )
    async for _ in stream:
        pass
    await asyncio.to_thread(landed, ct, response.ct_trace_id, task="E2E_LABEL_PROMPT", response_text=reply_text(prompt))
    await asyncio.to_thread(landed, ct, stream.ct_trace_id, task="E2E_LABEL_PROMPT", response_text=reply_text(prompt))
