"""``ct_trace_id`` and ``ct_score`` on the results of traced calls, without changing them.

openai and litellm responses are pydantic models that accept extra attributes: setting
``result.ct_trace_id = ...`` would add an extra field, so ``model_dump()``,
``model_dump_json()``, ``==`` and pickling would change. Instead, ``attach()`` installs two
non-data descriptors on the result's class (once per class) and records the trace id in a
side table keyed by ``id(result)``. A weak reference with a callback removes the entry when
the result is garbage collected, so nothing per call outlives the result, and a reused id
never finds a stale entry because the entry keeps the weak reference to compare.

The instance itself is never touched: dumps, pickles, deep copies and equality are those
of the untraced result. A copy is a new object, so it carries no trace id.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
import weakref
from datetime import datetime, timezone
from typing import Any, Callable

from kaizen_sdk import _tracer

__all__ = ["attach", "trace_id_of", "score_trace"]

logger = logging.getLogger("kaizen_sdk.result")

# Reentrant: the weak-reference callback that takes it may run, through the garbage
# collector, in a thread that already holds it.
_lock = threading.RLock()
# id(result) -> (weak reference to result, trace id)
_entries: dict[int, tuple[weakref.ref[Any], str]] = {}


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry[0] is ref:
            del _entries[key]


def trace_id_of(result: Any) -> str | None:
    """Return the trace id attached to ``result``, or None."""
    entry = _entries.get(id(result))
    if entry is None or entry[0]() is not result:
        return None
    return entry[1]


class _TraceIdAttribute:
    """Class attribute ``ct_trace_id``: the trace id of this result (a UUID string)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        trace_id = trace_id_of(instance)
        if trace_id is None:
            raise AttributeError(f"{type(instance).__name__!r} object has no attribute 'ct_trace_id' (not traced)")
        return trace_id


class _ScoreAttribute:
    """Class attribute ``ct_score``: ``result.ct_score(score, scored_by="sdk")`` scores the trace."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        trace_id = trace_id_of(instance)
        if trace_id is None:
            raise AttributeError(f"{type(instance).__name__!r} object has no attribute 'ct_score' (not traced)")
        return _scorer(trace_id)


def _scorer(trace_id: str) -> Callable[..., None]:
    def ct_score(score: float, scored_by: str = "sdk", *, name: str | None = None, comment: str | None = None) -> None:
        """Score this call's trace with ``score`` in [0, 1]; the score is sent after the trace."""
        score_trace(trace_id, score, scored_by=scored_by, name=name, comment=comment)

    return ct_score


_ATTRIBUTES = {"ct_trace_id": _TraceIdAttribute, "ct_score": _ScoreAttribute}
_prepared: set[type] = set()


def _prepare_class(cls: type) -> bool:
    """Install the two class attributes on ``cls`` once; return whether it can carry them."""
    if cls in _prepared:
        return True

    for name, factory in _ATTRIBUTES.items():
        existing = cls.__dict__.get(name)
        if existing is not None and not isinstance(existing, factory):
            return False  # the class defines its own attribute of that name: leave it alone
        if existing is None and not isinstance(getattr(cls, name, None), factory):
            try:
                type.__setattr__(cls, name, factory())
            except (TypeError, AttributeError):
                return False  # built-in or immutable type
    _prepared.add(cls)
    return True


def attach(result: Any, span: _tracer.Span | None) -> bool:
    """Give ``result`` the ``ct_trace_id`` and ``ct_score`` of ``span``; return whether it worked.

    Results that cannot be weakly referenced (``str``, ``dict``, ``None``) get nothing:
    the trace id then comes from ``kaizen_sdk.last_trace_id()``. Never raises.
    """
    if span is None or result is None:
        return False

    try:
        key = id(result)
        ref = weakref.ref(result, lambda dead, key=key: _forget(key, dead))
        if type(result) not in _prepared and not _prepare_class(type(result)):
            return False
        with _lock:
            _entries[key] = (ref, span.trace_id)
        return True
    except TypeError:
        return False  # no weak reference support
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        _tracer.log_failure("result.attach", f"could not attach trace {span.trace_id} to the result", exc)
        return False


def _check_score(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
        raise ValueError(f"score must be a number in [0, 1], got {score!r}")
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score!r}; rescale it, e.g. 4 of 5 stars -> 0.8")
    return float(score)


# The CT server's limits on a score's text fields. Checked here too, because a score the
# server rejects is only counted in stats() and logged at most once a minute.
MAX_SHORT_TEXT_CHARS = 200
MAX_COMMENT_CHARS = 100_000


def _check_text(field: str, value: Any, max_chars: int, *, required: bool) -> None:
    if value is None and not required:
        return

    if not isinstance(value, str) or (required and not value):
        expected = "a non-empty string" if required else "a string or None"
        raise ValueError(f"{field} must be {expected}, got {value!r}")
    if len(value) > max_chars:
        raise ValueError(f"{field} must be at most {max_chars} characters, got {len(value)}; shorten it")


_no_exporter_logged = False


def score_trace(
    trace_id: str,
    score: float,
    *,
    scored_by: str = "sdk",
    name: str | None = None,
    comment: str | None = None,
) -> None:
    """Queue a score for ``trace_id`` through the exporter, after the trace itself.

    Raises ``ValueError`` for a score outside [0, 1] or an empty ``scored_by``; those are
    mistakes in the caller's code. When no API key is configured the score is dropped
    and a warning is logged once.
    """
    global _no_exporter_logged
    value = _check_score(score)
    _check_text("scored_by", scored_by, MAX_SHORT_TEXT_CHARS, required=True)
    _check_text("name", name, MAX_SHORT_TEXT_CHARS, required=False)
    _check_text("comment", comment, MAX_COMMENT_CHARS, required=False)

    item = {
        "id": str(uuid.uuid4()),
        "trace_id": trace_id,
        "score": value,
        "scored_by": scored_by,
        "name": name,
        "comment": comment,
        "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
    }

    # A stream still being read has not queued its trace: the span queues the score after it.
    span = _tracer.open_span(trace_id)
    if span is not None and span.add_score(item):
        return

    from kaizen_sdk import _exporter

    exporter = _exporter.get_exporter()
    if exporter is None:
        if not _no_exporter_logged:
            _no_exporter_logged = True
            logger.warning("no Kaizen API key configured; score for trace %s dropped", trace_id)
        return
    exporter.enqueue_score(item)
