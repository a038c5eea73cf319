"""The patch table of the LangChain integration and the wrappers it installs.

Patching the abstract ``_generate`` of ``BaseChatModel`` / ``BaseLLM`` traces nothing in
langchain-core 1.x, because every model overrides it. Patching each subclass's
``_generate`` / ``_stream`` would have to follow every class ever defined, and LangChain
inspects those methods (the signature of ``_generate``, the identity of ``_stream``). So
the wrappers sit on concrete methods of the two base classes that every model inherits
and almost none overrides:

- spans, one per model call: ``BaseChatModel._generate_with_cache`` and
  ``_agenerate_with_cache`` (one message list each; every ``invoke``, ``ainvoke``,
  ``batch``, ``generate`` and chain step goes through them), ``BaseLLM._generate_helper``
  and ``_agenerate_helper`` (one span per prompt of the call), ``stream`` / ``astream``
  of both classes, which call ``_stream`` / ``_astream`` directly, and the protocol event
  generators ``_iter_v2_events`` / ``_aiter_v2_events`` where the release has them;
- entry points that hop to a thread pool or new tasks before the model call
  (``batch``, ``abatch``, ``batch_as_completed``, ``abatch_as_completed``, ``agenerate``):
  they run task detection on the caller's thread first (see ``_callsite``);
- ``RunnableSequence`` calls, so that ``last_trace_id()`` names the last model call of a
  chain in the caller's context.

A span is active (``Span.activate``) only while the original runs, so the openai client
that ``ChatOpenAI`` calls underneath gets no trace of its own, and a ``stream`` that
falls back to ``invoke`` gives one trace.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from kaizen_sdk import _patching, _tracer
from kaizen_sdk.integrations.langchain import _callsite, _spans
from kaizen_sdk.integrations.langchain._request import message_to_dict, messages_from_prompt
from kaizen_sdk.integrations.langchain._response import from_chat_result, from_llm_result
from kaizen_sdk.integrations.langchain._stream import (
    make_aevents_wrapper,
    make_astream_wrapper,
    make_events_wrapper,
    make_stream_wrapper,
)

__all__ = ["patch_table", "install", "uninstall"]

logger = logging.getLogger("kaizen_sdk.integrations.langchain")


def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    """Return a positional-or-keyword argument of the wrapped call (``args`` excludes self)."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


# --- chat models: one span per message list ---------------------------------------------


