"""openai integration: chat completions, structured outputs and the Responses API.

``install`` patches, per the table in ``_compat``: ``Completions.create`` / ``.parse``,
``AsyncCompletions.create`` / ``.parse``, ``Responses.create`` / ``.parse`` and
``AsyncResponses.create`` / ``.parse``, plus ``parse`` of the raw-response classes that
``.with_raw_response`` and ``.with_streaming_response`` return. ``client.chat.completions
.stream()`` and ``client.responses.stream()`` call the patched ``create`` and are traced
through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kaizen_sdk import _patching
from kaizen_sdk._tracer import InstrumentOptions
from kaizen_sdk.integrations.openai import _compat, _patch

__all__ = ["install", "uninstall"]

logger = logging.getLogger("kaizen_sdk.instrument")

_patched: list[tuple[type, str]] = []


def install(options: Callable[[], InstrumentOptions]) -> None:
    """Patch openai; on failure restore what was patched and raise."""
    with _patching.patch_lock:
        if _patched:
            _patch.set_options(options)
            return

        targets = _compat.targets()
        if not targets:
            import openai

            logger.warning(
                "openai %s has no chat completions or Responses API class where the SDK looks for it; "
                "nothing is traced. Supported releases: openai>=1.109.1,<4",
                getattr(openai, "__version__", "(unknown version)"),
            )
        try:
            for target in targets:
                if _patching.wrap(target.owner, target.name, _patch.call_wrapper(target.api, target.is_async)):
                    _patched.append((target.owner, target.name))
            for cls, is_async in _compat.raw_response_classes():
                if _patching.wrap(cls, "parse", _patch.parse_wrapper(is_async)):
                    _patched.append((cls, "parse"))
        except Exception:
            uninstall()
            raise
        _patch.set_options(options)


def uninstall() -> None:
    """Restore every openai original; a no-op when not installed."""
    with _patching.patch_lock:
        _patch.set_options(None)
        while _patched:
            owner, name = _patched.pop()
            _patching.unwrap(owner, name)
