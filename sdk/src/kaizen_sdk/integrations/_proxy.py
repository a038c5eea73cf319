"""A stream proxy that keeps the stream's type and ends its span whichever way the stream ends.

A traced streaming call returns ``StreamProxy(stream, span, accumulator)`` instead of the
library's stream object. The proxy forwards everything to the stream; ``__class__``
reports the stream's class, so ``isinstance(proxy, openai.Stream)`` holds. It feeds every
chunk to the integration's accumulator and ends the span exactly once:

- the stream is exhausted (``StopIteration`` / ``StopAsyncIteration``): complete;
- the stream raises: the error is recorded and the span marked incomplete;
- ``close()`` / ``aclose()`` or the ``with`` / ``async with`` block exits before the end:
  incomplete, with the partial response;
- the proxy is garbage collected before the end: the same, run shortly after on the SDK's
  background thread (``_tracer.defer``), never inside the garbage collector.

The end logic lives in ``_StreamState``, which holds no reference to the proxy, so a
``weakref.finalize`` on the proxy can end the span after the proxy is gone.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any, Protocol

from kaizen_sdk._tracer import Span, defer, log_failure

__all__ = ["Accumulator", "StreamProxy"]


class Accumulator(Protocol):
    """Collects a stream's chunks and records the rebuilt response on a span."""

    def add(self, chunk: Any) -> None: ...

    def record(self, span: Span) -> None: ...


class _StreamState:
    __slots__ = ("span", "accumulator", "key", "done", "_lock")

    def __init__(self, span: Span, accumulator: Accumulator, key: str) -> None:
        self.span = span
        self.accumulator = accumulator
        self.key = key
        self.done = False
        self._lock = threading.RLock()

    def feed(self, chunk: Any) -> None:
        try:
            self.accumulator.add(chunk)
        except Exception as exc:  # noqa: BLE001 - an odd chunk must not break the user's loop
            log_failure(f"{self.key}.chunk", f"could not read a stream chunk of trace {self.span.trace_id}", exc)

    def finish_abandoned(self) -> None:
        self.finish(incomplete=True)

    def finish(self, *, incomplete: bool, error: BaseException | None = None) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True

        try:
            self.accumulator.record(self.span)
            if error is not None:
                self.span.record_error(error)
        except Exception as exc:  # noqa: BLE001 - never raise into the user's call
            log_failure(f"{self.key}.stream", f"could not record the stream of trace {self.span.trace_id}", exc)
        self.span.end(incomplete=incomplete)


class StreamProxy:
    """Transparent stand-in for a sync or async stream; see the module docstring."""

    __slots__ = ("__wrapped__", "_kaizen_state", "_kaizen_iterator", "_kaizen_finalizer", "__weakref__")

    def __init__(self, wrapped: Any, span: Span, accumulator: Accumulator, *, key: str) -> None:
        state = _StreamState(span, accumulator, key)
        object.__setattr__(self, "__wrapped__", wrapped)
        object.__setattr__(self, "_kaizen_state", state)
        object.__setattr__(self, "_kaizen_iterator", None)
        # The finalizer runs in garbage-collector context, so it only defers the work.
        finalizer = weakref.finalize(self, defer, state.finish_abandoned)
        finalizer.atexit = False  # at exit the exporter may be gone; the stream was abandoned anyway
        object.__setattr__(self, "_kaizen_finalizer", finalizer)

    # The stream's class, so isinstance() and checks on __class__ see the real type.
    @property
    def __class__(self) -> type:  # type: ignore[override]
        return type(self.__wrapped__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__wrapped__, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __dir__(self) -> list[str]:
        return dir(self.__wrapped__)

    # Copying or pickling a proxy does what it does to the bare stream: the same copy, or
    # the same error. A copy is the library's object and is not traced.
    def __copy__(self) -> Any:
        return copy.copy(self.__wrapped__)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.__wrapped__, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)

    def _kaizen_end(self, *, incomplete: bool, error: BaseException | None = None) -> None:
        self._kaizen_state.finish(incomplete=incomplete, error=error)
        self._kaizen_finalizer.detach()

    # --- sync ---

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        iterator = self._kaizen_iterator
        if iterator is None:
            iterator = iter(self.__wrapped__)
            object.__setattr__(self, "_kaizen_iterator", iterator)
        try:
            chunk = next(iterator)
        except StopIteration:
            self._kaizen_end(incomplete=False)
            raise
        except BaseException as exc:
            self._kaizen_end(incomplete=True, error=exc)
            raise
        self._kaizen_state.feed(chunk)
        return chunk

    def _require(self, method: str, protocol: str) -> None:
        # The same error Python raises for the bare stream, so `with` behaves as without us.
        if not hasattr(type(self.__wrapped__), method):
            name = type(self.__wrapped__).__name__
            raise TypeError(f"'{name}' object does not support the {protocol} protocol")

    def __enter__(self) -> StreamProxy:
        self._require("__enter__", "context manager")
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, traceback)
        finally:
            self._kaizen_end(incomplete=True)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._kaizen_end(incomplete=True)

    # --- async ---

    def __aiter__(self) -> StreamProxy:
        return self

    async def __anext__(self) -> Any:
        iterator = self._kaizen_iterator
        if iterator is None:
            iterator = self.__wrapped__.__aiter__()
            object.__setattr__(self, "_kaizen_iterator", iterator)
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            self._kaizen_end(incomplete=False)
            raise
        except BaseException as exc:
            self._kaizen_end(incomplete=True, error=exc)
            raise
        self._kaizen_state.feed(chunk)
        return chunk

    async def __aenter__(self) -> StreamProxy:
        self._require("__aenter__", "asynchronous context manager")
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, traceback: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, traceback)
        finally:
            self._kaizen_end(incomplete=True)

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._kaizen_end(incomplete=True)