# NOTE: a hit in LangChain's LLM cache (set_llm_cache) is traced like a call, with the
# cached response and its token counts, because the cache lookup happens inside.
def _wrap_generate_with_cache(original: Callable[..., Any]) -> Callable[..., Any]:
    def _generate_with_cache(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = _spans.start_chat_span(
            self,
            _argument(args, kwargs, 0, "messages"),
            _argument(args, kwargs, 1, "stop"),
            kwargs,
            _argument(args, kwargs, 2, "run_manager"),
        )
        if span is None:
            return original(self, *args, **kwargs)

        try:
            with span.activate():
                result = original(self, *args, **kwargs)
        except BaseException as exc:
            _spans.fail(span, exc)
            raise

        _spans.attach_chat_result(result, span)
        _spans.finish(span, lambda: from_chat_result(result))
        return result

    return _generate_with_cache


def _wrap_agenerate_with_cache(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _agenerate_with_cache(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = _spans.start_chat_span(
            self,
            _argument(args, kwargs, 0, "messages"),
            _argument(args, kwargs, 1, "stop"),
            kwargs,
            _argument(args, kwargs, 2, "run_manager"),
        )
        if span is None:
            return await original(self, *args, **kwargs)

        try:
            with span.activate():
                result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _spans.fail(span, exc)
            raise

        _spans.attach_chat_result(result, span)
        _spans.finish(span, lambda: from_chat_result(result))
        return result

    return _agenerate_with_cache


# --- text LLMs: one span per prompt of the call -------------------------------------------


def _start_text_spans(model: Any, args: tuple, kwargs: dict) -> list[_tracer.Span | None]:
    if _tracer.active_span() is not None:
        return []

    prompts = _argument(args, kwargs, 0, "prompts")
    stop = _argument(args, kwargs, 1, "stop")
    run_managers = _argument(args, kwargs, 2, "run_managers")
    if not isinstance(prompts, list):
        return []

    spans = []
    for index, prompt in enumerate(prompts):
        run_manager = run_managers[index] if isinstance(run_managers, list) and index < len(run_managers) else None
        spans.append(_spans.start_text_span(model, prompt, stop, kwargs, run_manager))
    return spans


def _finish_text_spans(spans: list[_tracer.Span | None], result: Any) -> None:
    for index, span in enumerate(spans):
        if span is not None:
            _spans.finish(span, lambda index=index: from_llm_result(result, index))


def _fail_text_spans(spans: list[_tracer.Span | None], exc: BaseException) -> None:
    for span in spans:
        if span is not None:
            _spans.fail(span, exc)


def _wrap_generate_helper(original: Callable[..., Any]) -> Callable[..., Any]:
    def _generate_helper(self: Any, *args: Any, **kwargs: Any) -> Any:
        spans = _start_text_spans(self, args, kwargs)
        live = [span for span in spans if span is not None]
        if not live:
            return original(self, *args, **kwargs)

        # One request serves every prompt: activating one span suppresses nested traces.
        try:
            with live[0].activate():
                result = original(self, *args, **kwargs)
        except BaseException as exc:
            _fail_text_spans(spans, exc)
            raise

        _finish_text_spans(spans, result)
        return result

    return _generate_helper


def _wrap_agenerate_helper(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _agenerate_helper(self: Any, *args: Any, **kwargs: Any) -> Any:
        spans = _start_text_spans(self, args, kwargs)
        live = [span for span in spans if span is not None]
        if not live:
            return await original(self, *args, **kwargs)

        try:
            with live[0].activate():
                result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _fail_text_spans(spans, exc)
            raise

        _finish_text_spans(spans, result)
        return result

    return _agenerate_helper


# --- entry points that hop: detect on the caller's thread first ---------------------------


def _input_message_lists(model: Any, inputs: Any, kind: str) -> list[list[dict]]:
    """Convert ``batch`` inputs the way the model will, to the message dicts spans see."""
    lists: list[list[dict]] = []
    for item in list(inputs or []):
        try:
            value = model._convert_input(item)
        except Exception:  # noqa: BLE001 - the original rejects the input itself
            continue
        if kind == "chat":
            lists.append([message_to_dict(message) for message in value.to_messages()])
        else:
            lists.append(messages_from_prompt(value.to_string()))
    return lists


def _generate_message_lists(inputs: Any, kind: str) -> list[list[dict]]:
    """Convert ``agenerate`` inputs: message lists (chat) or prompt strings (text)."""
    if kind == "chat":
        return [[message_to_dict(message) for message in list(messages)] for messages in list(inputs or [])]
    return [messages_from_prompt(str(prompt)) for prompt in list(inputs or [])]


def _safe_lists(read: Callable[[], list[list[dict]]]) -> list[list[dict]]:
    if _tracer.active_span() is not None:
        return []
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - spans then detect by themselves
        _tracer.log_failure("langchain.request", "could not read the inputs of a LangChain batch", exc)
        return []


def _entry_lists(model: Any, args: tuple, kwargs: dict, kind: str, from_generate: bool) -> list[list[dict]]:
    if from_generate:
        first = _argument(args, kwargs, 0, "messages" if kind == "chat" else "prompts")
        return _safe_lists(lambda: _generate_message_lists(first, kind))
    return _safe_lists(lambda: _input_message_lists(model, _argument(args, kwargs, 0, "inputs"), kind))


def _make_entry(kind: str, from_generate: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return a ``make_wrapper`` for a sync entry point (``batch``)."""

    def make_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _callsite.captured(_entry_lists(self, args, kwargs, kind, from_generate)):
                result = original(self, *args, **kwargs)
            _spans.remember_last(result)
            return result

        return entry

    return make_wrapper


def _make_async_entry(kind: str, from_generate: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return a ``make_wrapper`` for an async entry point (``abatch``, ``agenerate``)."""

    def make_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        async def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _callsite.captured(_entry_lists(self, args, kwargs, kind, from_generate)):
                result = await original(self, *args, **kwargs)
            _spans.remember_last(result)
            return result

        return entry

    return make_wrapper


def _make_as_completed_entry(kind: str) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
    def make_wrapper(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def batch_as_completed(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            lists = _safe_lists(lambda: _input_message_lists(self, _argument(args, kwargs, 0, "inputs"), kind))
            inner = original(self, *args, **kwargs)
            try:
                while True:
                    # Set around each step only: the thread pool copies the context when
                    # the original submits work, and the user's loop body runs without it.
                    with _callsite.captured(lists):
                        try:
                            item = next(inner)
                        except StopIteration:
                            return
                    yield item
            finally:
                inner.close()

        return batch_as_completed

    return make_wrapper


def _make_aas_completed_entry(kind: str) -> Callable[[Callable[..., AsyncIterator[Any]]], Callable[..., AsyncIterator[Any]]]:
    def make_wrapper(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def abatch_as_completed(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            lists = _safe_lists(lambda: _input_message_lists(self, _argument(args, kwargs, 0, "inputs"), kind))
            inner = original(self, *args, **kwargs)
            try:
                while True:
                    with _callsite.captured(lists):
                        try:
                            item = await inner.__anext__()
                        except StopAsyncIteration:
                            return
                    yield item
            finally:
                await inner.aclose()

        return abatch_as_completed

    return make_wrapper


# --- chains: make last_trace_id() work after a RunnableSequence call ---------------------


def _wrap_chain_call(original: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _spans.chain_call():
            return original(self, *args, **kwargs)

    return call


def _wrap_async_chain_call(original: Callable[..., Any]) -> Callable[..., Any]:
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _spans.chain_call():
            return await original(self, *args, **kwargs)

    return call


def _wrap_chain_stream(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        inner = original(self, *args, **kwargs)
        try:
            while True:
                # A sync generator runs in the context of whoever calls next(), so each
                # step records the last trace id in the user's context.
                with _spans.chain_call():
                    try:
                        item = next(inner)
                    except StopIteration:
                        return
                yield item
        finally:
            inner.close()

    return stream


def _wrap_chain_astream(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def astream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        inner = original(self, *args, **kwargs)
        try:
            while True:
                with _spans.chain_call():
                    try:
                        item = await inner.__anext__()
                    except StopAsyncIteration:
                        return
                yield item
        finally:
            await inner.aclose()

    return astream


def chain_table(sequence: type | None) -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """Return the patches of ``RunnableSequence`` (``prompt | model | parser`` chains)."""
    if sequence is None:
        return []
    return [
        (sequence, "invoke", _wrap_chain_call),
        (sequence, "ainvoke", _wrap_async_chain_call),
        (sequence, "batch", _wrap_chain_call),
        (sequence, "abatch", _wrap_async_chain_call),
        (sequence, "stream", _wrap_chain_stream),
        (sequence, "astream", _wrap_chain_astream),
    ]


def patch_table(chat_model: type, text_llm: type) -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """Return ``(owner, attribute, make_wrapper)`` for every patch, spans before entries."""
    table: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
        (chat_model, "_generate_with_cache", _wrap_generate_with_cache),
        (chat_model, "_agenerate_with_cache", _wrap_agenerate_with_cache),
        (chat_model, "stream", make_stream_wrapper("chat")),
        (chat_model, "astream", make_astream_wrapper("chat")),
        (text_llm, "_generate_helper", _wrap_generate_helper),
        (text_llm, "_agenerate_helper", _wrap_agenerate_helper),
        (text_llm, "stream", make_stream_wrapper("text")),
        (text_llm, "astream", make_astream_wrapper("text")),
    ]

    # Protocol event streams are in langchain-core 1.8.3 but not 1.0.0; install() skips them when absent.
    table += [
        (chat_model, "_iter_v2_events", make_events_wrapper),
        (chat_model, "_aiter_v2_events", make_aevents_wrapper),
    ]

    for owner, kind in ((chat_model, "chat"), (text_llm, "text")):
        table += [
            (owner, "batch", _make_entry(kind)),
            (owner, "abatch", _make_async_entry(kind)),
            (owner, "agenerate", _make_async_entry(kind, from_generate=True)),
            (owner, "batch_as_completed", _make_as_completed_entry(kind)),
            (owner, "abatch_as_completed", _make_aas_completed_entry(kind)),
        ]
    return table


def install(chat_model: type, text_llm: type, sequence: type | None = None) -> None:
    """Apply the patch table; on failure undo what was applied and raise.

    Raises ``RuntimeError`` when langchain-core lacks a method every call goes through
    (a release outside the supported range); methods only some releases have are skipped.
    """
    required = [
        (chat_model, "_generate_with_cache"),
        (chat_model, "_agenerate_with_cache"),
        (text_llm, "_generate_helper"),
        (text_llm, "_agenerate_helper"),
    ]
    missing = [f"{owner.__name__}.{name}" for owner, name in required if not hasattr(owner, name)]
    if missing:
        raise RuntimeError(
            f"cannot instrument this langchain-core release: {', '.join(missing)} not found; "
            "kaizen-sdk supports langchain-core>=1.0,<2"
        )

    applied: list[tuple[type, str]] = []
    try:
        for owner, name, make_wrapper in patch_table(chat_model, text_llm) + chain_table(sequence):
            if not hasattr(owner, name):
                logger.info("langchain-core has no %s.%s; that path is not traced", owner.__name__, name)
                continue
            if _patching.wrap(owner, name, make_wrapper):
                applied.append((owner, name))
    except BaseException:
        for owner, name in reversed(applied):
            _patching.unwrap(owner, name)
        raise


def uninstall(chat_model: type, text_llm: type, sequence: type | None = None) -> None:
    """Restore every original of the patch table."""
    for owner, name, _ in reversed(patch_table(chat_model, text_llm) + chain_table(sequence)):
        _patching.unwrap(owner, name)
