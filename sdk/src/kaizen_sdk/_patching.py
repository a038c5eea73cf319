"""Replace attributes of classes and modules with wrappers, and put the originals back.

The integrations patch library callables in place (``Completions.create``,
``litellm.completion``, ``BaseChatModel._generate``). Libraries inspect those callables:
LangChain reads ``inspect.signature(_generate)`` to decide whether to pass ``run_manager``
and compares ``_stream`` by identity, so a wrapper must look like the original
(``functools.update_wrapper`` copies name, qualified name, docstring and ``__dict__`` and
sets ``__wrapped__``, which ``inspect.signature`` follows). Each patch is recorded in a
registry so that ``unwrap`` restores exactly what was there: the very same object when the
owner defined the attribute itself, or no attribute at all when it was inherited.

All registry changes happen under one lock, so concurrent ``instrument()`` calls from
several threads patch each attribute once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "wrap",
    "unwrap",
    "is_wrapped",
    "original_of",
    "mark_coroutine_function",
    "patch_lock",
]

# Attribute set on every wrapper this module installs; its value is the wrapped callable.
_MARKER = "__kaizen_wrapped__"

# Reentrant because an integration may call wrap() several times while holding it.
patch_lock = threading.RLock()


@dataclass
class _Patch:
    owner: Any
    name: str
    original: Any  # the raw attribute from owner.__dict__ (a function, staticmethod, ...)
    owned: bool  # False when the attribute was inherited or missing from owner.__dict__
    installed: Any  # the raw attribute this module put in its place


# Keyed by (id(owner), name); the record keeps the owner alive, so the id stays valid.
_patches: dict[tuple[int, str], _Patch] = {}


def mark_coroutine_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """Make a plain function that returns a coroutine pass ``iscoroutinefunction`` checks.

    ``inspect.markcoroutinefunction`` exists from Python 3.12; on 3.11 the
    ``asyncio.coroutines._is_coroutine`` marker satisfies ``asyncio.iscoroutinefunction``
    (``inspect.iscoroutinefunction`` on 3.11 only looks at code flags and stays False).
    """
    marker = getattr(inspect, "markcoroutinefunction", None)
    if marker is not None:
        return marker(function)

    function._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return function


def _unwrap_descriptor(raw: Any) -> tuple[Callable[..., Any], Callable[[Any], Any]]:
    """Return the function inside a raw attribute and how to rebuild the same descriptor."""
    if isinstance(raw, staticmethod):
        return raw.__func__, staticmethod
    if isinstance(raw, classmethod):
        return raw.__func__, classmethod
    return raw, lambda function: function


def _copy_metadata(wrapper: Callable[..., Any], original: Callable[..., Any]) -> None:
    functools.update_wrapper(wrapper, original)
    # update_wrapper merges the original's __dict__, which may carry the marker of an
    # earlier wrapper from another tool; point it at what this wrapper really wraps.
    setattr(wrapper, _MARKER, original)
    if inspect.iscoroutinefunction(original) and not inspect.iscoroutinefunction(wrapper):
        mark_coroutine_function(wrapper)


def wrap(owner: Any, name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> bool:
    """Replace ``owner.name`` by ``make_wrapper(original)``; return False when already wrapped.

    ``make_wrapper`` receives the plain function (the ``__func__`` of a staticmethod or
    classmethod) and returns the replacement. The replacement gets the original's name,
    qualified name, docstring, ``__dict__``, ``__wrapped__`` and descriptor type. Raises ``AttributeError`` when ``owner`` has no attribute ``name``.
    """
    with patch_lock:
        key = (id(owner), name)
        if key in _patches:
            return False

        owned = name in vars(owner)
        raw = vars(owner)[name] if owned else getattr(owner, name)
        function, rebuild = _unwrap_descriptor(raw)
        wrapper = make_wrapper(function)
        _copy_metadata(wrapper, function)
        installed = rebuild(wrapper)
        setattr(owner, name, installed)
        _patches[key] = _Patch(owner=owner, name=name, original=raw, owned=owned, installed=installed)
        return True


def unwrap(owner: Any, name: str) -> bool:
    """Restore ``owner.name`` exactly as it was before ``wrap``; return False when not wrapped.

    When someone else replaced the attribute after us, their replacement stays in place
    (removing it would undo their patch), and only our record is dropped.
    """
    with patch_lock:
        patch = _patches.pop((id(owner), name), None)
        if patch is None:
            return False

        current = vars(owner).get(name)
        if current is not patch.installed:
            return True
        if patch.owned:
            setattr(owner, name, patch.original)
        else:
            delattr(owner, name)
        return True


def is_wrapped(owner: Any, name: str) -> bool:
    """Return whether ``owner.name`` currently carries a wrapper installed by ``wrap``."""
    with patch_lock:
        return (id(owner), name) in _patches


def original_of(function: Any) -> Any:
    """Return the callable a wrapper from this module wraps, or ``function`` itself."""
    return getattr(function, _MARKER, function)
