"""Reading the OpenAI chat-completions format: requests, responses and stream chunks.

openai and litellm both speak this format (litellm's ``ModelResponse`` and
``ModelResponseStream`` mirror openai's ``ChatCompletion`` and ``ChatCompletionChunk``), so
both integrations share these readers. Every reader accepts pydantic objects and plain
dicts alike (``field()``), tolerates missing pieces (a chunk with empty ``choices``, a
``delta`` of None, a tool call without ``.function``) and never changes what it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kaizen_sdk._tracer import Span
from kaizen_sdk.integrations import is_given, text_of_content, to_plain

__all__ = [
    "field",
    "chat_messages",
    "request_parameters",
    "record_chat_response",
    "ChatChunkAccumulator",
]

# Request keywords that are not model parameters, or that may carry secrets or large
# payloads; they never reach a trace's "parameters".
_NOT_PARAMETERS = frozenset(
    {
        "messages",
        "model",
        "input",
        "instructions",
        "extra_headers",
        "extra_query",
        "extra_body",
        "timeout",
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "headers",
        "organization",
        "client",
        "litellm_logging_obj",
        "logger_fn",
        "azure_ad_token",
        "aws_secret_access_key",
        "aws_access_key_id",
        "vertex_credentials",
        "metadata",
    }
)


_SCALARS = frozenset({int, float, str, bool})


_MAX_CACHED_CLASSES = 1024
_is_mapping: dict[type, bool] = {}


def field(value: Any, name: str, default: Any = None) -> Any:
    """Return ``value[name]`` for a mapping, else ``value.name``; ``default`` when missing."""
    if value is None:
        return default
    if type(value) is dict:
        return value.get(name, default)
    return reader(value)(value, name, default)


def reader(value: Any) -> Callable[[Any, str, Any], Any]:
    """Return the function that reads fields of ``value``: ``reader(value)(value, name, default)``.

    A reader that reads several fields of one object saves a call per field over ``field``:
    ``dict.get`` for a dict, ``getattr`` for a model or plain object.
    """
    kind = type(value)
    if kind is dict:
        return dict.get

    # The abstract Mapping check costs more than the read itself, so its result is cached
    # per class (a few response and message classes in a process).
    is_mapping = _is_mapping.get(kind)
    if is_mapping is None:
        is_mapping = isinstance(value, Mapping)
        if len(_is_mapping) < _MAX_CACHED_CLASSES:
            _is_mapping[kind] = is_mapping
    return _mapping_get if is_mapping else getattr


def _mapping_get(value: Mapping[str, Any], name: str, default: Any) -> Any:
    return value.get(name, default)


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """Return the request's messages as plain dicts in the chat shape."""
    # A list, the common case, skips the checks below: the abstract Iterable check alone
    # took about 0.7 µs per call in a profile.
    if type(messages) is not list:
        if messages is None or not is_given(messages):
            return []
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Iterable):
            return [{"role": "user", "content": to_plain(messages)}]

    plain = []
    for message in messages:
        if type(message) is dict:
            for value in message.values():
                if value is not None and type(value) is not str:
                    break
            else:
                # The common message: a shallow copy is a full snapshot, because strings do not change.
                plain.append(dict(message))
                continue

        item = to_plain(message)
        if not isinstance(item, dict):
            item = {"role": "user", "content": item}
        plain.append(item)
    return plain


def _parameter_value(name: str, value: Any) -> Any:
    if name in ("tools", "functions") and isinstance(value, Iterable) and not isinstance(value, (str, Mapping)):
        names = []
        for tool in value:
            function = field(tool, "function")
            names.append(field(function, "name") or field(tool, "name") or field(tool, "type"))
        return names
    if name in ("response_format", "text_format") and isinstance(value, type):
        return value.__name__
    return to_plain(value)


