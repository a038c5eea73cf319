"""Start and finish the span of one LangChain model call.

Shared by the call wrappers in ``_patch`` and the stream wrappers in ``_stream``. Every
function here swallows its own failures (logged, rate-limited): tracing never changes
what the user's call returns or raises.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Callable

from kaizen_sdk import _result, _tracer
from kaizen_sdk.integrations.langchain import _callsite
from kaizen_sdk.integrations.langchain._request import message_to_dict, messages_from_prompt, parameters_from_call
from kaizen_sdk.integrations.langchain._response import ResponseInfo

__all__ = [
    "LIBRARY",
    "set_options",
    "start_chat_span",
    "start_text_span",
    "finish",
    "fail",
    "attach_message",
    "remember_last",
    "chain_call",
]

LIBRARY = "langchain"

# Keyword arguments of the wrapped methods that are not request parameters. "stream" is
# also the ChatModelStream accumulator that _iter_v2_events receives.
_NOT_PARAMETERS = frozenset(
    {"messages", "prompts", "stop", "run_manager", "run_managers", "new_arg_supported", "stream"}
)

# Set by install(): returns the options of the latest instrument() call.
_options: Callable[[], _tracer.InstrumentOptions] | None = None


def set_options(options: Callable[[], _tracer.InstrumentOptions] | None) -> None:
    global _options
    _options = options


def _current_options() -> _tracer.InstrumentOptions:
    return _options() if _options is not None else _tracer.InstrumentOptions()


def _call_kwargs(kwargs: dict) -> dict:
    # The wrapped call's own arguments and LangChain's plumbing, not request parameters.
    return {key: value for key, value in kwargs.items() if key not in _NOT_PARAMETERS}


# A one-item list shared by every context copied from a chain call's context, so the
# chain wrapper can read the trace id of the last span started anywhere inside it.
_chain_box: contextvars.ContextVar[list[str | None] | None] = contextvars.ContextVar(
    "kaizen_langchain_chain_box", default=None
)


def _start(messages: list[dict], model_name: str | None, parameters: dict, detection: Any) -> _tracer.Span | None:
    span = _tracer.start_span(
        LIBRARY, messages, model=model_name, parameters=parameters, options=_current_options(), detection=detection
    )

    box = _chain_box.get()
    if span is not None and box is not None:
        box[0] = span.trace_id
    return span


@contextlib.contextmanager
def chain_call() -> Iterator[None]:
    """Make ``last_trace_id()`` of this context name the last span started inside the block.

    LangChain runs each step of a ``RunnableSequence`` in a copy of the caller's context
    (``set_config_context``) or in a new task, so ``start_span`` records the last trace id
    there and the caller never sees it. The copies share this block's box.
    """
    if _chain_box.get() is not None:
        yield  # an outer chain call reads the box
        return

    box: list[str | None] = [None]
    token = _chain_box.set(box)
    try:
        yield
    finally:
        _chain_box.reset(token)
        if box[0] is not None:
            _tracer._last_trace_id.set(box[0])


def _metadata_of(run_manager: Any) -> Any:
    return getattr(run_manager, "metadata", None) if run_manager is not None else None


def start_chat_span(
    model: Any, messages: Any, stop: Any, kwargs: dict, run_manager: Any = None
) -> _tracer.Span | None:
    """Start the span of a chat model call on ``messages`` (a list of ``BaseMessage``)."""
    if _tracer.active_span() is not None:
        return None

    try:
        dicts = [message_to_dict(message) for message in list(messages or [])]
        call_kwargs = _call_kwargs(kwargs)
        model_name, parameters = parameters_from_call(model, stop, call_kwargs, _metadata_of(run_manager))
        detection = _callsite.lookup(dicts)
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        _tracer.log_failure("langchain.request", "could not read a LangChain chat request", exc)
        return None

    return _start(dicts, model_name, parameters, detection)


def start_text_span(
    model: Any, prompt: Any, stop: Any, kwargs: dict, run_manager: Any = None
) -> _tracer.Span | None:
    """Start the span of a text LLM call on one prompt string."""
    if _tracer.active_span() is not None:
        return None

    try:
        dicts = messages_from_prompt(prompt if isinstance(prompt, str) else str(prompt))
        call_kwargs = _call_kwargs(kwargs)
        model_name, parameters = parameters_from_call(model, stop, call_kwargs, _metadata_of(run_manager))
        detection = _callsite.lookup(dicts)
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        _tracer.log_failure("langchain.request", "could not read a LangChain text LLM request", exc)
        return None

    return _start(dicts, model_name, parameters, detection)


def finish(span: _tracer.Span, read: Callable[[], ResponseInfo], *, incomplete: bool = False) -> None:
    """Record the response that ``read()`` extracts and end the span."""
    try:
        info = read()
        span.record_response(
            response_text=info.text,
            model=info.model,
            prompt_tokens=info.prompt_tokens,
            completion_tokens=info.completion_tokens,
            total_tokens=info.total_tokens,
            response_messages=info.messages,
        )
    except Exception as exc:  # noqa: BLE001 - the trace is still sent, without the response
        _tracer.log_failure("langchain.response", f"could not read the LangChain response of trace {span.trace_id}", exc)
    span.end(incomplete=incomplete)


def fail(span: _tracer.Span, exc: BaseException) -> None:
    """Record that the call raised ``exc`` and end the span."""
    span.record_error(exc)
    span.end()


def attach_message(message: Any, span: _tracer.Span) -> None:
    """Give a message or chunk the user gets back ``ct_trace_id`` and ``ct_score``."""
    _result.attach(message, span)


def attach_chat_result(result: Any, span: _tracer.Span) -> None:
    """Attach ``span`` to every generated message of a ``ChatResult``."""
    for generation in list(getattr(result, "generations", None) or []):
        message = getattr(generation, "message", None)
        if message is not None:
            _result.attach(message, span)


def remember_last(result: Any) -> None:
    """Make ``last_trace_id()`` of the caller's context name the last traced message of ``result``.

    Spans started in a thread pool or a child task set ``last_trace_id`` there, not in the
    caller's context; the entry wrappers call this after such a hop.
    """
    try:
        candidates: list[Any] = []
        generations = getattr(result, "generations", None)
        if isinstance(generations, list):
            for row in generations:
                for generation in row if isinstance(row, list) else [row]:
                    candidates.append(getattr(generation, "message", None))
        elif isinstance(result, list):
            candidates = result

        for candidate in reversed(candidates):
            trace_id = _result.trace_id_of(candidate) if candidate is not None else None
            if trace_id is not None:
                _tracer._last_trace_id.set(trace_id)
                return
    except Exception as exc:  # noqa: BLE001 - last_trace_id() is a convenience
        _tracer.log_failure("langchain.last_trace_id", "could not record the last LangChain trace id", exc)
