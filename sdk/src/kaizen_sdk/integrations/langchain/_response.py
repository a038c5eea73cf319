"""Read the response text, model name and token counts out of LangChain results.

Chat models return ``ChatResult`` (internally) and ``AIMessage`` (to the user); text LLMs
return ``LLMResult``. Token counts live in two places depending on the provider and the
path: the standard ``AIMessage.usage_metadata`` (``input_tokens``, ``output_tokens``,
``total_tokens``) and the provider's ``token_usage`` dict in ``llm_output`` or
``response_metadata`` (OpenAI names: ``prompt_tokens``, ``completion_tokens``,
``total_tokens``). This module prefers the standard field and falls back to the provider's.
A count that no source reports stays ``None`` (unknown), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kaizen_sdk.integrations.langchain._request import field_of, message_to_dict

__all__ = [
    "ResponseInfo",
    "from_message",
    "from_chat_result",
    "from_llm_result",
    "from_text",
    "text_of",
]


@dataclass
class ResponseInfo:
    """The response fields of one trace: text, model, token counts, one message per choice."""

    text: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    messages: list[dict] = field(default_factory=list)  # one assistant message per choice


def text_of(content: Any) -> str:
    """Join the text of a message's content: a string, or a list of blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)

    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def _count(value: Any) -> int | None:
    # bool is an int subclass, but True is not a token count.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _tokens_from_usage_metadata(usage: Any) -> tuple[int | None, int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None, None
    return _count(usage.get("input_tokens")), _count(usage.get("output_tokens")), _count(usage.get("total_tokens"))


def _tokens_from_token_usage(usage: Any) -> tuple[int | None, int | None, int | None]:
    """Read a provider's usage dict: OpenAI's names first, then Anthropic's."""
    if not isinstance(usage, dict):
        return None, None, None

    prompt = _count(usage.get("prompt_tokens"))
    if prompt is None:
        prompt = _count(usage.get("input_tokens"))
    completion = _count(usage.get("completion_tokens"))
    if completion is None:
        completion = _count(usage.get("output_tokens"))
    return prompt, completion, _count(usage.get("total_tokens"))


def _set_tokens(info: ResponseInfo, tokens: tuple[int | None, int | None, int | None]) -> None:
    prompt, completion, total = tokens
    if prompt is None and completion is None and total is None:
        return

    info.prompt_tokens = prompt
    info.completion_tokens = completion
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    info.total_tokens = total


def _has_tokens(info: ResponseInfo) -> bool:
    return info.prompt_tokens is not None or info.completion_tokens is not None or info.total_tokens is not None


def _model_from_metadata(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return None
    for key in ("model_name", "model", "model_id"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def from_message(message: Any, llm_output: Any = None) -> ResponseInfo:
    """Read an ``AIMessage`` or ``AIMessageChunk``; ``llm_output`` is the fallback source."""
    info = ResponseInfo()
    if message is None:
        return info

    info.text = text_of(field_of(message, "content", None))
    info.messages = [message_to_dict(message)]

    metadata = field_of(message, "response_metadata", None) or {}
    info.model = _model_from_metadata(metadata) or _model_from_metadata(llm_output)

    _set_tokens(info, _tokens_from_usage_metadata(field_of(message, "usage_metadata", None)))
    if not _has_tokens(info):
        _set_tokens(info, _tokens_from_token_usage(metadata.get("token_usage") if isinstance(metadata, dict) else None))
    if not _has_tokens(info) and isinstance(llm_output, dict):
        _set_tokens(info, _tokens_from_token_usage(llm_output.get("token_usage")))
    return info


def from_chat_result(result: Any) -> ResponseInfo:
    """Read a ``ChatResult``: the first generation gives the text, every one a message."""
    generations = list(field_of(result, "generations", None) or [])
    llm_output = field_of(result, "llm_output", None)
    if not generations:
        info = ResponseInfo(model=_model_from_metadata(llm_output))
        _set_tokens(info, _tokens_from_token_usage((llm_output or {}).get("token_usage") if isinstance(llm_output, dict) else None))
        return info

    info = from_message(field_of(generations[0], "message", None), llm_output)
    for generation in generations[1:]:
        message = field_of(generation, "message", None)
        if message is not None:
            info.messages.append(message_to_dict(message))
    return info


def from_llm_result(result: Any, index: int = 0) -> ResponseInfo:
    """Read the generations for prompt ``index`` of a text LLM's ``LLMResult``.

    ``llm_output["token_usage"]`` sums every prompt of the call, so the counts are kept
    only when the call had a single prompt.
    """
    info = ResponseInfo()
    all_generations = list(field_of(result, "generations", None) or [])
    llm_output = field_of(result, "llm_output", None)
    info.model = _model_from_metadata(llm_output)
    if index < len(all_generations):
        generations = list(all_generations[index] or [])
        if generations:
            info.text = field_of(generations[0], "text", None)
            info.messages = [{"role": "assistant", "content": field_of(g, "text", "")} for g in generations]
            info.model = info.model or _model_from_metadata(field_of(generations[0], "generation_info", None))

    if len(all_generations) == 1 and isinstance(llm_output, dict):
        _set_tokens(info, _tokens_from_token_usage(llm_output.get("token_usage")))
    return info


def from_text(text: str | None) -> ResponseInfo:
    """Wrap the text a text LLM returned (``invoke``, ``stream``) with nothing else known."""
    info = ResponseInfo(text=text)
    if text is not None:
        info.messages = [{"role": "assistant", "content": text}]
    return info
