"""The life of one traced LLM call, shared by every integration.

An integration calls ``start_span()`` on the caller's thread, where the user's call enters
the library, so that task detection sees the user's frames. ``start_span`` returns ``None``
when the call is not traced: another span is active in the same context (LangChain calling
openai underneath, litellm calling openai), ``ignore_unmapped`` drops it, sampling drops it,
or tracing itself failed. The integration then runs the original call, records the response
or the error on the span and calls ``Span.end()``, which hands the exporter's queue a
snapshot of the span. Only the work that must see the call as it happens runs on the
caller's thread: task detection, a shallow copy of the request, reading the response into
plain values, the clock and the trace id.
The snapshot holds references to values that nobody changes after the call (fresh copies
made by the integrations, strings, numbers), and the exporter's thread turns it into the
trace dict of the wire format: media references, ``prompt_text``, JSON-ready values,
the ``started_at`` text. Fake exporters in tests get the trace dict at once.

Two ``ContextVar``s carry the state, so threads and asyncio tasks never see each other's
spans: ``_active_span`` is set only while the original call runs (``Span.activate()``), and
``_last_trace_id`` is set where the call was made, for ``last_trace_id()``.

Tracing must never break the user's call: every failure inside this module is logged
through ``log_failure`` (rate-limited) and swallowed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import hashlib
import logging
import os
import queue
import random
import re
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any

__all__ = [
    "InstrumentOptions",
    "Span",
    "start_span",
    "active_span",
    "last_trace_id",
    "log_failure",
    "prompt_text_of",
]

logger = logging.getLogger("kaizen_sdk.tracer")

_active_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar("kaizen_active_span", default=None)
_last_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("kaizen_last_trace_id", default=None)

# Task name used when task detection itself failed, so the call is still traced.
UNNAMED_TASK = "unnamed"


@dataclass(frozen=True)
class InstrumentOptions:
    """Per-library tracing options given to ``instrument()``.

    ``task_map`` maps a detected task name (the variable that held the prompt, or the
    calling function's name) to the task name to record. With ``ignore_unmapped`` a call whose variable is not in ``task_map`` is not
    traced, unless the task was set explicitly with ``kaizen_sdk.task()``. ``sample_rate``
    is the fraction of calls traced, in [0, 1].
    """

    task_map: Mapping[str, str] = field(default_factory=dict)
    ignore_unmapped: bool = False
    sample_rate: float = 1.0


# --- rate-limited failure logging -------------------------------------------------------

_LOG_INTERVAL_S = 60.0
_log_lock = threading.RLock()
_log_state: dict[str, list[float]] = {}  # key -> [last logged monotonic time, suppressed count]


def log_failure(key: str, message: str, exc: BaseException | None = None) -> None:
    """Log a tracing failure at most once per minute per ``key``, counting the repeats.

    ``key`` groups repeats of the same failure (for example ``"openai.response"``). The log
    record carries the traceback of ``exc`` when given. Never raises.
    """
    try:
        now = time.monotonic()
        with _log_lock:
            state = _log_state.get(key)
            if state is not None and now - state[0] < _LOG_INTERVAL_S:
                state[1] += 1
                return

            suppressed = int(state[1]) if state is not None else 0
            _log_state[key] = [now, 0]

        if suppressed:
            message = f"{message} ({suppressed} similar failures not logged in the last minute)"
        logger.warning("tracing failed, the LLM call is unaffected: %s", message, exc_info=exc)
    except Exception:  # noqa: BLE001 - logging must not raise into the user's call
        pass


# --- messages ---------------------------------------------------------------------------

_DATA_URL = re.compile(r"^data:(?P<media_type>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,", re.IGNORECASE)


def _reference(payload: str, media_type: str, kind: str) -> dict[str, Any]:
    """Return a reference part (type, media type, decoded size, SHA-256) for base64 data."""
    try:
        raw = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raw = payload.encode("ascii", "replace")
    return {"type": kind, "media_type": media_type, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def _media_ref(data_url: str, kind: str = "image_ref") -> dict[str, Any] | None:
    """Return a reference part for a base64 data URL, or None when it is not one."""
    match = _DATA_URL.match(data_url)
    if match is None:
        return None

    media_type = match.group("media_type") or "application/octet-stream"
    return _reference(data_url[match.end():], media_type, kind)


# Shortest inline payload replaced by a reference; shorter strings are kept as they are.
_MIN_INLINE_CHARS = 256


# NOTE: _payload.clean() replaces base64 media again before sending, with its own rules.
# The two must produce the same reference shape; this one should move into _payload.
def _replace_media(part: Any) -> Any:
    """Replace base64 media inside one content part by a reference with its size and hash.

    Images become ``image_ref`` parts; inline audio and files become ``media_ref`` parts
    with the same fields. URLs that are not ``data:`` URLs are kept.
    """
    if not isinstance(part, dict):
        return part

    kind = part.get("type")
    if kind in ("image_url", "input_image"):
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        ref = _media_ref(url) if isinstance(url, str) else None
        return ref if ref is not None else part
    if kind not in ("input_audio", "file", "input_file"):
        return part

    # Audio and file parts carry base64 in a "data" or "file_data" field, nested under the
    # part type in the chat shape ({"type": "file", "file": {...}}) and flat in the
    # Responses API shape; "file_data" may itself be a data URL.
    inner = part.get(kind) if isinstance(part.get(kind), dict) else part
    for key in ("data", "file_data"):
        value = inner.get(key)
        if not isinstance(value, str) or len(value) < _MIN_INLINE_CHARS:
            continue
        ref = _media_ref(value, "media_ref")
        if ref is not None:
            return ref
        # OpenAI's input_audio parts name only the format ("wav"); store a MIME type.
        audio_format = inner.get("format")
        media_type = inner.get("mime_type") or (f"audio/{audio_format}" if audio_format else "application/octet-stream")
        return _reference(value, str(media_type), "media_ref")
    return part


def _normalize_message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": "user", "content": str(message)}

    content = message.get("content")
    if isinstance(content, list):
        message = {**message, "content": [_replace_media(part) for part in content]}
    return message


def _text_of_content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


def prompt_text_of(messages: list[dict[str, Any]]) -> str:
    """Return the text of all messages joined by blank lines (image parts are skipped)."""
    texts = (_text_of_content(message.get("content")) for message in messages if isinstance(message, dict))
    return "\n\n".join(text for text in texts if text)


# --- work deferred out of garbage-collector callbacks ------------------------------------

# Finalizers and weak-reference callbacks run wherever the garbage collector runs, possibly
# while this thread holds a lock of the exporter or of the application, so ending a span
# there could deadlock. They only put the work on this queue (SimpleQueue.put is safe to
# call from such callbacks), and one daemon thread runs it.
_deferred: queue.SimpleQueue[tuple[Any, tuple[Any, ...]]] = queue.SimpleQueue()
_reaper: threading.Thread | None = None
_reaper_pid: int | None = None
_reaper_lock = threading.Lock()


def defer(function: Any, *args: Any) -> None:
    """Run ``function(*args)`` soon on the SDK's background thread; safe inside finalizers."""
    _deferred.put((function, args))


def _run_deferred() -> None:
    while True:
        function, args = _deferred.get()
        try:
            function(*args)
        except Exception as exc:  # noqa: BLE001 - keep the thread alive
            log_failure("deferred", "deferred tracing work failed", exc)


def _forget_reaper_after_fork() -> None:
    global _reaper
    _reaper = None  # the thread did not survive the fork; the next start_span starts one


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_reaper_after_fork)


