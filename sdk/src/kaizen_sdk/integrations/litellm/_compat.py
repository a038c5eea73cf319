"""Locations of what the litellm integration patches, in each supported release (1.53.1 to 1.x).

``litellm.completion`` and ``litellm.acompletion`` are module attributes in every supported
release: plain functions from ``litellm.main`` in 1.53, and from
``litellm.chat_completions.dispatch`` in the newest releases (that one returns a coroutine
when called with ``acompletion=True``). litellm 1.53 calls openai's client underneath for
``openai/`` models; the newest releases do not. The stream class ``CustomStreamWrapper`` moved from
``litellm.utils`` to ``litellm.litellm_core_utils.streaming_handler`` and is re-exported
by ``litellm.utils`` in every supported release.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

__all__ = ["ENTRY_POINTS", "stream_classes", "module"]

# (attribute of the litellm module, whether it returns an awaitable)
ENTRY_POINTS: tuple[tuple[str, bool], ...] = (("completion", False), ("acompletion", True))


def module() -> Any:
    """Return the imported litellm module."""
    return importlib.import_module("litellm")


@functools.cache
def stream_classes() -> tuple[type, ...]:
    """Return litellm's stream classes."""
    found = []
    for module_name in ("litellm.litellm_core_utils.streaming_handler", "litellm.utils"):
        try:
            cls = getattr(importlib.import_module(module_name), "CustomStreamWrapper", None)
        except ImportError:
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)
