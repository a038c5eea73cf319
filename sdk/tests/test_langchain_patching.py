"""The LangChain integration on small in-process models: spans, detection, patching.

The models below subclass langchain-core's real ``BaseChatModel`` and ``BaseLLM``, so every
LangChain code path (invoke, ainvoke's executor fallback, stream's invoke fallback, batch's
thread pool, agenerate's tasks) is the library's own. Traces are captured where the span
hands them to the exporter.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle
import sys
import threading
from typing import Any, Iterator

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.load import dumpd  # noqa: E402
from langchain_core.language_models.llms import LLM, BaseLLM  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult, Generation  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

from kaizen_sdk import _result, _tracer  # noqa: E402
from kaizen_sdk.integrations import langchain as lc_integration  # noqa: E402
from kaizen_sdk.integrations.langchain import _callsite  # noqa: E402

USAGE = {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}


class EchoChat(BaseChatModel):
    """Replies "echo: <last message>" in one piece, or word by word when streamed."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        message = AIMessage(f"echo: {messages[-1].text}", usage_metadata=USAGE, response_metadata={"model_name": "echo-1"})
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": "echo-1"})

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        words = f"echo: {messages[-1].text}".split(" ")
        for index, word in enumerate(words):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word if index == 0 else " " + word))
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=USAGE, response_metadata={"model_name": "echo-1"}))


class PlainChat(BaseChatModel):
    """Implements only ``_generate``: LangChain's fallbacks run for stream and ainvoke."""

    @property
    def _llm_type(self) -> str:
        return "plain"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("plain"))])


class NoRunManagerChat(BaseChatModel):
    """A ``_generate`` without ``run_manager``: LangChain reads the signature to call it."""

    @property
    def _llm_type(self) -> str:
        return "no-run-manager"

    def _generate(self, messages, stop=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("bare"))])


class FailingChat(BaseChatModel):
    error: Any = None

    @property
    def _llm_type(self) -> str:
        return "failing"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        raise self.error


class FreshErrorChat(BaseChatModel):
    """Raises a new exception each call: re-raising one instance would grow its traceback."""

    @property
    def _llm_type(self) -> str:
        return "fresh-error"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        raise RuntimeError("down")


class NestingChat(BaseChatModel):
    """Calls another instrumented model inside, as ChatOpenAI calls the openai client."""

    @property
    def _llm_type(self) -> str:
        return "nesting"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        inner = EchoChat().invoke(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(inner.content))])


class EchoLLM(LLM):
    @property
    def _llm_type(self) -> str:
        return "echo-llm"

    def _call(self, prompt, stop=None, run_manager=None, **kwargs) -> str:
        return f"said {prompt}"