def ensure_background_thread() -> None:
    """Start the thread that runs deferred work, once per process (again after a fork).

    Called from ``start_span``, never from a finalizer: starting a thread takes locks.
    The fork hook clears ``_reaper`` in the child, so the common case costs no system call.
    """
    global _reaper, _reaper_pid
    if _reaper is not None:
        return

    with _reaper_lock:
        if _reaper is not None and _reaper_pid == os.getpid():
            return
        thread = threading.Thread(target=_run_deferred, name="kaizen-finalizer", daemon=True)
        thread.start()
        _reaper, _reaper_pid = thread, os.getpid()


def drain_deferred(timeout: float | None = 5.0) -> bool:
    """Wait until the work deferred so far has run; return False on timeout.

    ``timeout=None`` waits as long as it takes. Called on the background thread itself (a
    deferred function that calls ``flush()``), it returns True at once instead of waiting
    for itself.
    """
    if threading.current_thread() is _reaper:
        return True

    ensure_background_thread()
    done = threading.Event()
    defer(done.set)
    return done.wait(timeout)


# --- spans ------------------------------------------------------------------------------

# Spans that started and have not ended yet, so a score given before the trace is queued
# (a stream still being read) waits for it. Removed in Span.end(). The values are weak
# references, so a span that can no longer end (its coroutine was never awaited) does not
# stay alive here. A plain dict of references costs a tenth of a WeakValueDictionary per
# call. The few dead entries that such spans leave are swept once the dict doubles in size.
# Single dict operations need no lock.
_open_spans: dict[str, weakref.ref[Span]] = {}
_open_sweep_at = 1024
# Taken by every span's end() and add_score(). Reentrant because the garbage collector may
# end an abandoned stream's span on a thread that has already acquired it.
_span_lock = threading.RLock()


