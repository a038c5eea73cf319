"""The sync and async call wrappers every integration builds its patches from.

A sync wrapper starts the span, runs the original with the span active, as
``Span.activate()`` does (so calls nested inside get no span of their own and skip reading
their request), records an exception and re-raises the same object, and hands the result to
the integration's ``finish``.

An async wrapper is a plain function, not a coroutine function: it starts the span at
call time, on the caller's thread with the caller's frames, and returns a coroutine that
awaits the original. ``asyncio.gather(*(acompletion(...) for x in xs))`` therefore runs
task detection in the user's code for each call, before any task or executor hop. The
clock restarts when the coroutine is first awaited, so latency covers the awaited time.
``_patching.wrap`` marks such a wrapper as a coroutine function when the original is one.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from kaizen_sdk._tracer import InstrumentOptions, Span, _active_span

__all__ = ["Hooks", "sync_wrapper", "async_wrapper"]


class Hooks:
    """What an integration plugs into the wrappers.

    ``options()`` returns the current options, or None when the integration is
    uninstalled (the wrapper then calls the original untraced). ``prepare(args, kwargs)``
    returns the kwargs to call the original with (it may turn a generator of messages
    into a list). ``start(args, kwargs, options, caller)`` returns a span or None and never
    raises; ``caller`` is the frame that called the patched function, where task detection
    starts its walk. ``finish(span, result)`` records the result, ends or hands over the span and
    returns what the user gets (the result, or a stream proxy); it never raises.
    """

    def __init__(
        self,
        *,
        options: Callable[[], InstrumentOptions | None],
        start: Callable[[tuple[Any, ...], dict[str, Any], InstrumentOptions, FrameType], Span | None],
        finish: Callable[[Span, Any], Any],
        prepare: Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.options = options
        self.start = start
        self.finish = finish
        self.prepare = prepare


def fail(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` and end it."""
    span.record_error(exc)
    span.end()


def sync_wrapper(hooks: Hooks) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return a factory that wraps a synchronous callable with ``hooks``."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            options = hooks.options()
            if options is None:
                return original(*args, **kwargs)

            # A call nested in a traced call gets no span: skip reading its request.
            if _active_span.get() is not None:
                return original(*args, **kwargs)

            if hooks.prepare is not None:
                kwargs = hooks.prepare(args, kwargs)
            # Detection starts at the caller's frame: walking there through this wrapper and
            # the hooks would create a frame object for each of them.
            span = hooks.start(args, kwargs, options, sys._getframe(1))
            if span is None:
                return original(*args, **kwargs)

            # Span.activate() inlined: a generator-based context manager costs more here.
            try:
                token = _active_span.set(span)
                try:
                    result = original(*args, **kwargs)
                finally:
                    _active_span.reset(token)
            except BaseException as exc:
                fail(span, exc)
                raise
            return hooks.finish(span, result)

        return wrapper

    return make


async def _traced(hooks: Hooks, span: Span, awaitable: Any) -> Any:
    span.restart_clock()
    try:
        with span.activate():
            result = await awaitable
    except BaseException as exc:
        fail(span, exc)
        raise
    return hooks.finish(span, result)


def async_wrapper(hooks: Hooks) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return a factory that wraps a callable returning an awaitable with ``hooks``."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            options = hooks.options()
            if options is None:
                return original(*args, **kwargs)

            # A call nested in a traced call gets no span: skip reading its request.
            if _active_span.get() is not None:
                return original(*args, **kwargs)

            if hooks.prepare is not None:
                kwargs = hooks.prepare(args, kwargs)
            # Detection starts at the caller's frame: walking there through this wrapper and
            # the hooks would create a frame object for each of them.
            span = hooks.start(args, kwargs, options, sys._getframe(1))
            if span is None:
                return original(*args, **kwargs)

            try:
                awaitable = original(*args, **kwargs)
            except BaseException as exc:
                fail(span, exc)
                raise
            if not inspect.isawaitable(awaitable):
                # Some releases return the result directly (a cached or mocked response).
                return hooks.finish(span, awaitable)
            return _traced(hooks, span, awaitable)

        return wrapper

    return make
