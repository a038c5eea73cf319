"""Turn what a LangChain model receives into OpenAI-style chat message dicts.

A LangChain model takes a string, a prompt value (``ChatPromptValue``,
``StringPromptValue``), a list of ``BaseMessage`` objects or message-like items (tuples,
dicts, strings). Every trace stores the OpenAI chat shape, so this module maps roles
(``human`` to ``user``, ``ai`` to ``assistant``), tool calls (``args`` dict to a JSON
``arguments`` string) and content blocks (LangChain's standard image blocks to
``image_url`` parts with a data URL, which the tracer then replaces by an image
reference). It duck-types messages by their ``type`` attribute instead of importing
langchain-core classes, so it works on every langchain-core 1.x release.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "field_of",
    "messages_from_input",
    "messages_from_prompt",
    "message_to_dict",
    "parameters_from_call",
]

# BaseMessage.type (chunk classes drop the "MessageChunk" suffix first) to OpenAI role.
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "developer": "developer",
}

# The keys of BaseChatModel._get_ls_params / BaseLLM._get_ls_params -> trace parameter name.
_LS_PARAMETERS = {
    "ls_model_name": "model",
    "ls_provider": "provider",
    "ls_temperature": "temperature",
    "ls_max_tokens": "max_tokens",
    "ls_stop": "stop",
}

# Request parameters worth keeping on a trace when they are plain JSON scalars.
_PARAMETER_NAMES = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
)


# Class -> whether it is a pydantic model; a handful of LangChain classes in practice.
_model_classes: dict[type, bool] = {}


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Return the field ``name`` of a pydantic model (LangChain's messages and results), or ``default``.

    Reads the instance ``__dict__`` where pydantic stores field values, because ``getattr``
    of a missing attribute goes through pydantic's ``__getattr__`` and an exception, which
    costs several microseconds per lookup. Other objects fall back to ``getattr``.
    """
    cls = type(obj)
    is_model = _model_classes.get(cls)
    if is_model is None:
        is_model = _model_classes[cls] = hasattr(cls, "model_fields") and hasattr(cls, "__pydantic_fields__")
    if is_model:
        value = obj.__dict__.get(name, default)
        return default if value is None else value
    return getattr(obj, name, default)


def _role_of(message: Any) -> str:
    kind = str(field_of(message, "type", "") or "")
    if kind.endswith("MessageChunk"):
        kind = kind[: -len("MessageChunk")].lower()
    if kind == "chat" or kind == "":
        return str(field_of(message, "role", None) or "user")

    # langchain-openai marks developer messages as system messages with this key.
    extra = field_of(message, "additional_kwargs", None) or {}
    if kind == "system" and extra.get("__openai_role__") == "developer":
        return "developer"

    return _ROLES.get(kind, kind)


def _data_url(mime_type: Any, data: Any) -> str:
    return f"data:{mime_type or 'application/octet-stream'};base64,{data}"


def _image_part(url: Any) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _block_to_part(block: Any) -> Any:
    """Convert one LangChain content block to an OpenAI content part."""
    if isinstance(block, str):
        return {"type": "text", "text": block}
    if not isinstance(block, dict):
        return {"type": "text", "text": str(block)}

    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image_url":
        image_url = block.get("image_url")
        if isinstance(image_url, str):
            return _image_part(image_url)
        return {"type": "image_url", "image_url": dict(image_url or {})}
    if kind == "image":
        return _image_block_to_part(block)

    # Audio, files, reasoning and provider-specific blocks keep their own shape.
    return dict(block)


def _image_block_to_part(block: dict) -> dict:
    """Convert the standard image blocks of langchain-core 0.3 and 1.x and Anthropic's."""
    if block.get("url"):
        return _image_part(block["url"])
    if block.get("base64"):
        return _image_part(_data_url(block.get("mime_type"), block["base64"]))
    if block.get("source_type") == "base64" and block.get("data"):
        return _image_part(_data_url(block.get("mime_type"), block["data"]))
    if block.get("source_type") == "url" and block.get("url"):
        return _image_part(block["url"])

    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        return _image_part(_data_url(source.get("media_type"), source.get("data")))
    if isinstance(source, dict) and source.get("type") == "url":
        return _image_part(source.get("url"))

    return dict(block)