def request_parameters(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the model parameters of a request (temperature, max_tokens, n, stream, ...).

    Tools are reduced to their names and a pydantic ``response_format`` to its class name.
    """
    parameters = {}
    for name, value in kwargs.items():
        if name in _NOT_PARAMETERS or value is None:
            continue
        if type(value) in _SCALARS:
            parameters[name] = value  # temperature, max_tokens, stream: the common case
            continue
        if not is_given(value):
            continue
        parameters[name] = _parameter_value(name, value)
    return parameters


def _tool_calls(value: Any) -> list[dict[str, Any]] | None:
    if not value:
        return None
    return [to_plain(call) for call in value]


def _choice_message(choice: Any) -> dict[str, Any]:
    get = reader(choice)
    message = get(choice, "message", None) or {}
    get_in_message = reader(message)
    entry: dict[str, Any] = {
        "index": get(choice, "index", None),
        "role": get_in_message(message, "role", None) or "assistant",
        "content": to_plain(get_in_message(message, "content", None)),
        "finish_reason": get(choice, "finish_reason", None),
    }
    tool_calls = _tool_calls(get_in_message(message, "tool_calls", None))
    if tool_calls:
        entry["tool_calls"] = tool_calls
    function_call = get_in_message(message, "function_call", None)
    if function_call:
        entry["function_call"] = to_plain(function_call)
    refusal = get_in_message(message, "refusal", None)
    if refusal:
        entry["refusal"] = refusal
    return entry


def _model_choice_message(choice: Any) -> dict[str, Any]:
    """Return what ``_choice_message`` returns, for a choice that is a model object.

    Reads the attributes directly instead of through a reader call per field. Raises
    AttributeError for an object that lacks one, and the caller then takes the general reader.
    """
    message = choice.message
    content = message.content
    entry: dict[str, Any] = {
        "index": choice.index,
        "role": message.role or "assistant",
        "content": content if content is None or type(content) is str else to_plain(content),
        "finish_reason": choice.finish_reason,
    }
    tool_calls = message.tool_calls
    if tool_calls:
        entry["tool_calls"] = [to_plain(call) for call in tool_calls]
    function_call = message.function_call
    if function_call:
        entry["function_call"] = to_plain(function_call)
    refusal = message.refusal
    if refusal:
        entry["refusal"] = refusal
    return entry


def _choice_messages(choices: Any) -> list[dict[str, Any]]:
    if type(choices) is list and choices and type(choices[0]) is not dict:
        try:
            return [_model_choice_message(choice) for choice in choices]
        except AttributeError:
            pass  # a message or choice class without one of the fields: read it field by field
    return [_choice_message(choice) for choice in choices]


def record_chat_response(span: Span, response: Any) -> None:
    """Record a chat completion (object or dict) on ``span``; None records no response."""
    if response is None:
        span.record_response(response_text=None)
        return

    get = reader(response)
    choices = get(response, "choices", None) or []
    messages = _choice_messages(choices)
    content = messages[0]["content"] if messages else None
    text = content if type(content) is str else text_of_content(content)
    usage = get(response, "usage", None)
    if usage is None:
        prompt_tokens = completion_tokens = total_tokens = None
    else:
        get_in_usage = reader(usage)
        prompt_tokens = get_in_usage(usage, "prompt_tokens", None)
        completion_tokens = get_in_usage(usage, "completion_tokens", None)
        total_tokens = get_in_usage(usage, "total_tokens", None)
    span.record_response(
        response_text=text,
        model=get(response, "model", None),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        response_messages=messages,
    )


class ChatChunkAccumulator:
    """Rebuild a chat completion from its stream chunks, one choice per ``index``.

    Tool-call deltas are merged by their ``index``: the first delta carries the id and the
    function name, later ones append to the arguments. Custom tool calls (no ``function``)
    keep their ``custom`` payload. Usage comes from whichever chunk carries it (the final
    usage-only chunk when ``stream_options.include_usage`` was set), else stays unknown.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: Any = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        """Fold one chunk into the accumulated response."""
        if chunk is None:
            return

        self.model = field(chunk, "model") or self.model
        usage = field(chunk, "usage")
        if usage:
            self.usage = usage
        for choice in field(chunk, "choices") or []:
            self._add_choice(choice)

    def _add_choice(self, choice: Any) -> None:
        index = field(choice, "index") or 0
        state = self._choices.setdefault(index, {"role": None, "content": [], "tool_calls": {}, "finish_reason": None})
        finish_reason = field(choice, "finish_reason")
        if finish_reason:
            state["finish_reason"] = finish_reason

        delta = field(choice, "delta")
        if delta is None:
            return
        state["role"] = field(delta, "role") or state["role"]
        content = field(delta, "content")
        if isinstance(content, str):
            state["content"].append(content)
        for call in field(delta, "tool_calls") or []:
            self._add_tool_call(state["tool_calls"], call)

    @staticmethod
    def _add_tool_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
        position = field(delta, "index")
        if position is None:
            position = len(calls)
        call = calls.setdefault(position, {"id": None, "type": None})
        call["id"] = field(delta, "id") or call["id"]
        call["type"] = field(delta, "type") or call["type"]

        function = field(delta, "function")
        if function is not None:
            target = call.setdefault("function", {"name": "", "arguments": ""})
            target["name"] += field(function, "name") or ""
            target["arguments"] += field(function, "arguments") or ""
        custom = field(delta, "custom")
        if custom is not None:
            target = call.setdefault("custom", {"name": "", "input": ""})
            target["name"] += field(custom, "name") or ""
            target["input"] += field(custom, "input") or ""

    def response(self) -> dict[str, Any]:
        """Return the accumulated response as a chat-completion dict."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": state["role"] or "assistant", "content": "".join(state["content"]) or None}
            if state["tool_calls"]:
                message["tool_calls"] = [state["tool_calls"][key] for key in sorted(state["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": state["finish_reason"]})
        return {"model": self.model, "choices": choices, "usage": to_plain(self.usage)}

    def record(self, span: Span) -> None:
        """Record the accumulated response on ``span``."""
        record_chat_response(span, self.response())
