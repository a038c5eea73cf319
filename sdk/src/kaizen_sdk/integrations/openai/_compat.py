"""Locations of the patched classes in each supported openai release (1.109.1 to 3.x).

Every difference between openai versions is resolved here, so the rest of the
integration never checks a version. The test suite runs against openai 1.109.1 and the
newest release:

- ``Completions`` / ``AsyncCompletions`` live in ``openai.resources.chat.completions``.
- ``chat.completions.parse`` (structured outputs) is on those classes (releases before
  1.92 kept it under ``client.beta``; they are below the supported range).
- The Responses API lives in ``openai.resources.responses``.
- ``.with_raw_response`` returns ``LegacyAPIResponse``; ``.with_streaming_response``
  returns ``APIResponse`` / ``AsyncAPIResponse``. Their parse cache (``_parsed_by_type``)
  and default parse type (``_cast_to``) are private attributes read only here.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Target", "targets", "stream_classes", "raw_response_classes"]


@dataclass(frozen=True)
class Target:
    """One method to patch: ``owner.name``, the API it calls and whether it is async."""

    owner: type
    name: str
    api: str  # "chat" (chat completions) or "responses" (Responses API)
    is_async: bool


def _class(module_name: str, class_name: str) -> type | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, class_name, None)
    return found if isinstance(found, type) else None


def targets() -> list[Target]:
    """Return the methods to patch in the installed openai release."""
    found: list[Target] = []
    chat = "openai.resources.chat.completions"
    responses = "openai.resources.responses"

    for class_name, is_async in (("Completions", False), ("AsyncCompletions", True)):
        owner = _class(chat, class_name)
        if owner is not None:
            found.append(Target(owner, "create", "chat", is_async))
            if "parse" in vars(owner):
                found.append(Target(owner, "parse", "chat", is_async))

    for class_name, is_async in (("Responses", False), ("AsyncResponses", True)):
        owner = _class(responses, class_name)
        if owner is None:
            continue
        found.append(Target(owner, "create", "responses", is_async))
        if "parse" in vars(owner):
            found.append(Target(owner, "parse", "responses", is_async))
    return found


@functools.cache
def stream_classes() -> tuple[type, ...]:
    """Return openai's sync and async stream classes."""
    import openai

    return tuple(cls for cls in (getattr(openai, "Stream", None), getattr(openai, "AsyncStream", None)) if cls)


@functools.cache
def raw_response_classes() -> tuple[tuple[type, bool], ...]:
    """Return the raw-response classes and whether their ``parse`` is a coroutine function."""
    found = []
    for module_name, class_name, is_async in (
        ("openai._legacy_response", "LegacyAPIResponse", False),
        ("openai._response", "APIResponse", False),
        ("openai._response", "AsyncAPIResponse", True),
    ):
        cls = _class(module_name, class_name)
        if cls is not None and "parse" in vars(cls):
            found.append((cls, is_async))
    return tuple(found)


def parse_cache(raw_response: Any) -> dict[Any, Any] | None:
    """Return the raw response's cache of parsed results, keyed by the parsed type."""
    cache = getattr(raw_response, "_parsed_by_type", None)
    return cache if isinstance(cache, dict) else None


def default_parse_type(raw_response: Any) -> Any:
    """Return the type ``parse()`` without ``to=`` produces (its cache key)."""
    return getattr(raw_response, "_cast_to", None)


@functools.cache
def raw_classes() -> tuple[type, ...]:
    """Return the raw-response classes alone, for ``isinstance``."""
    return tuple(cls for cls, _ in raw_response_classes())
