"""LangChain end to end: the real langchain-openai models, the stub LLM, a running CT server.

Each test makes calls through ``ChatOpenAI`` (chat) or ``OpenAI`` (text completions) at the
stub, flushes the exporter and reads the trace back from the CT server by its id. The
openai client that langchain-openai calls underneath is instrumented too, so every test
also checks that one LangChain call gives exactly one trace.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("langchain_openai")

import langchain  # noqa: E402
import langchain_core  # noqa: E402
import openai  # noqa: E402
from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI, OpenAI  # noqa: E402
from stub_llm import count_tokens, reply_text  # noqa: E402

import kaizen_sdk  # noqa: E402

# Prompts held by module variables: task detection names the traces after them.
LC_SUMMARIZE_PROMPT = "Summarize this support ticket in one line: {ticket}"
LC_TRIAGE_TEMPLATE = ChatPromptTemplate.from_messages(
    [("system", "You triage support tickets."), ("human", "Which team owns this ticket? {ticket}")]
)
LC_COMPLETE_PROMPT = "Complete the sentence: {start}"


@tool
def get_weather(input: str) -> str:  # noqa: A002 - the stub LLM names every tool argument "input"
    """Return the current weather in a city."""
    return f"12 C and windy in {input}"


def _nonce() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def ct(kaizen_env):
    """Instrument openai and langchain, as an application using both would."""
    kaizen_sdk.instrument(openai)
    kaizen_sdk.instrument(langchain_core)
    return kaizen_env


def _chat_model(stub_llm, model: str = "gpt-4o-mini", **options) -> ChatOpenAI:
    # langchain-openai caches one async HTTP client per base URL for the whole process,
    # bound to the event loop that first used it; each test runs its own loop.
    return ChatOpenAI(
        model=model,
        base_url=stub_llm.base_url,
        api_key="sk-test",
        max_retries=0,
        http_async_client=openai.DefaultAsyncHttpxClient(),
        **options,
    )


@pytest.fixture
def chat(stub_llm):
    return _chat_model(stub_llm)


def _traces_with(ct, marker: str) -> list[dict]:
    """Return every trace on the server whose prompt contains ``marker``."""
    assert kaizen_sdk.flush(timeout=10)
    return [trace for trace in ct.list_traces(limit=200) if marker in (trace.get("prompt_text") or "")]


def _fetch(ct, trace_id: str) -> dict:
    assert kaizen_sdk.flush(timeout=10)
    return ct.wait_for_trace(trace_id)


def test_invoke_lands_named(ct, chat):
    ticket = f"printer on fire {_nonce()}"
    prompt = LC_SUMMARIZE_PROMPT.format(ticket=ticket)

    message = chat.invoke(prompt)

    trace = _fetch(ct, message.ct_trace_id)
    assert trace["task"] == "LC_SUMMARIZE_PROMPT"
    assert trace["messages"] == [{"role": "user", "content": prompt}]
    assert trace["response_text"] == message.content == reply_text(prompt)
    assert trace["model"] == "gpt-4o-mini"
    assert trace["prompt_tokens"] == count_tokens(prompt)
    assert trace["completion_tokens"] == count_tokens(reply_text(prompt))
    assert trace["total_tokens"] == trace["prompt_tokens"] + trace["completion_tokens"]
    assert trace["latency_ms"] > 0
    assert trace["source_variable"] == "LC_SUMMARIZE_PROMPT"
    assert trace["source_file"].endswith("test_langchain.py")
    assert len(_traces_with(ct, ticket)) == 1


def test_task_map_renames(kaizen_env, chat):
    kaizen_sdk.instrument(langchain, task_map={"LC_SUMMARIZE_PROMPT": "ticket-summaries"})

    message = chat.invoke(LC_SUMMARIZE_PROMPT.format(ticket=f"mapped {_nonce()}"))

    trace = _fetch(kaizen_env, message.ct_trace_id)
    assert trace["task"] == "ticket-summaries"
    assert trace["source_variable"] == "LC_SUMMARIZE_PROMPT"


def test_ignore_unmapped_drops_call(kaizen_env, chat):
    kaizen_sdk.instrument(langchain, task_map={"SOME_OTHER_PROMPT": "other"}, ignore_unmapped=True)
    ticket = f"unmapped {_nonce()}"

    message = chat.invoke(LC_SUMMARIZE_PROMPT.format(ticket=ticket))

    assert message.content == reply_text(LC_SUMMARIZE_PROMPT.format(ticket=ticket))
    assert not hasattr(message, "ct_trace_id")
    assert _traces_with(kaizen_env, ticket) == []


def test_concurrent_calls_keep_tasks(ct, chat):
    marker = _nonce()

    async def summarize(index: int):
        return await chat.ainvoke(LC_SUMMARIZE_PROMPT.format(ticket=f"{marker} async {index}"))

    async def run_all():
        return await asyncio.gather(*(summarize(index) for index in range(50)))

    def complete(index: int):
        return chat.invoke(LC_COMPLETE_PROMPT.format(start=f"{marker} thread {index}"))

    messages = asyncio.run(run_all())
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(complete, range(8)))

    traces = {trace["id"]: trace for trace in _traces_with(ct, marker)}
    assert len(traces) == 58
    for index, message in enumerate(messages):
        assert traces[message.ct_trace_id]["task"] == "LC_SUMMARIZE_PROMPT"
        assert f"{marker} async {index}" in traces[message.ct_trace_id]["prompt_text"]
    for index, message in enumerate(threaded):
        assert traces[message.ct_trace_id]["task"] == "LC_COMPLETE_PROMPT"
        assert f"{marker} thread {index}" in traces[message.ct_trace_id]["prompt_text"]


def test_ct_score_lands(ct, chat):
    message = chat.invoke(f"Rate me {_nonce()}")

    message.ct_score(0.75, scored_by="e2e")

    assert kaizen_sdk.flush(timeout=10)
    trace = ct.wait_for_trace(message.ct_trace_id, predicate=lambda t: t.get("score") is not None)
    assert trace["score"] == 0.75
    assert trace["scored_by"] == "e2e"


async def test_ainvoke_lands_named(ct, chat):
    ticket = f"async ticket {_nonce()}"

    message = await chat.ainvoke(LC_SUMMARIZE_PROMPT.format(ticket=ticket))

    trace = _fetch(ct, message.ct_trace_id)
    assert trace["task"] == "LC_SUMMARIZE_PROMPT"
    assert trace["response_text"] == message.content
    assert trace["total_tokens"] is not None
    assert len(_traces_with(ct, ticket)) == 1


def test_stream_one_trace(ct, chat):
    ticket = f"streamed ticket {_nonce()}"
    prompt = LC_SUMMARIZE_PROMPT.format(ticket=ticket)

    chunks = list(chat.stream(prompt))

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert len(chunks) > 2
    assert trace["response_text"] == "".join(chunk.content for chunk in chunks) == reply_text(prompt)
    assert trace["task"] == "LC_SUMMARIZE_PROMPT"
    assert trace["incomplete"] is False
    # ChatOpenAI with a custom base_url does not ask for usage in streams: unknown, not 0.
    assert trace["total_tokens"] is None
    assert len(_traces_with(ct, ticket)) == 1


def test_stream_usage_tokens(ct, stub_llm):
    chat = _chat_model(stub_llm, stream_usage=True)
    prompt = f"Count my words {_nonce()}"

    list(chat.stream(prompt))

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert trace["prompt_tokens"] == count_tokens(prompt)
    assert trace["completion_tokens"] == count_tokens(reply_text(prompt))


def test_stream_closed_early_incomplete(ct, chat):
    prompt = f"one two three four five six {_nonce()}"

    stream = chat.stream(prompt)
    first = next(stream)
    stream.close()

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert trace["incomplete"] is True
    assert trace["response_text"] == first.content


async def test_astream_one_trace(ct, chat):
    ticket = f"astreamed ticket {_nonce()}"

    chunks = [chunk async for chunk in chat.astream(LC_SUMMARIZE_PROMPT.format(ticket=ticket))]

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert trace["response_text"] == "".join(chunk.content for chunk in chunks)
    assert trace["task"] == "LC_SUMMARIZE_PROMPT"
    assert len(_traces_with(ct, ticket)) == 1


def test_batch_one_trace_each(ct, chat):
    marker = _nonce()
    prompts = [LC_SUMMARIZE_PROMPT.format(ticket=f"batch {marker} {index}") for index in range(3)]

    messages = chat.batch(prompts)

    traces = [_fetch(ct, message.ct_trace_id) for message in messages]
    assert [trace["response_text"] for trace in traces] == [message.content for message in messages]
    assert {trace["task"] for trace in traces} == {"LC_SUMMARIZE_PROMPT"}
    assert len(_traces_with(ct, marker)) == 3


async def test_abatch_one_trace_each(ct, chat):
    marker = _nonce()
    prompts = [LC_SUMMARIZE_PROMPT.format(ticket=f"abatch {marker} {index}") for index in range(3)]

    messages = await chat.abatch(prompts)

    traces = [_fetch(ct, message.ct_trace_id) for message in messages]
    assert {trace["task"] for trace in traces} == {"LC_SUMMARIZE_PROMPT"}
    assert len(_traces_with(ct, marker)) == 3


def test_prompt_model_chain(ct, chat):
    ticket = f"chained ticket {_nonce()}"
    chain = LC_TRIAGE_TEMPLATE | chat

    message = chain.invoke({"ticket": ticket})

    trace = _fetch(ct, message.ct_trace_id)
    assert trace["task"] == "LC_TRIAGE_TEMPLATE"
    assert trace["messages"] == [
        {"role": "system", "content": "You triage support tickets."},
        {"role": "user", "content": f"Which team owns this ticket? {ticket}"},
    ]
    assert trace["response_text"] == message.content
    assert len(_traces_with(ct, ticket)) == 1


def test_chain_with_parser_last_trace_id(ct, chat):
    ticket = f"parsed ticket {_nonce()}"
    chain = LC_TRIAGE_TEMPLATE | chat | StrOutputParser()

    text = chain.invoke({"ticket": ticket})

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert trace["response_text"] == text
    assert trace["task"] == "LC_TRIAGE_TEMPLATE"


async def test_prompt_model_chain_async(ct, chat):
    ticket = f"async chained ticket {_nonce()}"
    chain = LC_TRIAGE_TEMPLATE | chat

    message = await chain.ainvoke({"ticket": ticket})

    trace = _fetch(ct, message.ct_trace_id)
    assert trace["response_text"] == message.content
    assert len(_traces_with(ct, ticket)) == 1


def _failure_of(model: ChatOpenAI, prompt: str) -> BaseException:
    try:
        model.invoke(prompt)
    except Exception as exc:  # noqa: BLE001 - the test compares what LangChain raises
        return exc
    raise AssertionError("the call to the error-500 model did not raise")


def test_error_propagates_and_is_recorded(kaizen_env, stub_llm):
    failing = _chat_model(stub_llm, model="error-500")
    prompt = f"This call fails {_nonce()}"
    plain = _failure_of(failing, prompt)
    kaizen_sdk.instrument(openai)
    kaizen_sdk.instrument(langchain_core)

    traced = _failure_of(failing, prompt)

    assert type(traced) is type(plain)
    assert str(traced) == str(plain)
    assert type(traced.__cause__) is type(plain.__cause__)
    trace = _fetch(kaizen_env, kaizen_sdk.last_trace_id())
    assert trace["error"] == f"{type(plain).__name__}: {plain}"
    assert trace["response_text"] is None
    assert len(_traces_with(kaizen_env, prompt)) == 1


def test_tool_call_round_trip(ct, chat):
    city = f"Oslo{_nonce()}"
    with_tools = chat.bind_tools([get_weather])
    question = HumanMessage(f"What is the weather in {city}?")

    call_message = with_tools.invoke([question])
    tool_call = call_message.tool_calls[0]
    result = ToolMessage(get_weather.invoke(tool_call["args"]), tool_call_id=tool_call["id"])
    final = with_tools.invoke([question, call_message, result])

    first = _fetch(ct, call_message.ct_trace_id)
    assert tool_call["name"] == "get_weather"
    assert first["response"]["choices"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert first["parameters"]["tools"] == ["get_weather"]
    second = _fetch(ct, final.ct_trace_id)
    assert [message["role"] for message in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][1]["tool_calls"][0]["id"] == tool_call["id"]
    assert second["messages"][2]["tool_call_id"] == tool_call["id"]
    assert second["response_text"] == final.content


def test_text_llm_invoke_and_stream(ct, stub_llm):
    llm = OpenAI(model="gpt-3.5-turbo-instruct", base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    prompt = LC_COMPLETE_PROMPT.format(start=f"The sky {_nonce()}")

    text = llm.invoke(prompt)
    invoked = _fetch(ct, kaizen_sdk.last_trace_id())
    pieces = list(llm.stream(prompt))
    streamed = _fetch(ct, kaizen_sdk.last_trace_id())

    assert text == reply_text(prompt)
    assert invoked["response_text"] == text
    assert invoked["task"] == "LC_COMPLETE_PROMPT"
    assert invoked["messages"] == [{"role": "user", "content": prompt}]
    assert invoked["prompt_tokens"] == count_tokens(prompt)
    assert streamed["id"] != invoked["id"]
    assert streamed["response_text"] == "".join(pieces) == text
    assert len(_traces_with(ct, prompt)) == 2


def test_generate_one_trace_per_list(ct, chat):
    marker = _nonce()

    result = chat.generate([[HumanMessage(f"first {marker}")], [HumanMessage(f"second {marker}")]])

    messages = [generations[0].message for generations in result.generations]
    traces = [_fetch(ct, message.ct_trace_id) for message in messages]
    assert [trace["response_text"] for trace in traces] == [message.content for message in messages]
    assert len(_traces_with(ct, marker)) == 2


def test_batch_as_completed_one_trace_each(ct, chat):
    marker = _nonce()
    prompts = [LC_SUMMARIZE_PROMPT.format(ticket=f"as completed {marker} {index}") for index in range(2)]

    results = dict(chat.batch_as_completed(prompts))

    traces = [_fetch(ct, results[index].ct_trace_id) for index in range(2)]
    assert {trace["task"] for trace in traces} == {"LC_SUMMARIZE_PROMPT"}
    assert len(_traces_with(ct, marker)) == 2


def test_structured_output_last_trace_id(ct, chat):
    schema = {"title": "Ticket", "type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"]}
    prompt = f"Route this ticket {_nonce()}"

    result = chat.with_structured_output(schema).invoke(prompt)

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert isinstance(result, dict)
    assert trace["messages"][-1]["content"] == prompt
    assert len(_traces_with(ct, prompt)) == 1


async def test_astream_events_chunks_carry_trace_id(ct, chat):
    prompt = f"Events please {_nonce()}"
    trace_ids = set()

    async for event in chat.astream_events(prompt, version="v2"):
        if event["event"] == "on_chat_model_stream":
            trace_ids.add(event["data"]["chunk"].ct_trace_id)

    assert len(trace_ids) == 1
    trace = _fetch(ct, trace_ids.pop())
    assert trace["response_text"] == reply_text(prompt)
    assert len(_traces_with(ct, prompt)) == 1


@pytest.mark.skipif(not hasattr(ChatOpenAI, "_iter_v2_events"), reason="this langchain-core has no protocol event streams")
def test_stream_events_v3_one_trace(ct, chat):
    prompt = f"Protocol events {_nonce()}"

    events = list(chat.stream_events(prompt, version="v3"))

    trace = _fetch(ct, kaizen_sdk.last_trace_id())
    assert events
    assert trace["library"] == "langchain"
    assert trace["response_text"] == reply_text(prompt)
    assert trace["incomplete"] is False
    assert len(_traces_with(ct, prompt)) == 1


async def test_text_llm_async_and_batch(ct, stub_llm):
    llm = OpenAI(
        model="gpt-3.5-turbo-instruct",
        base_url=stub_llm.base_url,
        api_key="sk-test",
        max_retries=0,
        http_async_client=openai.DefaultAsyncHttpxClient(),
    )
    marker = _nonce()
    prompts = [LC_COMPLETE_PROMPT.format(start=f"batch {marker} {index}") for index in range(2)]

    text = await llm.ainvoke(LC_COMPLETE_PROMPT.format(start=f"async {marker}"))
    invoked = _fetch(ct, kaizen_sdk.last_trace_id())
    pieces = [piece async for piece in llm.astream(LC_COMPLETE_PROMPT.format(start=f"astream {marker}"))]
    streamed = _fetch(ct, kaizen_sdk.last_trace_id())
    texts = llm.batch(prompts)

    assert invoked["response_text"] == text
    assert invoked["task"] == "LC_COMPLETE_PROMPT"
    assert streamed["response_text"] == "".join(pieces)
    batched = [trace for trace in _traces_with(ct, f"batch {marker}")]
    assert sorted(trace["response_text"] for trace in batched) == sorted(texts)
    assert all(trace["total_tokens"] is None for trace in batched)
    assert {trace["task"] for trace in batched} == {"LC_COMPLETE_PROMPT"}


@pytest.mark.parametrize("order", ["langchain_first", "openai_first"])
def test_one_trace_any_instrument_order(kaizen_env, stub_llm, order):
    modules = [langchain, openai] if order == "langchain_first" else [openai, langchain]
    for module in modules:
        kaizen_sdk.instrument(module)
    chat = _chat_model(stub_llm)
    marker = _nonce()

    chat.invoke(f"Order {order} {marker}")
    asyncio.run(chat.ainvoke(f"Async order {order} {marker}"))

    traces = _traces_with(kaizen_env, marker)
    assert len(traces) == 2
    assert {trace["library"] for trace in traces} == {"langchain"}
