"""Turn an openai request (the keyword arguments of ``create`` / ``parse``) into span inputs.

Chat completions carry ``messages`` already in the trace's shape. A Responses API
request carries ``instructions`` and ``input`` (a string or a list of items), which are
turned into chat messages: instructions as a system message, a string input as a user
message, ``function_call`` items as assistant tool calls, ``function_call_output`` items
as tool messages, and ``input_text`` parts as text parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kaizen_sdk.integrations import is_given, to_plain
from kaizen_sdk.integrations._chat import chat_messages, field, request_parameters

__all__ = ["request_of"]


def _responses_part(part: Any) -> Any:
    plain = to_plain(part)
    if isinstance(plain, dict) and plain.get("type") in ("input_text", "output_text"):
        return {"type": "text", "text": plain.get("text", "")}
    return plain


def _responses_item(item: Any) -> dict[str, Any]:
    kind = field(item, "type")
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": field(item, "call_id"), "content": to_plain(field(item, "output"))}
    if kind == "function_call":
        call = {
            "id": field(item, "call_id"),
            "type": "function",
            "function": {"name": field(item, "name"), "arguments": field(item, "arguments")},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    role = field(item, "role")
    if role is None:
        return {"role": "user", "content": to_plain(item)}
    content = field(item, "content")
    if isinstance(content, Iterable) and not isinstance(content, (str, Mapping)):
        content = [_responses_part(part) for part in content]
    else:
        content = to_plain(content)
    return {"role": role, "content": content}


def responses_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the chat messages equivalent to a Responses API request."""
    messages: list[dict[str, Any]] = []
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})

    items = kwargs.get("input")
    if items is None or not is_given(items):
        return messages
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    messages.extend(_responses_item(item) for item in items)
    return messages


def request_of(api: str, kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
    """Return (messages, requested model, parameters) of a call to ``api``."""
    model = kwargs.get("model")
    model = model if isinstance(model, str) else None
    if api == "responses":
        return responses_messages(kwargs), model, request_parameters(kwargs)
    return chat_messages(kwargs.get("messages")), model, request_parameters(kwargs)
