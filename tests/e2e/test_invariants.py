"""Invariants across integrations, end to end through a running CT server.

- One user-level call gives one trace, whatever is instrumented and in whatever order.
- Exceptions propagate as the same object, and instrumenting is thread-safe.
- Concurrent async and threaded calls each get their own trace with the right task.
- A sync call inside a running event loop blocks the loop only for the call itself.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid

import langchain_core
import litellm
import openai
import pytest
from langchain_openai import ChatOpenAI
from stub_llm import reply_text

import kaizen_sdk
from kaizen_sdk import _exporter, _tracer

INV_ROUTE_PROMPT = "Which team handles this request: {request}"
INV_SHORT_PROMPT = "Answer in one word: {question}"

LIBRARIES = {"openai": openai, "litellm": litellm, "langchain_core": langchain_core}


def marker() -> str:
    return uuid.uuid4().hex[:12]


def traces_with(ct, text: str, task: str) -> list[dict]:
    assert kaizen_sdk.flush(timeout=10)
    return [trace for trace in ct.list_traces(task=task, limit=200) if text in (trace["prompt_text"] or "")]


@pytest.mark.parametrize("order", list(itertools.permutations(LIBRARIES)), ids="-".join)
def test_one_trace_per_call_any_order(kaizen_env, stub_llm, order):
    for name in order:
        kaizen_sdk.instrument(LIBRARIES[name])
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    chat = ChatOpenAI(model="gpt-4o-mini", base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)

    via_openai, via_litellm, via_langchain = marker(), marker(), marker()
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": INV_ROUTE_PROMPT.format(request=via_openai)}]
    )
    litellm.completion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": INV_ROUTE_PROMPT.format(request=via_litellm)}],
        api_base=stub_llm.base_url,
        api_key="sk-test",
    )
    chat.invoke(INV_ROUTE_PROMPT.format(request=via_langchain))

    for text, library in ((via_openai, "openai"), (via_litellm, "litellm"), (via_langchain, "langchain")):
        found = traces_with(kaizen_env, text, "INV_ROUTE_PROMPT")
        assert [trace["library"] for trace in found] == [library], f"{library} call in order {order}"


def test_exception_is_same_object(kaizen_env, stub_llm):
    failure = ConnectionAbortedError("provider went away")

    def broken_post(*args, **kwargs):
        raise failure

    kaizen_sdk.instrument(openai)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    # Each resource binds the client's post() in its constructor; replace that binding.
    client.chat.completions._post = broken_post
    with pytest.raises(ConnectionAbortedError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": INV_SHORT_PROMPT}])
    assert caught.value is failure
    innermost = caught.value.__traceback__
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    assert innermost.tb_frame.f_code is broken_post.__code__

    assert kaizen_sdk.flush(timeout=10)
    trace = kaizen_env.wait_for_trace(kaizen_sdk.last_trace_id())
    assert trace["error"] == "ConnectionAbortedError: provider went away"


def test_concurrent_instrument_patches_once(kaizen_env, stub_llm):
    barrier = threading.Barrier(8)

    def instrument_all():
        barrier.wait()
        kaizen_sdk.instrument(openai)
        kaizen_sdk.instrument(litellm)

    threads = [threading.Thread(target=instrument_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    text = marker()
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": INV_ROUTE_PROMPT.format(request=text)}]
    )
    assert len(traces_with(kaizen_env, text, "INV_ROUTE_PROMPT")) == 1


def test_uninstrument_then_instrument_again(kaizen_env, stub_llm):
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    kaizen_sdk.instrument(openai)
    kaizen_sdk.uninstrument(openai)
    untraced = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": INV_SHORT_PROMPT}])
    assert not hasattr(untraced, "ct_trace_id")
    kaizen_sdk.instrument(openai)
    traced = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": INV_SHORT_PROMPT}])
    assert kaizen_sdk.flush(timeout=10)
    assert kaizen_env.wait_for_trace(traced.ct_trace_id)["task"] == "INV_SHORT_PROMPT"


async def test_fifty_async_calls(kaizen_env, stub_llm):
    kaizen_sdk.instrument(openai)
    kaizen_sdk.instrument(litellm)
    client = openai.AsyncOpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)

    def call(index: int):
        if index % 2:
            prompt = INV_ROUTE_PROMPT.format(request=f"async {index}")
            return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        prompt = INV_SHORT_PROMPT.format(question=f"async {index}")
        return litellm.acompletion(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], api_base=stub_llm.base_url, api_key="sk-test"
        )

    results = await asyncio.gather(*(call(index) for index in range(50)))
    assert len({result.ct_trace_id for result in results}) == 50
    assert await asyncio.to_thread(kaizen_sdk.flush, 10)
    for index, result in enumerate(results):
        trace = await asyncio.to_thread(kaizen_env.wait_for_trace, result.ct_trace_id)
        assert trace["task"] == ("INV_ROUTE_PROMPT" if index % 2 else "INV_SHORT_PROMPT")
        assert f"async {index}" in trace["prompt_text"]
        assert trace["response_text"] == result.choices[0].message.content


def test_eight_threads_of_sync_calls(kaizen_env, stub_llm):
    kaizen_sdk.instrument(openai)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    calls_per_thread = 5
    made: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def worker(number: int):
        for call in range(calls_per_thread):
            if number % 2:
                prompt, task = INV_ROUTE_PROMPT.format(request=f"thread {number}.{call}"), "INV_ROUTE_PROMPT"
            else:
                prompt, task = INV_SHORT_PROMPT.format(question=f"thread {number}.{call}"), "INV_SHORT_PROMPT"
            response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
            assert kaizen_sdk.last_trace_id() == response.ct_trace_id
            with lock:
                made.append((response.ct_trace_id, task, prompt))

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(made) == 8 * calls_per_thread
    assert kaizen_sdk.flush(timeout=10)
    for trace_id, task, prompt in made:
        trace = kaizen_env.wait_for_trace(trace_id)
        assert trace["task"] == task
        assert trace["prompt_text"] == prompt
        assert trace["response_text"] == reply_text(prompt)


async def test_sync_call_in_event_loop_blocks_only_itself(kaizen_env, stub_llm):
    kaizen_sdk.instrument(openai)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    client.chat.completions.create(model="delay-100", messages=[{"role": "user", "content": INV_SHORT_PROMPT}])
    call_seconds = time.perf_counter() - started
    await asyncio.sleep(0.1)
    stop.set()
    await task

    assert call_seconds >= 0.1
    # The maximum stall of the loop is the call itself plus scheduling noise.
    assert max(gaps) < call_seconds + 0.05


async def test_async_latency_covers_awaited_time(kaizen_env, stub_llm):
    kaizen_sdk.instrument(openai)
    client = openai.AsyncOpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    response = await client.chat.completions.create(model="delay-120", messages=[{"role": "user", "content": INV_SHORT_PROMPT}])
    assert await asyncio.to_thread(kaizen_sdk.flush, 10)
    trace = await asyncio.to_thread(kaizen_env.wait_for_trace, response.ct_trace_id)
    assert trace["latency_ms"] >= 120


def test_tracing_failure_never_reaches_user(kaizen_env, stub_llm, monkeypatch):
    kaizen_sdk.instrument(openai)
    kaizen_sdk.instrument(litellm)
    def broken_enqueue(trace, scores):
        raise RuntimeError("queue bug")

    monkeypatch.setattr(_tracer, "_enqueue", broken_enqueue)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    prompt = INV_SHORT_PROMPT.format(question="still works?")
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    assert response.choices[0].message.content == reply_text(prompt)
    stream = litellm.completion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True,
        api_base=stub_llm.base_url, api_key="sk-test",
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == reply_text(prompt)
    assert _exporter.get_exporter() is not None
