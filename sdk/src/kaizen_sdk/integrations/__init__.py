"""Integrations: one package per instrumented library, and helpers they share.

Each integration package (``openai``, ``litellm``, ``langchain``) exports two functions
that ``kaizen_sdk.instrument`` and ``uninstrument`` call under their lock:

- ``install(options: Callable[[], InstrumentOptions]) -> None`` patches the library. The
  wrappers call ``options()`` at call time, so a later ``instrument()`` with another
  ``task_map`` takes effect without patching again. On failure it restores whatever it
  had patched and raises.
- ``uninstall() -> None`` restores every original it patched; a no-op when not installed.

The helpers below turn request and response objects (pydantic models, TypedDicts, plain
objects) into plain JSON-ready values without changing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["to_plain", "is_given", "given_kwargs", "text_of_content"]

_MAX_DEPTH = 30


def is_given(value: Any) -> bool:
    """Return False for the "argument not given" sentinels of openai (``Omit``, ``NotGiven``)."""
    name = type(value).__name__
    return name not in ("Omit", "NotGiven", "_Omit", "_NotGiven")


def given_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` without the entries whose value is an openai sentinel."""
    return {key: value for key, value in kwargs.items() if is_given(value)}


def to_plain(value: Any, depth: int = 0) -> Any:
    """Return a JSON-ready copy of ``value``: pydantic models dumped, tuples as lists.

    Reads the value and never changes it. Objects that are neither models nor containers
    become their ``str``; bytes become a size marker so no raw payload lands in a trace.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth > _MAX_DEPTH:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(key): to_plain(item, depth + 1) for key, item in value.items() if is_given(item)}
    if isinstance(value, (list, tuple)):
        return [to_plain(item, depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"

    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return to_plain(dump(exclude_none=True), depth + 1)
        except Exception:  # noqa: BLE001 - fall back to the attribute dict below
            pass
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict):
        return {key: to_plain(item, depth + 1) for key, item in fields.items() if not key.startswith("_")}
    return str(value)


def text_of_content(content: Any) -> str | None:
    """Return the text of a message content: a string, or the text parts of a part list."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    return str(content)
