"""litellm integration: ``litellm.completion`` and ``litellm.acompletion``, streamed or not.

The patches replace the attributes of the ``litellm`` module. Code that ran
``from litellm import completion`` before ``instrument(litellm)`` keeps a reference to
the original function and is not traced; importing after ``instrument()`` (or calling
``litellm.completion(...)``) is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kaizen_sdk import _patching
from kaizen_sdk._tracer import InstrumentOptions
from kaizen_sdk.integrations.litellm import _compat, _patch

__all__ = ["install", "uninstall"]

_patched: list[tuple[Any, str]] = []


def install(options: Callable[[], InstrumentOptions]) -> None:
    """Patch litellm; on failure restore what was patched and raise."""
    with _patching.patch_lock:
        if _patched:
            _patch.set_options(options)
            return

        module = _compat.module()
        try:
            for name, is_async in _compat.ENTRY_POINTS:
                if _patching.wrap(module, name, _patch.wrapper_factory(is_async)):
                    _patched.append((module, name))
        except Exception:
            uninstall()
            raise
        _patch.set_options(options)


def uninstall() -> None:
    """Restore litellm's originals; a no-op when not installed."""
    with _patching.patch_lock:
        _patch.set_options(None)
        while _patched:
            owner, name = _patched.pop()
            _patching.unwrap(owner, name)