class UsageLLM(BaseLLM):
    @property
    def _llm_type(self) -> str:
        return "usage-llm"

    def _generate(self, prompts, stop=None, run_manager=None, **kwargs) -> LLMResult:
        return LLMResult(
            generations=[[Generation(text=f"done {prompt}")] for prompt in prompts],
            llm_output={"token_usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}, "model_name": "usage-1"},
        )


class FakeDetection:
    def __init__(self, task: str) -> None:
        self.task = task
        self.rule = "function"
        self.variable = None
        self.file = None
        self.line = None
        self.inputs = None
        self.template = None


def _detect_calling_test(messages, caller=None):
    """Name the task after the innermost test function on the stack, as detection would."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_name
        if frame.f_code.co_filename == __file__ and (name.startswith("test_") or name == "summarize"):
            return FakeDetection(frame.f_code.co_name)
        frame = frame.f_back
    return FakeDetection("no-user-frame")


@pytest.fixture
def traces(monkeypatch):
    captured: list[dict] = []
    monkeypatch.setattr(_tracer, "_enqueue", lambda ended, scores: captured.append(ended.to_trace()))
    monkeypatch.setattr(_tracer, "_detect", _detect_calling_test)
    monkeypatch.setattr(_callsite, "_detect", _detect_calling_test)
    monkeypatch.setattr(_tracer, "_apply_task_map", lambda detection, options: None if options.ignore_unmapped else detection.task)
    lc_integration.install(lambda: _tracer.InstrumentOptions())
    yield captured
    lc_integration.uninstall()


def test_invoke_one_trace(traces):
    message = EchoChat().invoke("hello there")

    assert len(traces) == 1
    trace = traces[0]
    assert trace["library"] == "langchain"
    assert trace["messages"] == [{"role": "user", "content": "hello there"}]
    assert trace["response_text"] == "echo: hello there"
    assert trace["model"] == "echo-1"
    assert (trace["prompt_tokens"], trace["completion_tokens"], trace["total_tokens"]) == (7, 2, 9)
    assert trace["task"] == "test_invoke_one_trace"
    assert trace["latency_ms"] > 0
    assert message.ct_trace_id == trace["id"]
    assert _tracer.last_trace_id() == trace["id"]


def test_invoke_records_parameters(traces):
    EchoChat().invoke("x", stop=["END"], temperature=0.4)

    assert traces[0]["parameters"]["stop"] == ["END"]
    assert traces[0]["parameters"]["temperature"] == 0.4


def test_returned_message_unchanged(traces):
    message = EchoChat().invoke("hi")
    plain = AIMessage(**message.model_dump())

    assert message == plain
    assert message.model_dump() == plain.model_dump()
    assert message.model_dump_json() == plain.model_dump_json()
    assert pickle.loads(pickle.dumps(message)) == plain
    assert copy.deepcopy(message) == plain
    assert dumpd(message) == dumpd(plain)
    assert message.model_copy() == plain


async def test_ainvoke_detects_on_caller_task(traces):
    message = await EchoChat().ainvoke("async hi")

    assert len(traces) == 1
    assert traces[0]["task"] == "test_ainvoke_detects_on_caller_task"
    assert message.ct_trace_id == traces[0]["id"]
    assert _tracer.last_trace_id() == traces[0]["id"]


async def test_ainvoke_executor_fallback(traces):
    message = await PlainChat().ainvoke("run in a thread")

    assert message.content == "plain"
    assert len(traces) == 1
    assert traces[0]["task"] == "test_ainvoke_executor_fallback"


def test_stream_one_trace(traces):
    chunks = list(EchoChat().stream("stream me"))

    assert len(chunks) > 2
    assert len(traces) == 1
    trace = traces[0]
    assert trace["response_text"] == "echo: stream me"
    assert trace["total_tokens"] == 9
    assert trace["model"] == "echo-1"
    assert trace["incomplete"] is False
    assert trace["task"] == "test_stream_one_trace"
    assert _tracer.last_trace_id() == trace["id"]


def test_generate_without_run_manager(traces):
    message = NoRunManagerChat().invoke("x")

    assert message.content == "bare"
    assert len(traces) == 1


def test_stream_chunks_carry_trace_id(traces):
    chunks = list(EchoChat().stream("tagged chunks"))

    assert {chunk.ct_trace_id for chunk in chunks} == {traces[0]["id"]}
    assert chunks[0].model_dump() == AIMessageChunk(**chunks[0].model_dump()).model_dump()


def test_stream_falls_back_to_invoke(traces):
    chunks = list(PlainChat().stream("no streaming here"))

    assert [chunk.content for chunk in chunks] == ["plain"]
    assert len(traces) == 1
    assert traces[0]["response_text"] == "plain"


def test_stream_broken_early_is_incomplete(traces):
    for chunk in EchoChat().stream("one two three four"):
        break

    assert len(traces) == 1
    assert traces[0]["incomplete"] is True
    assert traces[0]["response_text"] == "echo:"


def test_stream_loop_body_call_traced_separately(traces):
    model = EchoChat()
    for index, _chunk in enumerate(model.stream("outer words here")):
        if index == 0:
            model.invoke("inner")

    assert sorted(trace["response_text"] for trace in traces) == ["echo: inner", "echo: outer words here"]


async def test_astream_one_trace(traces):
    chunks = [chunk async for chunk in EchoChat().astream("async stream")]

    assert len(chunks) > 2
    assert len(traces) == 1
    assert traces[0]["response_text"] == "echo: async stream"
    assert traces[0]["task"] == "test_astream_one_trace"


def test_batch_detects_on_caller_thread(traces):
    messages = EchoChat().batch(["a", "b", "c", "d"])

    assert len(traces) == 4
    assert {trace["task"] for trace in traces} == {"test_batch_detects_on_caller_thread"}
    assert sorted(trace["response_text"] for trace in traces) == ["echo: a", "echo: b", "echo: c", "echo: d"]
    by_id = {trace["id"]: trace for trace in traces}
    assert [by_id[message.ct_trace_id]["response_text"] for message in messages] == ["echo: a", "echo: b", "echo: c", "echo: d"]
    assert _tracer.last_trace_id() == messages[-1].ct_trace_id


async def test_abatch_traces_each_input(traces):
    messages = await EchoChat().abatch(["x", "y", "z"])

    assert len(traces) == 3
    assert {trace["task"] for trace in traces} == {"test_abatch_traces_each_input"}
    assert all(message.ct_trace_id for message in messages)


def test_batch_as_completed_traces_each_input(traces):
    results = dict(EchoChat().batch_as_completed(["p", "q"]))

    assert len(results) == 2
    assert {trace["task"] for trace in traces} == {"test_batch_as_completed_traces_each_input"}


async def test_agenerate_two_lists(traces):
    result = await EchoChat().agenerate([[HumanMessage("one")], [HumanMessage("two")]])

    assert len(result.generations) == 2
    assert sorted(trace["response_text"] for trace in traces) == ["echo: one", "echo: two"]
    assert {trace["task"] for trace in traces} == {"test_agenerate_two_lists"}


def test_chain_prompt_then_model(traces):
    prompt = ChatPromptTemplate.from_messages([("system", "Be terse."), ("human", "Summarize {ticket}")])
    chain = prompt | EchoChat()

    message = chain.invoke({"ticket": "T-9"})

    assert len(traces) == 1
    assert traces[0]["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Summarize T-9"},
    ]
    assert message.ct_trace_id == traces[0]["id"]


def test_chain_with_parser_last_trace_id(traces):
    from langchain_core.output_parsers import StrOutputParser

    chain = ChatPromptTemplate.from_messages([("human", "Say {word}")]) | EchoChat() | StrOutputParser()

    text = chain.invoke({"word": "one"})
    after_invoke = _tracer.last_trace_id()
    pieces = list(chain.stream({"word": "two"}))
    after_stream = _tracer.last_trace_id()

    assert text == "echo: Say one"
    assert "".join(pieces) == "echo: Say two"
    assert [after_invoke, after_stream] == [trace["id"] for trace in traces]


async def test_async_chain_last_trace_id(traces):
    from langchain_core.output_parsers import StrOutputParser

    chain = ChatPromptTemplate.from_messages([("human", "Say {word}")]) | EchoChat() | StrOutputParser()

    await chain.ainvoke({"word": "one"})
    after_ainvoke = _tracer.last_trace_id()
    [piece async for piece in chain.astream({"word": "two"})]
    after_astream = _tracer.last_trace_id()

    assert [after_ainvoke, after_astream] == [trace["id"] for trace in traces]


def test_text_llm_chain_last_trace_id(traces):
    from langchain_core.prompts import PromptTemplate

    text = (PromptTemplate.from_template("Say {word}") | UsageLLM()).invoke({"word": "hi"})

    assert text == "done Say hi"
    assert _tracer.last_trace_id() == traces[0]["id"]


def test_error_propagates_unchanged(traces):
    error = ValueError("boom")

    with pytest.raises(ValueError) as raised:
        FailingChat(error=error).invoke("x")

    assert raised.value is error
    assert len(traces) == 1
    assert traces[0]["error"] == "ValueError: boom"
    assert traces[0]["response_text"] is None


async def test_async_error_propagates_unchanged(traces):
    error = KeyError("missing")

    with pytest.raises(KeyError) as raised:
        await FailingChat(error=error).ainvoke("x")

    assert raised.value is error
    assert traces[0]["error"].startswith("KeyError")


def test_nested_model_call_one_trace(traces):
    NestingChat().invoke("outer")

    assert len(traces) == 1
    assert traces[0]["response_text"] == "echo: outer"


def test_text_llm_invoke(traces):
    text = UsageLLM().invoke("ping")

    assert text == "done ping"
    assert len(traces) == 1
    trace = traces[0]
    assert trace["messages"] == [{"role": "user", "content": "ping"}]
    assert trace["response_text"] == "done ping"
    assert trace["model"] == "usage-1"
    assert trace["total_tokens"] == 4
    assert _tracer.last_trace_id() == trace["id"]


def test_text_llm_batch_one_trace_per_prompt(traces):
    texts = UsageLLM().batch(["a", "b"])

    assert texts == ["done a", "done b"]
    assert sorted(trace["response_text"] for trace in traces) == ["done a", "done b"]
    assert all(trace["total_tokens"] is None for trace in traces)
    assert {trace["task"] for trace in traces} == {"test_text_llm_batch_one_trace_per_prompt"}


async def test_text_llm_ainvoke(traces):
    text = await EchoLLM().ainvoke("hey")

    assert text == "said hey"
    assert len(traces) == 1
    assert traces[0]["task"] == "test_text_llm_ainvoke"
    assert _tracer.last_trace_id() == traces[0]["id"]


def test_text_llm_stream(traces):
    pieces = list(EchoLLM().stream("words"))

    assert "".join(pieces) == "said words"
    assert len(traces) == 1
    assert traces[0]["response_text"] == "said words"


def test_response_reading_failure_keeps_result(traces, monkeypatch):
    from kaizen_sdk.integrations.langchain import _patch

    def broken(result):
        raise RuntimeError("reader bug")

    monkeypatch.setattr(_patch, "from_chat_result", broken)

    message = EchoChat().invoke("still fine")

    assert message.content == "echo: still fine"
    assert len(traces) == 1
    assert traces[0]["response_text"] is None


def test_patched_methods_look_like_originals(traces):
    from langchain_core.runnables import Runnable

    for owner, name in [(BaseChatModel, "_generate_with_cache"), (BaseChatModel, "stream"), (BaseLLM, "_generate_helper"), (BaseChatModel, "batch")]:
        patched = getattr(owner, name)
        original = patched.__wrapped__
        assert patched is not original
        assert patched.__name__ == original.__name__
        assert patched.__doc__ == original.__doc__
        assert inspect.signature(patched) == inspect.signature(original)
    assert BaseChatModel.batch.__wrapped__ is Runnable.batch
    assert inspect.isasyncgenfunction(BaseChatModel.astream)
    assert inspect.iscoroutinefunction(BaseChatModel._agenerate_with_cache)
    assert inspect.isgeneratorfunction(BaseChatModel.stream)


def test_uninstall_restores_exactly(monkeypatch):
    from langchain_core.runnables.base import RunnableSequence

    before_chat = dict(vars(BaseChatModel))
    before_llm = dict(vars(BaseLLM))
    before_sequence = dict(vars(RunnableSequence))

    lc_integration.install(lambda: _tracer.InstrumentOptions())
    lc_integration.install(lambda: _tracer.InstrumentOptions())
    assert BaseChatModel.invoke is before_chat["invoke"]
    assert "batch" in vars(BaseChatModel)
    lc_integration.uninstall()

    assert dict(vars(BaseChatModel)) == before_chat
    assert dict(vars(BaseLLM)) == before_llm
    assert dict(vars(RunnableSequence)) == before_sequence
    assert "batch" not in vars(BaseChatModel)


def test_install_twice_one_trace(traces):
    lc_integration.install(lambda: _tracer.InstrumentOptions())

    EchoChat().invoke("once")

    assert len(traces) == 1


def test_reinstall_after_uninstall(traces):
    lc_integration.uninstall()
    EchoChat().invoke("not traced")
    lc_integration.install(lambda: _tracer.InstrumentOptions())
    EchoChat().invoke("traced")

    assert [trace["response_text"] for trace in traces] == ["echo: traced"]


def test_concurrent_install_patches_once(traces):
    lc_integration.uninstall()
    barrier = threading.Barrier(8)

    def install() -> None:
        barrier.wait()
        lc_integration.install(lambda: _tracer.InstrumentOptions())

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    EchoChat().invoke("after")

    assert len(traces) == 1
    assert BaseChatModel._generate_with_cache.__wrapped__.__qualname__ == "BaseChatModel._generate_with_cache"


def test_threads_keep_their_own_tasks(traces):
    results: dict[int, str] = {}

    def call(index: int) -> None:
        results[index] = EchoChat().invoke(f"thread {index}").ct_trace_id

    threads = [threading.Thread(target=call, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    by_id = {trace["id"]: trace for trace in traces}
    assert len(traces) == 8
    assert all(by_id[results[index]]["response_text"] == f"echo: thread {index}" for index in range(8))


async def test_fifty_concurrent_ainvokes(traces):
    model = EchoChat()

    # gather runs each coroutine in its own task, so the detected frame is summarize's.
    async def summarize(index: int) -> AIMessage:
        return await model.ainvoke(f"call {index}")

    messages = await asyncio.gather(*(summarize(index) for index in range(50)))

    by_id = {trace["id"]: trace for trace in traces}
    assert len(traces) == 50
    assert all(by_id[message.ct_trace_id]["response_text"] == f"echo: call {index}" for index, message in enumerate(messages))
    assert {trace["task"] for trace in traces} == {"summarize"}


def test_unmapped_calls_ignored(traces):
    lc_integration.install(lambda: _tracer.InstrumentOptions())
    from kaizen_sdk.integrations.langchain import _spans

    _spans.set_options(lambda: _tracer.InstrumentOptions(ignore_unmapped=True))
    EchoChat().invoke("dropped")
    EchoChat().batch(["dropped too", "and this"])

    assert traces == []


v3_events = pytest.mark.skipif(
    not hasattr(BaseChatModel, "_iter_v2_events"), reason="this langchain-core release has no protocol event streams"
)


@v3_events
def test_stream_events_v3_one_trace(traces):
    events = list(EchoChat().stream_events("protocol events", version="v3"))

    assert events
    assert len(traces) == 1
    assert traces[0]["response_text"] == "echo: protocol events"
    assert traces[0]["incomplete"] is False
    assert traces[0]["task"] == "test_stream_events_v3_one_trace"


@v3_events
async def test_astream_events_v3_one_trace(traces):
    stream = await EchoChat().astream_events("async protocol events", version="v3")
    events = [event async for event in stream]

    assert events
    assert len(traces) == 1
    assert traces[0]["response_text"] == "echo: async protocol events"


def test_unsupported_release_rejected():
    from kaizen_sdk.integrations.langchain import _patch

    class OldChatModel:
        pass

    class OldLLM:
        pass

    with pytest.raises(RuntimeError, match="OldChatModel._generate_with_cache"):
        _patch.install(OldChatModel, OldLLM)


def test_no_state_left_after_many_calls(traces):
    import gc

    chat, failing = EchoChat(), FreshErrorChat()

    def mixed_calls(count: int) -> None:
        for index in range(count):
            chat.invoke(f"call {index}")
            with pytest.raises(RuntimeError):
                failing.invoke("x")
            for _chunk in chat.stream("abandoned after one chunk"):
                break

    mixed_calls(100)
    traces.clear()
    gc.collect()
    before = len(gc.get_objects())
    mixed_calls(400)
    traces.clear()
    gc.collect()
    after = len(gc.get_objects())

    assert len(_tracer._open_spans) == 0
    assert len(_result._entries) == 0
    # 1,200 calls: one object left behind per call would add at least 1,200.
    assert after - before < 300