def _register_open(span: Span) -> None:
    global _open_sweep_at
    _open_spans[span.trace_id] = weakref.ref(span)
    if len(_open_spans) < _open_sweep_at:
        return

    for trace_id, ref in list(_open_spans.items()):
        if ref() is None:
            _open_spans.pop(trace_id, None)
    _open_sweep_at = max(1024, 2 * len(_open_spans))


class Span:
    """One traced call: its request, then its response or error, then its end.

    ``trace_id`` is known from the start, so the result can carry ``ct_trace_id`` before
    the trace is queued. ``end()`` is idempotent and thread-safe (a stream may be ended by
    its reader and by the garbage collector).
    """

    __slots__ = (
        "trace_id",
        "library",
        "task",
        "messages",
        "prompt_text",
        "model",
        "parameters",
        "detection",
        "started_at",
        "_start",
        "_latency_ms",
        "response_text",
        "response",
        "response_model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "error",
        "_ended",
        "_pending_scores",
        "__weakref__",
    )

    def __init__(
        self,
        *,
        library: str,
        task: str,
        messages: list[dict[str, Any]],
        prompt_text: str | None,
        model: str | None,
        parameters: dict[str, Any],
        detection: Any,
    ) -> None:
        self.trace_id = new_trace_id()
        self.library = library
        self.task = task
        self.messages = messages
        self.prompt_text = prompt_text
        self.model = model
        self.parameters = parameters
        self.detection = detection
        self.started_at = time.time_ns()  # wall clock; formatted on the exporter's thread
        self._start = time.perf_counter()
        self._latency_ms: float | None = None
        self.response_text: str | None = None
        self.response: dict[str, Any] | None = None
        self.response_model: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.total_tokens: int | None = None
        self.error: str | None = None
        self._ended = False
        self._pending_scores: list[dict[str, Any]] | None = None  # created by the first add_score()

    @contextlib.contextmanager
    def activate(self) -> Iterator[Span]:
        """Mark this span active in the current context while the original call runs.

        Calls made inside (a library calling another instrumented library) then get no
        span of their own. Works inside coroutines too: each asyncio task has its context.
        """
        token = _active_span.set(self)
        try:
            yield self
        finally:
            _active_span.reset(token)

    def restart_clock(self) -> None:
        """Start timing again now: an async call starts when its coroutine is first awaited."""
        if self._latency_ms is None:
            self.started_at = time.time_ns()
            self._start = time.perf_counter()

    def _stop_clock(self) -> None:
        if self._latency_ms is None:
            self._latency_ms = (time.perf_counter() - self._start) * 1000.0

    def record_response(
        self,
        *,
        response_text: str | None,
        model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        total_tokens: int | None = None,
        response_messages: list[Any] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record what the call returned; token counts stay None when unknown (never 0).

        ``response_messages`` lists every choice's message; ``detail`` adds other fields
        of the trace's ``response`` object (tool calls, finish reasons, output items).
        """
        self._stop_clock()
        self.response_text = response_text
        if model:
            self.response_model = model
        # Token counts are ints, and anything else (a bool, a float, a mock) is unknown. The
        # checks are inline because three calls of a helper cost more than the checks.
        prompt_tokens = prompt_tokens if type(prompt_tokens) is int else _count(prompt_tokens)
        completion_tokens = completion_tokens if type(completion_tokens) is int else _count(completion_tokens)
        total_tokens = total_tokens if type(total_tokens) is int else _count(total_tokens)
        if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
            total_tokens = prompt_tokens + completion_tokens
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.total_tokens = total_tokens

        response: dict[str, Any] = {}
        if response_messages:
            response["choices"] = response_messages
        if detail:
            response.update(detail)
        self.response = response or None

    def record_error(self, exc: BaseException) -> None:
        """Record that the call raised ``exc`` as ``"TypeName: message"``."""
        self._stop_clock()
        self.error = f"{type(exc).__name__}: {exc}"

    def add_score(self, score: dict[str, Any]) -> bool:
        """Keep ``score`` until the trace is queued; return False when it already is."""
        with _span_lock:
            if self._ended:
                return False
            if self._pending_scores is None:
                self._pending_scores = []
            self._pending_scores.append(score)
            return True

    def end(self, *, incomplete: bool = False) -> None:
        """Build the trace and queue it, then any scores given meanwhile. Idempotent."""
        with _span_lock:
            if self._ended:
                return
            self._ended = True
            scores, self._pending_scores = self._pending_scores, None

        _open_spans.pop(self.trace_id, None)

        try:
            if self._latency_ms is None:  # _stop_clock() inline, because this runs on every call
                self._latency_ms = (time.perf_counter() - self._start) * 1000.0
            _enqueue(_EndedSpan(self, incomplete), scores)
        except Exception as exc:  # noqa: BLE001 - never raise into the user's call
            log_failure("span.end", f"could not queue trace {self.trace_id}", exc)

        # Drop the request and response so an ended span that is still referenced (by a
        # stream proxy the user keeps) does not hold them; the snapshot has its own references.
        self.messages = []
        self.response = None

    @property
    def ended(self) -> bool:
        """Whether ``end()`` ran."""
        return self._ended

    def to_trace(self, *, incomplete: bool = False) -> dict[str, Any]:
        """Return the trace dict of the ingest wire format."""
        return _EndedSpan(self, incomplete).to_trace()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# The formatted whole second of the last call: traces come in bursts within one second, and
# formatting a datetime costs more than the rest of the timestamp.
_last_second: tuple[int, str] = (-1, "")


def _iso_utc(time_ns: int) -> str:
    """Format nanoseconds since the epoch as ISO 8601 in UTC with microseconds and a Z."""
    global _last_second
    second, nanoseconds = divmod(time_ns, 1_000_000_000)
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second = (second, prefix)
    return f"{prefix}.{nanoseconds // 1000:06d}Z"


class _EndedSpan:
    """What an ended span hands to the exporter: a snapshot of its fields, not yet a dict.

    Taking the snapshot costs a few attribute reads on the caller's thread. ``to_trace()``
    does the rest wherever it runs (the exporter's thread for the real exporter). The
    exporter recognizes the snapshot by its ``to_trace`` method and its ``trace_id``.
    """

    __slots__ = ("trace_id", "_span_fields", "_incomplete")

    def __init__(self, span: Span, incomplete: bool) -> None:
        self.trace_id = span.trace_id
        self._incomplete = bool(incomplete)
        self._span_fields = (
            span.library,
            span.task,
            span.messages,
            span.prompt_text,
            span.model,
            span.parameters,
            span.detection,
            span.started_at,
            span._latency_ms,
            span.response_text,
            span.response,
            span.response_model,
            span.prompt_tokens,
            span.completion_tokens,
            span.total_tokens,
            span.error,
        )

    def to_trace(self, *, json_safe: bool = True) -> dict[str, Any]:
        """Return the trace dict of the ingest wire format.

        With ``json_safe=False`` the messages, parameters and inputs are not copied with
        everything JSON cannot carry turned into strings. The exporter requests that when no
        ``redact`` callable will read the dict, because its encoder does the same conversion
        while it writes the JSON, and a second walk over every message costs microseconds
        per trace.
        """
        (
            library,
            task,
            messages,
            prompt_text,
            model,
            parameters,
            detection,
            started_at,
            latency_ms,
            response_text,
            response,
            response_model,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            error,
        ) = self._span_fields

        normalized = [_normalize_message(message) for message in messages]
        if prompt_text is None:
            prompt_text = prompt_text_of(normalized)
        inputs = getattr(detection, "inputs", None)
        if json_safe:
            normalized, inputs, parameters = _json_safe(normalized), _json_safe(inputs), _json_safe(parameters)
        return {
            "id": self.trace_id,
            "task": task,
            "messages": normalized,
            "prompt_text": prompt_text,
            "response_text": response_text,
            "response": response,
            "model": response_model or model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "latency_ms": latency_ms if latency_ms is not None else 0.0,
            "started_at": _iso_utc(started_at),
            "error": error,
            "incomplete": self._incomplete,
            "source_variable": getattr(detection, "variable", None),
            "source_file": getattr(detection, "file", None),
            "source_line": getattr(detection, "line", None),
            "detection_rule": getattr(detection, "rule", None),
            "inputs": inputs,
            "template": getattr(detection, "template", None),
            "library": library,
            "parameters": parameters,
        }


_getrandbits = random.getrandbits
_UUID_VERSION_MASK = 0xF000 << 64
_UUID_VERSION_4 = 0x4000 << 64
_UUID_VARIANT_MASK = 0xC000 << 48
_UUID_VARIANT_RFC_4122 = 0x8000 << 48
# The version and variant bits cleared, then set, in one step each.
_UUID_KEPT_BITS = ~(_UUID_VERSION_MASK | _UUID_VARIANT_MASK)
_UUID_FIXED_BITS = _UUID_VERSION_4 | _UUID_VARIANT_RFC_4122


def new_trace_id() -> str:
    """Return a random version-4 UUID string.

    The bits come from ``random`` (Mersenne Twister, seeded from the OS and re-seeded in a
    forked child), not ``uuid.uuid4()``: ``os.urandom`` releases the GIL, and on a busy
    process the caller then waits for the exporter's thread to hand it back. A trace id is
    an idempotency key, not a secret, so it needs uniqueness, not unpredictability.
    """
    bits = (_getrandbits(128) & _UUID_KEPT_BITS) | _UUID_FIXED_BITS
    text = bits.to_bytes(16, "big").hex()  # the same text as f"{bits:032x}", in half the time
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Return ``value`` with everything JSON cannot carry turned into strings."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth > 20:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, depth + 1) for item in value]
    return str(value)


_no_exporter_warned = False


def _enqueue(ended: _EndedSpan, scores: list[dict[str, Any]] | None) -> None:
    global _no_exporter_warned
    _exporter = _modules().exporter

    exporter = _exporter.get_exporter()
    if exporter is None:
        if not _no_exporter_warned:
            _no_exporter_warned = True
            logger.debug("no exporter configured; trace %s dropped", ended.trace_id)
        return

    # The real exporter builds the dict on its own thread; any other exporter (a test's
    # collector) gets the wire format it expects.
    exporter.enqueue_trace(ended if isinstance(exporter, _exporter.Exporter) else ended.to_trace())
    if scores:
        for score in scores:
            exporter.enqueue_score(score)


def open_span(trace_id: str) -> Span | None:
    """Return the span of ``trace_id`` when it has not ended yet."""
    ref = _open_spans.get(trace_id)
    return ref() if ref is not None else None


def active_span() -> Span | None:
    """Return the span active in the current context, if any."""
    return _active_span.get()


def last_trace_id() -> str | None:
    """Return the trace id of the last traced call made in the current context.

    "Current context" is the thread, or the asyncio task, that made the call: a call made
    in another thread or task does not change it. Useful when the result cannot carry
    ``ct_trace_id`` (LangChain text LLMs return a plain ``str``, streams yield chunks).
    None when no traced call was made in this context.
    """
    return _last_trace_id.get()


class _LazyModules:
    """The modules this one calls but cannot import at its top: they import this module."""

    def __init__(self) -> None:
        from kaizen_sdk import _detection, _exporter

        self.detection = _detection
        self.exporter = _exporter


_lazy_modules: _LazyModules | None = None


def _modules() -> _LazyModules:
    # An import statement inside a per-call function costs about a microsecond each time.
    global _lazy_modules
    if _lazy_modules is None:
        _lazy_modules = _LazyModules()
    return _lazy_modules


def _apply_task_map(detection: Any, options: InstrumentOptions) -> str | None:
    """Return the task name to record, or None when ``ignore_unmapped`` drops the call."""
    if detection is None:
        return None if options.ignore_unmapped else UNNAMED_TASK

    return _modules().detection.apply_task_map(detection, options.task_map, options.ignore_unmapped)


def _detect(messages: list[dict[str, Any]], caller: FrameType | None) -> Any:
    if caller is None:
        # The walk then starts here and skips the SDK's own frames on its way out.
        return _modules().detection.detect_task(messages)
    return _modules().detection.detect_task(messages, caller=caller)


def start_span(
    library: str,
    messages: list[dict[str, Any]],
    *,
    model: str | None,
    parameters: dict[str, Any] | None = None,
    prompt_text: str | None = None,
    options: InstrumentOptions,
    detection: Any = None,
    caller: FrameType | None = None,
) -> Span | None:
    """Start a span for one call, or return None when this call is not traced.

    Call it on the caller's thread where the user's call enters the library, before any
    hop to an executor or a new task: task detection walks the caller's frames.
    ``messages`` are plain dicts in the OpenAI chat shape, and ``parameters`` a plain
    dict, both built for this call: the trace is built from them later, on the exporter's
    thread, so nobody may change them afterwards. There base64 media in content parts is
    replaced by an ``image_ref`` (type, size, SHA-256). ``detection`` is a result of
    ``detect_task`` taken earlier on the caller's thread, for a call that reaches its span
    in an executor thread or a new task (LangChain's ``batch`` and ``agenerate``). Never raises.
    """
    try:
        if _active_span.get() is not None:
            return None
        if _reaper is None:  # the common case skips the call
            ensure_background_thread()
        if options.sample_rate < 1.0 and random.random() >= options.sample_rate:
            return None

        # Detection needs dicts; the integrations already pass dicts, so this rarely copies.
        normalized = messages
        for message in messages:
            if type(message) is not dict:
                normalized = [message if isinstance(message, dict) else _normalize_message(message) for message in messages]
                break
        if detection is None:
            try:
                detection = _detect(normalized, caller)
            except Exception as exc:  # noqa: BLE001 - an unnamed trace beats no trace
                log_failure("detection", "task detection failed; the trace is named 'unnamed'", exc)
                detection = None

        if detection is not None and not options.task_map and not options.ignore_unmapped:
            task = detection.task  # what _apply_task_map() returns when there is no map
        else:
            task = _apply_task_map(detection, options)
            if task is None:
                return None

        span = Span(
            library=library,
            task=task,
            messages=normalized,
            prompt_text=prompt_text,
            model=model,
            parameters=parameters or {},
            detection=detection,
        )
        _register_open(span)
        _last_trace_id.set(span.trace_id)
        return span
    except Exception as exc:  # noqa: BLE001 - never raise into the user's call
        log_failure(f"{library}.start", f"could not start a {library} span", exc)
        return None
