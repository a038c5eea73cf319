"""LangChain integration: traces chat models and text LLMs of langchain-core 1.x.

``kaizen_sdk.instrument(langchain)`` and ``instrument(langchain_core)`` both land here,
because the model base classes (``BaseChatModel``, ``BaseLLM``) live in
``langchain_core.language_models``. ``_patch`` lists which methods are wrapped and why;
``_request`` and ``_response`` turn LangChain objects into the trace's OpenAI chat shape;
``_stream`` wraps ``stream`` / ``astream``; ``_callsite`` carries task detection across
LangChain's thread pools and tasks.

What the user gets back: the ``AIMessage`` of ``invoke``, ``ainvoke``, ``batch`` and of a
chain ending in a chat model carries ``ct_trace_id`` and ``ct_score``. Text LLMs return
``str``, streams yield chunks and chains may end in a parser, so there
``kaizen_sdk.last_trace_id()`` gives the id (``RunnableSequence`` is patched so that it
works after a chain call too).
"""

from __future__ import annotations

import logging
from typing import Callable

from kaizen_sdk import _patching
from kaizen_sdk._tracer import InstrumentOptions
from kaizen_sdk.integrations.langchain import _patch, _spans

__all__ = ["install", "uninstall"]

logger = logging.getLogger("kaizen_sdk.integrations.langchain")


def _base_classes() -> tuple[type, type, type]:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.language_models.llms import BaseLLM
    from langchain_core.runnables.base import RunnableSequence

    return BaseChatModel, BaseLLM, RunnableSequence


def install(options: Callable[[], InstrumentOptions]) -> None:
    """Patch ``BaseChatModel`` and ``BaseLLM``; ``options()`` is read at call time."""
    chat_model, text_llm, sequence = _base_classes()
    with _patching.patch_lock:
        _spans.set_options(options)
        try:
            _patch.install(chat_model, text_llm, sequence)
        except BaseException:
            _spans.set_options(None)
            raise
    logger.debug("patched %s and %s", chat_model.__qualname__, text_llm.__qualname__)


def uninstall() -> None:
    """Restore every method ``install`` patched; a no-op when nothing is patched."""
    chat_model, text_llm, sequence = _base_classes()
    with _patching.patch_lock:
        _patch.uninstall(chat_model, text_llm, sequence)
        _spans.set_options(None)
