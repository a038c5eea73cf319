"""Wrappers around ``litellm.completion`` and ``litellm.acompletion``.

litellm returns a ``ModelResponse`` (the OpenAI chat shape, read by ``integrations._chat``)
or, with ``stream=True``, a ``CustomStreamWrapper`` that is iterated with ``for`` or
``async for`` and is wrapped in a ``StreamProxy``. ``acompletion`` runs the sync path in a
thread pool for some providers and may call openai underneath for others. The span is
started on the caller's thread before either happens. litellm copies the context into its
executor, so the active-span context variable keeps those inner calls from being traced
twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

from kaizen_sdk import _result
from kaizen_sdk._tracer import InstrumentOptions, Span, log_failure, start_span
from kaizen_sdk.integrations._chat import ChatChunkAccumulator, record_chat_response
from kaizen_sdk.integrations._proxy import StreamProxy
from kaizen_sdk.integrations._wrappers import Hooks, _traced, async_wrapper, sync_wrapper
from kaizen_sdk.integrations.litellm import _compat
from kaizen_sdk.integrations.litellm._request import request_of

__all__ = ["set_options", "wrapper_factory"]

LIBRARY = "litellm"

_options: Callable[[], InstrumentOptions] | None = None


def set_options(provider: Callable[[], InstrumentOptions] | None) -> None:
    """Set where wrappers read their options; None makes every wrapper a pass-through."""
    global _options
    _options = provider


def _current_options() -> InstrumentOptions | None:
    provider = _options
    return provider() if provider is not None else None


def _prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    # A generator of messages would be consumed by the trace; pass a list on instead.
    messages = kwargs.get("messages")
    if messages is not None and not isinstance(messages, (list, tuple, Mapping, str)):
        if isinstance(messages, Iterable) and iter(messages) is messages:
            kwargs["messages"] = list(messages)
    return kwargs


def _start(args: tuple[Any, ...], kwargs: dict[str, Any], options: InstrumentOptions, caller: FrameType) -> Span | None:
    try:
        messages, model, parameters = request_of(args, kwargs)
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        log_failure("litellm.request", "could not read the litellm request", exc)
        return None
    return start_span(LIBRARY, messages, model=model, parameters=parameters, options=options, caller=caller)


_hooks: Hooks


def finish(span: Span, result: Any) -> Any:
    """Turn what litellm returned into a trace; return what the user gets."""
    try:
        if inspect.iscoroutine(result):
            # completion(..., acompletion=True) returns the coroutine of acompletion.
            return _traced(_hooks, span, result)
        if isinstance(result, _compat.stream_classes()):
            proxy = StreamProxy(result, span, ChatChunkAccumulator(), key=LIBRARY)
            _result.attach(proxy, span)
            return proxy
        record_chat_response(span, result)
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        log_failure("litellm.response", f"could not read the litellm response of trace {span.trace_id}", exc)

    span.end()
    _result.attach(result, span)
    return result


_hooks = Hooks(options=_current_options, prepare=_prepare, start=_start, finish=finish)


def wrapper_factory(is_async: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return the wrapper factory for ``completion`` (sync) or ``acompletion`` (async)."""
    return async_wrapper(_hooks) if is_async else sync_wrapper(_hooks)
