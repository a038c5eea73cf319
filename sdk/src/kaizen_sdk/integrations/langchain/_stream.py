"""Wrappers for ``stream`` / ``astream`` of chat models and text LLMs.

The wrappers are generator functions like the originals, so nothing runs before the
first ``next()`` (as without ``instrument()``), and the span starts there: on the thread
or task that iterates, with the user's frames above it. The span is active only while
the original generator computes the next chunk. Between chunks the user's loop body runs
without it, so an LLM call made in that body gets its own trace.

Each chat chunk gets ``ct_trace_id`` and ``ct_score`` (text chunks are ``str`` and cannot).
Chunks are kept and merged at the end: chat chunks with ``add_ai_message_chunks`` (which
also sums ``usage_metadata`` and merges tool call chunks), text chunks by joining. A
stream closed or abandoned before its end is sent with the partial response, marked
incomplete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from kaizen_sdk import _tracer
from kaizen_sdk.integrations.langchain import _spans
from kaizen_sdk.integrations.langchain._response import ResponseInfo, from_message, from_text

__all__ = ["merge_chunks", "make_stream_wrapper", "make_astream_wrapper", "make_events_wrapper", "make_aevents_wrapper"]


def merge_chunks(chunks: list[Any]) -> Any:
    """Merge streamed message chunks into one message (None for no chunks)."""
    if not chunks:
        return None
    if len(chunks) == 1:
        return chunks[0]

    try:
        from langchain_core.messages import AIMessageChunk
        from langchain_core.messages.ai import add_ai_message_chunks

        if all(isinstance(chunk, AIMessageChunk) for chunk in chunks):
            return add_ai_message_chunks(chunks[0], *chunks[1:])
    except ImportError:
        pass

    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def _chat_info(chunks: list[Any]) -> Callable[[], ResponseInfo]:
    return lambda: from_message(merge_chunks(chunks))


def _text_info(chunks: list[Any]) -> Callable[[], ResponseInfo]:
    return lambda: from_text("".join(str(chunk) for chunk in chunks))


def _start(kind: str, model: Any, input: Any, stop: Any, kwargs: dict) -> _tracer.Span | None:
    """Start the span of a stream; a bad ``input`` is left for the original to reject."""
    if _tracer.active_span() is not None:
        return None

    try:
        prompt_value = model._convert_input(input)
    except Exception:  # noqa: BLE001 - the original raises the same error to the user
        return None

    if kind == "chat":
        return _spans.start_chat_span(model, prompt_value.to_messages(), stop, kwargs)
    return _spans.start_text_span(model, prompt_value.to_string(), stop, kwargs)


def make_stream_wrapper(kind: str) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
    """Return a ``make_wrapper`` for ``_patching.wrap`` of a sync ``stream`` (``kind``: chat or text)."""
    read = _chat_info if kind == "chat" else _text_info

    def make_wrapper(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def stream(self: Any, input: Any, config: Any = None, *, stop: Any = None, **kwargs: Any) -> Iterator[Any]:
            span = _start(kind, self, input, stop, kwargs)
            if span is None:
                yield from original(self, input, config, stop=stop, **kwargs)
                return

            chunks: list[Any] = []
            finished = False
            inner = original(self, input, config, stop=stop, **kwargs)
            try:
                while True:
                    try:
                        with span.activate():
                            chunk = next(inner)
                    except StopIteration:
                        finished = True
                        break
                    except BaseException as exc:
                        _spans.fail(span, exc)
                        raise
                    chunks.append(chunk)
                    _spans.attach_message(chunk, span)
                    yield chunk
            finally:
                if not finished:
                    inner.close()
                if not span.ended:
                    _spans.finish(span, read(chunks), incomplete=not finished)

        return stream

    return make_wrapper


def make_astream_wrapper(kind: str) -> Callable[[Callable[..., AsyncIterator[Any]]], Callable[..., AsyncIterator[Any]]]:
    """Return a ``make_wrapper`` for ``_patching.wrap`` of an ``astream`` (``kind``: chat or text)."""
    read = _chat_info if kind == "chat" else _text_info

    def make_wrapper(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def astream(self: Any, input: Any, config: Any = None, *, stop: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
            span = _start(kind, self, input, stop, kwargs)
            inner = original(self, input, config, stop=stop, **kwargs)
            if span is None:
                try:
                    async for chunk in inner:
                        yield chunk
                finally:
                    await inner.aclose()
                return

            chunks: list[Any] = []
            finished = False
            try:
                while True:
                    try:
                        with span.activate():
                            chunk = await inner.__anext__()
                    except StopAsyncIteration:
                        finished = True
                        break
                    except BaseException as exc:
                        _spans.fail(span, exc)
                        raise
                    chunks.append(chunk)
                    _spans.attach_message(chunk, span)
                    yield chunk
            finally:
                if not finished:
                    await inner.aclose()
                if not span.ended:
                    _spans.finish(span, read(chunks), incomplete=not finished)

        return astream

    return make_wrapper


# --- protocol event streams (beta; in langchain-core 1.8.3, not in 1.0.0) -----------------
#
# ``stream_events(version="v3")`` and ``astream_events(version="v3")`` drive
# ``_iter_v2_events`` / ``_aiter_v2_events`` instead of ``stream``. Each event is folded
# into the ``stream`` accumulator (a ``ChatModelStream``) that the caller passes in, whose
# ``output_message`` is the finished ``AIMessage``. The same generators also serve
# ``_generate_with_cache`` when a v2 streaming callback is attached; a span is already
# active there, so no second trace starts.


def _is_done(accumulator: Any) -> bool:
    return bool(getattr(accumulator, "done", False)) and getattr(accumulator, "output_message", None) is not None


def _events_info(accumulator: Any) -> Callable[[], ResponseInfo]:
    return lambda: from_message(getattr(accumulator, "output_message", None))


def make_events_wrapper(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Wrap ``BaseChatModel._iter_v2_events``: one span per protocol event stream."""

    def _iter_v2_events(self: Any, messages: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        span = _spans.start_chat_span(self, messages, kwargs.get("stop"), kwargs)
        if span is None:
            yield from original(self, messages, *args, **kwargs)
            return

        finished = False
        accumulator = kwargs.get("stream")
        inner = original(self, messages, *args, **kwargs)
        try:
            while True:
                try:
                    with span.activate():
                        event = next(inner)
                except StopIteration:
                    finished = True
                    break
                except BaseException as exc:
                    _spans.fail(span, exc)
                    raise
                if _is_done(accumulator):
                    # The v3 pump stops pulling once the message is finished, so the
                    # generator may never be exhausted: end the span here.
                    finished = True
                    _spans.finish(span, _events_info(accumulator))
                    yield event
                    yield from inner
                    return
                yield event
        finally:
            if not finished:
                inner.close()
            if not span.ended:
                _spans.finish(span, _events_info(accumulator), incomplete=not finished)

    return _iter_v2_events


def make_aevents_wrapper(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """Wrap ``BaseChatModel._aiter_v2_events``: one span per protocol event stream."""

    async def _aiter_v2_events(self: Any, messages: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        span = _spans.start_chat_span(self, messages, kwargs.get("stop"), kwargs)
        inner = original(self, messages, *args, **kwargs)
        if span is None:
            try:
                async for event in inner:
                    yield event
            finally:
                await inner.aclose()
            return

        finished = False
        accumulator = kwargs.get("stream")
        try:
            while True:
                try:
                    with span.activate():
                        event = await inner.__anext__()
                except StopAsyncIteration:
                    finished = True
                    break
                except BaseException as exc:
                    _spans.fail(span, exc)
                    raise
                if _is_done(accumulator):
                    finished = True
                    _spans.finish(span, _events_info(accumulator))
                    yield event
                    async for event in inner:
                        yield event
                    return
                yield event
        finally:
            await inner.aclose()
            if not span.ended:
                _spans.finish(span, _events_info(accumulator), incomplete=not finished)

    return _aiter_v2_events
