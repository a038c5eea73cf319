"""Task detection taken where the user's call enters LangChain, for spans started later.

Some LangChain paths hop before the model call starts: ``Runnable.batch`` runs ``invoke``
in a thread pool, ``BaseChatModel.agenerate`` runs each message list in its own asyncio
task, ``Runnable.abatch`` gathers tasks. The user's frames are gone on the far side of
such a hop, so the entry wrappers run ``detect_task`` on the caller's thread for every
message list of the call and store the results in a ``ContextVar``. Thread pools
(LangChain's ``ContextThreadPoolExecutor``) and asyncio tasks copy the context, so the
span wrapper on the far side looks its detection up by the message list.

Lists are matched by role and text only, because LangChain normalizes content blocks
between the entry and the model call (images move from v0 to v1 block shapes).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterable, Iterator
from typing import Any

from kaizen_sdk import _tracer
from kaizen_sdk.integrations.langchain._response import text_of

__all__ = ["captured", "lookup", "key_of"]

_detections: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "kaizen_langchain_detections", default=None
)


def key_of(messages: list[dict]) -> str:
    """Return the lookup key of a message list: its roles and texts."""
    pairs = [(message.get("role"), text_of(message.get("content"))) for message in messages]
    return json.dumps(pairs, ensure_ascii=False, default=str)


def _detect(messages: list[dict]) -> Any:
    from kaizen_sdk._detection import detect_task

    return detect_task(messages)


@contextlib.contextmanager
def captured(message_lists: Iterable[list[dict]]) -> Iterator[None]:
    """Detect the task of each message list here, and keep the results while the block runs.

    Lists detected by an outer entry keep their detection. Nothing is detected while a
    span is active, because no call inside one is traced. Never raises on its own.
    """
    token = None
    try:
        if _tracer.active_span() is None:
            current = _detections.get()
            updated = dict(current or {})
            for messages in message_lists:
                key = key_of(messages)
                if key not in updated:
                    updated[key] = _detect(messages)
            if len(updated) != len(current or {}):
                token = _detections.set(updated)
    except Exception as exc:  # noqa: BLE001 - the span falls back to detecting by itself
        _tracer.log_failure("langchain.detection", "task detection at the LangChain entry point failed", exc)

    try:
        yield
    finally:
        if token is not None:
            _detections.reset(token)


def lookup(messages: list[dict]) -> Any:
    """Return the detection an entry wrapper stored for ``messages``, or None."""
    current = _detections.get()
    if not current:
        return None
    return current.get(key_of(messages))
