"""Turn the arguments of ``litellm.completion`` / ``acompletion`` into span inputs.

litellm's signature is ``completion(model, messages=[], ...)``, so ``model`` and
``messages`` may come positionally; every other argument is a keyword.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaizen_sdk.integrations._chat import chat_messages, request_parameters

__all__ = ["request_of", "positional"]


def positional(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    """Return (model, messages) from positional or keyword arguments."""
    model = kwargs.get("model", args[0] if args else None)
    messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
    return model, messages


def request_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None, dict[str, Any]]:
    """Return (messages, requested model, parameters) of a litellm call."""
    model, messages = positional(args, kwargs)
    parameters = request_parameters({key: value for key, value in kwargs.items() if key != "acompletion"})
    return chat_messages(messages), model if isinstance(model, str) else None, parameters
