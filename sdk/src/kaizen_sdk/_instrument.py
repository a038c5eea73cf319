"""``instrument()`` and ``uninstrument()``: choose the integration for a module and patch it.

The user passes the module they imported (``instrument(openai)``); the integration is
chosen by the module's ``__name__``, so the SDK never imports a library the application
does not use. ``langchain`` and ``langchain_core`` share one integration, because the chat
model classes live in ``langchain_core``.

Patching happens once per integration, under one lock, so concurrent or repeated calls
are safe. A repeated ``instrument()`` patches nothing again but applies its options
(``task_map``, ``ignore_unmapped``) to later calls, because the wrappers read them at
call time.

Without an API key the exporter logs one warning on ``kaizen_sdk.instrument`` and
drops traces; the patched calls run normally.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any

from kaizen_sdk._tracer import InstrumentOptions

__all__ = ["instrument", "uninstrument", "instrumented_libraries"]

logger = logging.getLogger("kaizen_sdk.instrument")

# Module name the user passes -> integration package under kaizen_sdk.integrations.
_INTEGRATIONS = {
    "openai": "openai",
    "litellm": "litellm",
    "langchain": "langchain",
    "langchain_core": "langchain",
}

_lock = threading.RLock()
_options: dict[str, InstrumentOptions] = {}
_installed: set[str] = set()


def _integration_name(library: Any) -> str:
    name = library if isinstance(library, str) else getattr(library, "__name__", None)
    if not isinstance(library, (str, types.ModuleType)) or name not in _INTEGRATIONS:
        supported = ", ".join(sorted(_INTEGRATIONS))
        raise ValueError(
            f"cannot instrument {library!r}: pass one of the supported modules ({supported}), "
            "for example `import openai; kaizen_sdk.instrument(openai)`"
        )
    return _INTEGRATIONS[name]


def _check_options(task_map: Any, ignore_unmapped: Any) -> dict[str, str]:
    if task_map is None:
        task_map = {}
    if not isinstance(task_map, Mapping):
        raise ValueError(f"task_map must be a mapping of variable names to task names, got {task_map!r}")
    for key, value in task_map.items():
        if not isinstance(key, str) or not isinstance(value, str) or not value:
            raise ValueError(
                f"task_map entries must map a variable name (str) to a non-empty task name (str), "
                f"got {key!r}: {value!r}"
            )
    if not isinstance(ignore_unmapped, bool):
        raise ValueError(f"ignore_unmapped must be True or False, got {ignore_unmapped!r}")
    return dict(task_map)


def _configure_exporter(api_key: str | None, base_url: str | None, exporter_keywords: dict[str, Any]) -> Any:
    from kaizen_sdk import _config, _exporter

    known = set(getattr(_config, "EXPORTER_KEYWORDS", ()))
    unknown = sorted(set(exporter_keywords) - known)
    if unknown:
        raise TypeError(
            f"instrument() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"accepted: task_map, ignore_unmapped, {', '.join(sorted(known))}"
        )

    settings = _config.resolve_settings(api_key=api_key, base_url=base_url, **exporter_keywords)
    _exporter.configure(settings)
    return settings


def instrument(
    library: Any,
    *,
    task_map: Mapping[str, str] | None = None,
    ignore_unmapped: bool = False,
    api_key: str | None = None,
    base_url: str | None = None,
    **exporter_keywords: Any,
) -> None:
    """Patch ``library`` (the imported ``openai``, ``litellm``, ``langchain`` or ``langchain_core``
    module) so that each LLM call made through it is traced.

    ``task_map`` maps the variable that contains a prompt to a task name; with
    ``ignore_unmapped=True`` calls whose variable is not in ``task_map`` are not traced.
    ``api_key`` / ``base_url`` and the other exporter keywords override the ``KAIZEN_*``
    environment variables. Calling it again patches nothing twice. Raises ``ValueError``
    for an unsupported module or invalid option values, and ``TypeError`` for an unknown
    keyword.
    """
    integration = _integration_name(library)
    checked_map = _check_options(task_map, ignore_unmapped)
    settings = _configure_exporter(api_key, base_url, exporter_keywords)
    sample_rate = getattr(settings, "sample_rate", 1.0)
    options = InstrumentOptions(
        task_map=checked_map,
        ignore_unmapped=ignore_unmapped,
        sample_rate=1.0 if sample_rate is None else float(sample_rate),
    )

    with _lock:
        _options[integration] = options
        if integration not in _installed:
            module = importlib.import_module(f"kaizen_sdk.integrations.{integration}")
            module.install(lambda: _options.get(integration, options))
            _installed.add(integration)
            logger.info("instrumented %s", integration)



def uninstrument(library: Any) -> None:
    """Restore the originals that ``instrument(library)`` patched.

    A library that is not instrumented is left as it is. Raises ``ValueError`` for an
    unsupported module.
    """
    integration = _integration_name(library)
    with _lock:
        if integration not in _installed:
            return

        module = sys.modules.get(f"kaizen_sdk.integrations.{integration}")
        if module is not None:
            module.uninstall()
        _installed.discard(integration)
        _options.pop(integration, None)
        logger.info("uninstrumented %s", integration)


def instrumented_libraries() -> list[str]:
    """Return the names of the integrations currently installed."""
    with _lock:
        return sorted(_installed)