def _content_of(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return [_block_to_part(block) for block in content]
    return str(content)


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(arguments)


def tool_calls_of(message: Any) -> list[dict]:
    """Return the message's tool calls in the OpenAI ``tool_calls`` shape."""
    calls: list[dict] = []
    for call in list(field_of(message, "tool_calls", None) or []):
        calls.append(
            {
                "id": call.get("id"),
                "type": "function",
                "function": {"name": call.get("name"), "arguments": _arguments_text(call.get("args"))},
            }
        )
    # Calls whose arguments did not parse as JSON are kept with their raw text.
    for call in list(field_of(message, "invalid_tool_calls", None) or []):
        calls.append(
            {
                "id": call.get("id"),
                "type": "function",
                "function": {"name": call.get("name"), "arguments": _arguments_text(call.get("args"))},
            }
        )
    if calls:
        return calls

    # A streamed chunk that was never merged only carries tool_call_chunks.
    for chunk in list(field_of(message, "tool_call_chunks", None) or []):
        calls.append(
            {
                "id": chunk.get("id"),
                "type": "function",
                "function": {"name": chunk.get("name"), "arguments": chunk.get("args") or ""},
            }
        )
    return calls


def message_to_dict(message: Any) -> dict:
    """Convert one ``BaseMessage`` (or message chunk) to an OpenAI chat message dict."""
    role = _role_of(message)
    result: dict[str, Any] = {"role": role, "content": _content_of(field_of(message, "content", ""))}

    name = field_of(message, "name", None)
    if name:
        result["name"] = name

    if role == "assistant":
        calls = tool_calls_of(message)
        if calls:
            result["tool_calls"] = calls

    tool_call_id = field_of(message, "tool_call_id", None)
    if role == "tool" and tool_call_id is not None:
        result["tool_call_id"] = tool_call_id

    return result


def _item_to_dict(item: Any) -> dict:
    """Convert one item of a message-like list, as ``convert_to_messages`` accepts it."""
    if hasattr(item, "type") and hasattr(item, "content"):
        return message_to_dict(item)
    if isinstance(item, str):
        return {"role": "user", "content": item}
    if isinstance(item, (tuple, list)) and len(item) == 2:
        role, content = item
        role = str(role)
        return {"role": _ROLES.get(role, role), "content": _content_of(content)}
    if isinstance(item, dict):
        result = dict(item)
        role = str(result.get("role") or result.get("type") or "user")
        result.pop("type", None)
        result["role"] = _ROLES.get(role, role)
        result["content"] = _content_of(result.get("content"))
        return result

    return {"role": "user", "content": str(item)}


def messages_from_input(value: Any) -> list[dict]:
    """Convert any LangChain model input to a list of OpenAI chat message dicts.

    Accepts a string, a prompt value (anything with ``to_messages()``), a ``BaseMessage``
    or a sequence of message-like items. An object of any other type becomes one user
    message with its ``str()``.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]

    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        return [message_to_dict(message) for message in to_messages()]

    if hasattr(value, "type") and hasattr(value, "content"):
        return [message_to_dict(value)]
    if isinstance(value, (list, tuple)):
        return [_item_to_dict(item) for item in value]

    return [{"role": "user", "content": str(value)}]


def messages_from_prompt(prompt: str) -> list[dict]:
    """Wrap a text LLM's prompt string as one user message."""
    return [{"role": "user", "content": prompt}]


def _is_json_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, (str, int, float, bool)) for item in value)
    return False


def parameters_from_call(
    model: Any, stop: Any, kwargs: dict, run_metadata: Any = None
) -> tuple[str | None, dict]:
    """Return the requested model name and the request parameters of one call.

    The model's own settings are the ``ls_*`` values of ``_get_ls_params``, the hook
    langchain-core gives tracers. LangChain already stores them in the run manager's
    ``metadata`` for its callbacks, so ``run_metadata`` is read when given, because calling
    the hook again serializes the whole model. The call's keyword arguments override them.
    Tools are summarized by name because their schemas can be large.
    """
    parameters: dict[str, Any] = {}
    model_name: str | None = None

    if isinstance(run_metadata, dict) and "ls_provider" in run_metadata:
        ls_params = run_metadata
    else:
        try:
            ls_params = model._get_ls_params(stop=stop, **kwargs)
        except Exception:  # a provider's hook may reject unknown kwargs; the trace goes on
            ls_params = {}
    for key, name in _LS_PARAMETERS.items():
        value = ls_params.get(key) if isinstance(ls_params, dict) else None
        if key == "ls_model_name":
            model_name = value if isinstance(value, str) else None
        elif value is not None and _is_json_scalar(value):
            parameters[name] = list(value) if isinstance(value, tuple) else value

    for key in _PARAMETER_NAMES:
        value = kwargs.get(key)
        if value is not None and _is_json_scalar(value):
            parameters[key] = list(value) if isinstance(value, tuple) else value
    if stop is not None and _is_json_scalar(stop):
        parameters["stop"] = list(stop) if isinstance(stop, tuple) else stop

    tools = kwargs.get("tools")
    if isinstance(tools, (list, tuple)) and tools:
        parameters["tools"] = [_tool_name(tool) for tool in tools]

    if model_name is None:
        model_name = _model_name_of(model)
    return model_name, parameters


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and function.get("name"):
            return str(function["name"])
        return str(tool.get("name")) if tool.get("name") else None
    return getattr(tool, "name", None) or getattr(tool, "__name__", None)


def _model_name_of(model: Any) -> str | None:
    for attribute in ("model_name", "model", "model_id", "deployment_name"):
        value = field_of(model, attribute)
        if isinstance(value, str) and value:
            return value
    return None
