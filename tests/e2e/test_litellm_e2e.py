"""litellm end to end: the real litellm package, the stub LLM and a running CT server."""

from __future__ import annotations

import asyncio
import logging
import uuid

import litellm
import pytest
from stub_llm import count_tokens, reply_text

import kaizen_sdk
from kaizen_sdk import _exporter

E2E_ROUTE_PROMPT = "Route this customer email to a team: {email}"
E2E_REPLY_PROMPT = "Draft a polite reply to: {email}"


@pytest.fixture
def ct(kaizen_env):
    kaizen_sdk.instrument(litellm)
    return kaizen_env


@pytest.fixture
def connection(stub_llm):
    return {"api_base": stub_llm.base_url, "api_key": "sk-test"}


def email() -> str:
    return f"my order {uuid.uuid4().hex[:8]} never arrived"


def landed(ct, trace_id: str, **expected) -> dict:
    assert kaizen_sdk.flush(timeout=10)
    trace = ct.wait_for_trace(trace_id)
    for name, value in expected.items():
        assert trace[name] == value, f"{name}: {trace[name]!r} != {value!r}"
    return trace


def test_completion_lands(ct, connection):
    prompt = E2E_ROUTE_PROMPT.format(email=email())
    response = litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **connection)
    trace = landed(
        ct,
        response.ct_trace_id,
        task="E2E_ROUTE_PROMPT",
        library="litellm",
        model="gpt-4o-mini",
        prompt_text=prompt,
        response_text=reply_text(prompt),
        prompt_tokens=count_tokens(prompt),
        completion_tokens=count_tokens(reply_text(prompt)),
        error=None,
    )
    assert trace["latency_ms"] > 0
    assert trace["source_file"].endswith("test_litellm_e2e.py")


def test_scores_land(ct, connection):
    prompt = E2E_REPLY_PROMPT.format(email=email())
    response = litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **connection)
    response.ct_score(0.6)
    assert kaizen_sdk.flush(timeout=10)
    trace = ct.wait_for_trace(response.ct_trace_id, predicate=lambda item: item["score"] is not None)
    assert trace["score"] == 0.6
    with kaizen_sdk.CTClient(api_key=ct.api_key, base_url=ct.base_url) as api:
        api.score(response.ct_trace_id, 0.1, scored_by="qa")
    trace = ct.wait_for_trace(response.ct_trace_id, predicate=lambda item: item["scored_by"] == "qa")
    assert trace["score"] == 0.1


def test_no_key_call_unaffected(kaizen_env, connection, monkeypatch, caplog):
    monkeypatch.delenv("KAIZEN_API_KEY")
    _exporter.reset()
    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.instrument"):
        kaizen_sdk.instrument(litellm)
    prompt = E2E_ROUTE_PROMPT.format(email=email())
    response = litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **connection)
    assert response.choices[0].message.content == reply_text(prompt)
    assert "no Kaizen API key" in caplog.text
    assert kaizen_env.get_trace(response.ct_trace_id) is None


def test_task_map_and_ignore_unmapped(kaizen_env, connection):
    kaizen_sdk.instrument(litellm, task_map={"E2E_ROUTE_PROMPT": "routing"}, ignore_unmapped=True)
    mapped = litellm.completion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": E2E_ROUTE_PROMPT.format(email=email())}], **connection
    )
    unmapped = litellm.completion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": E2E_REPLY_PROMPT.format(email=email())}], **connection
    )
    landed(kaizen_env, mapped.ct_trace_id, task="routing")
    assert not hasattr(unmapped, "ct_trace_id")


def test_instrument_twice_one_trace(ct, connection):
    kaizen_sdk.instrument(litellm)
    marker = email()
    response = litellm.completion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": E2E_ROUTE_PROMPT.format(email=marker)}], **connection
    )
    landed(ct, response.ct_trace_id)
    same = [trace for trace in ct.list_traces(task="E2E_ROUTE_PROMPT", limit=100) if marker in trace["prompt_text"]]
    assert len(same) == 1


def test_stream_lands(ct, connection):
    prompt = E2E_REPLY_PROMPT.format(email=email())
    stream = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
        **connection,
    )
    for _ in stream:
        pass
    landed(ct, stream.ct_trace_id, task="E2E_REPLY_PROMPT", response_text=reply_text(prompt),
           total_tokens=count_tokens(prompt) + count_tokens(reply_text(prompt)), incomplete=False)


def test_from_import_after_instrument(ct, connection):
    from litellm import completion

    prompt = E2E_ROUTE_PROMPT.format(email=email())
    response = completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **connection)
    landed(ct, response.ct_trace_id, task="E2E_ROUTE_PROMPT")


def test_tool_calls_land(ct, connection):
    tools = [{"type": "function", "function": {"name": "refund", "parameters": {"type": "object", "properties": {}}}}]
    prompt = E2E_ROUTE_PROMPT.format(email=email())
    response = litellm.completion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], tools=tools, **connection
    )
    trace = landed(ct, response.ct_trace_id, response_text=None)
    assert trace["response"]["choices"][0]["tool_calls"][0]["function"]["name"] == "refund"


def test_error_lands(ct, connection):
    prompt = E2E_ROUTE_PROMPT.format(email=email())
    with pytest.raises(litellm.exceptions.RateLimitError):
        litellm.completion(
            model="openai/error-429", messages=[{"role": "user", "content": prompt}], num_retries=0, max_retries=0, **connection
        )
    trace = landed(ct, kaizen_sdk.last_trace_id(), task="E2E_ROUTE_PROMPT")
    assert trace["error"].startswith("RateLimitError: ")


async def test_acompletion_lands(ct, connection):
    prompt = E2E_REPLY_PROMPT.format(email=email())
    response = await litellm.acompletion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **connection)
    stream = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True, **connection
    )
    async for _ in stream:
        pass
    await asyncio.to_thread(landed, ct, response.ct_trace_id, task="E2E_REPLY_PROMPT", response_text=reply_text(prompt))
    await asyncio.to_thread(landed, ct, stream.ct_trace_id, task="E2E_REPLY_PROMPT", response_text=reply_text(prompt))
