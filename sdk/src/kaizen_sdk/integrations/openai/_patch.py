"""Wrappers around openai's ``create`` / ``parse`` methods and the raw-response ``parse``.

The call wrappers come from ``integrations._wrappers`` (span started on the caller's
thread, async calls detected at call time, not when awaited).

What the original returns decides how the trace ends:

- a model (``ChatCompletion``, ``Response``): recorded and ended at once;
- a ``Stream`` / ``AsyncStream``: wrapped in ``StreamProxy``, ended when the stream ends;
- a raw response (``.with_raw_response`` / ``.with_streaming_response``): ended when the
  user calls ``.parse()`` on it (recorded from the parsed result), or, when they never do,
  when the raw response is garbage collected (recorded from the body if it was read).

The wrappers read their options at call time; after ``uninstall()`` a wrapper that is
still referenced (a ``with_raw_response`` created while instrumented caches the bound
method) calls the original untraced.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

from kaizen_sdk import _result
from kaizen_sdk._tracer import InstrumentOptions, Span, defer, log_failure, start_span
from kaizen_sdk.integrations._chat import ChatChunkAccumulator
from kaizen_sdk.integrations._proxy import StreamProxy
from kaizen_sdk.integrations._wrappers import Hooks, async_wrapper, fail, sync_wrapper
from kaizen_sdk.integrations.openai import _compat
from kaizen_sdk.integrations.openai._request import request_of
from kaizen_sdk.integrations.openai._response import ResponsesEventAccumulator, record_response

__all__ = ["set_options", "call_wrapper", "parse_wrapper"]

LIBRARY = "openai"

_options: Callable[[], InstrumentOptions] | None = None


def set_options(provider: Callable[[], InstrumentOptions] | None) -> None:
    """Set where wrappers read their options; None makes every wrapper a pass-through."""
    global _options
    _options = provider


def _current_options() -> InstrumentOptions | None:
    provider = _options
    return provider() if provider is not None else None


# --- starting -----------------------------------------------------------------------------


def _materialize(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn one-shot iterables (generators) of messages or input items into lists.

    Reading a generator to build the trace would leave nothing for the request, so the
    list is passed on instead. The user's own objects are never modified.
    """
    for name in ("messages", "input"):
        value = kwargs.get(name)
        if value is None or isinstance(value, (list, tuple, str, bytes, Mapping)):
            continue
        if isinstance(value, Iterable) and iter(value) is value:
            kwargs[name] = list(value)
    return kwargs


def _start(api: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], options: InstrumentOptions, caller: FrameType) -> Span | None:
    try:
        messages, model, parameters = request_of(api, kwargs)
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        log_failure("openai.request", "could not read the openai request", exc)
        return None
    return start_span(LIBRARY, messages, model=model, parameters=parameters, options=options, caller=caller)


# --- finishing ----------------------------------------------------------------------------

_raw_lock = threading.RLock()
# id(raw response) -> (weak reference, api, span, finalizer) until .parse() is called
_raw_pending: dict[int, tuple[weakref.ref[Any], str, Span, weakref.finalize]] = {}


def _new_accumulator(api: str) -> Any:
    return ResponsesEventAccumulator() if api == "responses" else ChatChunkAccumulator()


def _raw_abandoned(key: int, api: str, span: Span, http_response: Any) -> None:
    """End the span of a raw response that was garbage collected without ``.parse()``.

    The span comes with the finalizer rather than from ``_raw_pending``: by the time this
    deferred work runs, a new raw response may live at the same address and have taken its
    key there.
    """
    with _raw_lock:
        entry = _raw_pending.get(key)
        if entry is not None and entry[2] is span:
            del _raw_pending[key]
    if span.ended:
        return

    try:
        content = http_response.content  # raises when the body was never read
        record_response(api, span, json.loads(content))
        span.end()
    except Exception:  # noqa: BLE001 - the body was streamed or never read
        span.end(incomplete=True)


def _register_raw(raw: Any, api: str, span: Span) -> None:
    key = id(raw)
    # The finalizer runs in garbage-collector context, so it only defers the work.
    finalizer = weakref.finalize(raw, defer, _raw_abandoned, key, api, span, getattr(raw, "http_response", None))
    finalizer.atexit = False
    with _raw_lock:
        _raw_pending[key] = (weakref.ref(raw), api, span, finalizer)


def _take_raw(raw: Any) -> tuple[str, Span] | None:
    if not _raw_pending:
        return None  # openai parses every response through this method: keep that path short

    with _raw_lock:
        entry = _raw_pending.get(id(raw))
        if entry is None or entry[0]() is not raw:
            return None
        del _raw_pending[id(raw)]
    entry[3].detach()
    return entry[1], entry[2]


def finish(api: str, span: Span, result: Any) -> Any:
    """Turn the result of the original call into a trace; return what the user gets."""
    try:
        if isinstance(result, _compat.stream_classes()):
            proxy = StreamProxy(result, span, _new_accumulator(api), key=LIBRARY)
            _result.attach(proxy, span)
            return proxy
        if isinstance(result, _compat.raw_classes()):
            _register_raw(result, api, span)
            _result.attach(result, span)
            return result
        # Read on the caller's thread, not later on the exporter's. Keeping the response model
        # alive until the exporter reads it kept about 15 more objects per queued trace in the
        # garbage collector's generations. The collections they set off cost the caller several
        # times what reading the response costs.
        record_response(api, span, result)
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        log_failure("openai.response", f"could not read the openai response of trace {span.trace_id}", exc)

    span.end()
    _result.attach(result, span)
    return result


# --- wrappers -----------------------------------------------------------------------------


def call_wrapper(api: str, is_async: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return the wrapper factory for a ``create`` / ``parse`` method of ``api``."""
    # functools.partial adds no Python frame per call, unlike a lambda.
    hooks = Hooks(
        options=_current_options,
        prepare=_materialize,
        start=functools.partial(_start, api),
        finish=functools.partial(finish, api),
    )
    return async_wrapper(hooks) if is_async else sync_wrapper(hooks)


def _replace_cached(raw: Any, kwargs: Mapping[str, Any], parsed: Any, result: Any) -> None:
    """Make later ``raw.parse()`` calls return the stream proxy, not the bare stream."""
    if result is parsed:
        return
    cache = _compat.parse_cache(raw)
    key = kwargs.get("to") or _compat.default_parse_type(raw)
    if cache is not None and cache.get(key) is parsed:
        cache[key] = result


def parse_wrapper(is_async: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return the wrapper factory for ``parse`` of openai's raw-response classes."""

    def make_sync(original: Callable[..., Any]) -> Callable[..., Any]:
        def parse(self: Any, *args: Any, **kwargs: Any) -> Any:
            pending = _take_raw(self)
            if pending is None:
                return original(self, *args, **kwargs)

            api, span = pending
            try:
                parsed = original(self, *args, **kwargs)
            except BaseException as exc:
                fail(span, exc)
                raise
            result = finish(api, span, parsed)
            _replace_cached(self, kwargs, parsed, result)
            return result

        return parse

    def make_async(original: Callable[..., Any]) -> Callable[..., Any]:
        async def parse(self: Any, *args: Any, **kwargs: Any) -> Any:
            pending = _take_raw(self)
            if pending is None:
                return await original(self, *args, **kwargs)

            api, span = pending
            try:
                parsed = await original(self, *args, **kwargs)
            except BaseException as exc:
                fail(span, exc)
                raise
            result = finish(api, span, parsed)
            _replace_cached(self, kwargs, parsed, result)
            return result

        return parse

    return make_async if is_async else make_sync
