"""Tests of StreamProxy: type kept, span ended once on every way a stream can end."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from kaizen_sdk import _tracer
from kaizen_sdk._tracer import Span
from kaizen_sdk.integrations._proxy import StreamProxy


class Recorder:
    def __init__(self):
        self.chunks = []

    def add(self, chunk):
        self.chunks.append(chunk)

    def record(self, span):
        span.record_response(response_text="".join(self.chunks) or None)


class Ended(Span):
    __slots__ = ("endings", "threads")

    def __init__(self):
        super().__init__(library="openai", task="t", messages=[], prompt_text="", model="m", parameters={}, detection=None)
        self.endings = []
        self.threads = []

    def end(self, *, incomplete=False):
        self.endings.append((incomplete, self.response_text, self.error))
        self.threads.append(threading.current_thread().name)


class Chunks:
    """A minimal stream: iterable, closable, with an attribute."""

    def __init__(self, items, fail_at=None):
        self.items = items
        self.fail_at = fail_at
        self.closed = False
        self.response = "http-response"

    def __iter__(self):
        for index, item in enumerate(self.items):
            if index == self.fail_at:
                raise ConnectionResetError("peer reset")
            yield item

    def close(self):
        self.closed = True


class AsyncChunks:
    def __init__(self, items):
        self.items = items

    async def __aiter__(self):
        for item in self.items:
            yield item


def make(stream):
    span = Ended()
    return StreamProxy(stream, span, Recorder(), key="test"), span


def test_type_and_attributes_forwarded():
    stream = Chunks(["a"])
    proxy, _ = make(stream)
    assert isinstance(proxy, Chunks)
    assert proxy.__class__ is Chunks
    assert proxy.response == "http-response"
    proxy.extra = 1
    assert stream.extra == 1
    assert repr(proxy) == repr(stream)


def test_exhausted_stream_complete():
    proxy, span = make(Chunks(["He", "llo"]))
    assert list(proxy) == ["He", "llo"]
    assert span.endings == [(False, "Hello", None)]
    proxy.close()
    assert span.endings == [(False, "Hello", None)]


def test_close_early_incomplete():
    stream = Chunks(["a", "b", "c"])
    proxy, span = make(stream)
    next(proxy)
    proxy.close()
    assert stream.closed
    assert span.endings == [(True, "a", None)]


def test_error_mid_stream_recorded():
    proxy, span = make(Chunks(["a", "b"], fail_at=1))
    with pytest.raises(ConnectionResetError):
        list(proxy)
    assert span.endings == [(True, "a", "ConnectionResetError: peer reset")]


def test_garbage_collected_ends_once():
    proxy, span = make(Chunks(["a", "b"]))
    next(proxy)
    del proxy
    gc.collect()
    assert _tracer.drain_deferred()
    assert span.endings == [(True, "a", None)]
    # Ended on the SDK's thread, not inside the garbage collector of this thread.
    assert span.threads == ["kaizen-finalizer"]


def test_with_on_non_context_manager_same_error():
    proxy, _ = make(Chunks(["a"]))
    with pytest.raises(TypeError, match="'Chunks' object does not support the context manager protocol"):
        with proxy:
            pass


def test_async_iteration():
    proxy, span = make(AsyncChunks(["x", "y"]))

    async def consume():
        return [item async for item in proxy]

    assert asyncio.run(consume()) == ["x", "y"]
    assert span.endings == [(False, "xy", None)]


def test_accumulator_failure_does_not_break_loop():
    class Broken(Recorder):
        def add(self, chunk):
            raise ValueError("odd chunk")

    span = Ended()
    proxy = StreamProxy(Chunks(["a", "b"]), span, Broken(), key="test")
    assert list(proxy) == ["a", "b"]
    assert len(span.endings) == 1
