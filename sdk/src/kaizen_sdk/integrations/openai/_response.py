"""Record what an openai call returned: chat completions and Responses API objects.

Chat completions (``ChatCompletion``, ``ParsedChatCompletion``) share the reader in
``integrations._chat``. A Responses API object has a list of output items: its text is
the concatenation of the ``output_text`` parts of its messages, and its usage counts
``input_tokens`` / ``output_tokens``.
"""

from __future__ import annotations

from typing import Any

from kaizen_sdk._tracer import Span
from kaizen_sdk.integrations import to_plain
from kaizen_sdk.integrations._chat import field, record_chat_response

__all__ = ["record_response", "ResponsesEventAccumulator"]


def _output_text(output: Any) -> str | None:
    texts = []
    for item in output or []:
        if field(item, "type") != "message":
            continue
        for part in field(item, "content") or []:
            if field(part, "type") == "output_text" and isinstance(field(part, "text"), str):
                texts.append(field(part, "text"))
    return "".join(texts) if texts else None


def record_responses_response(span: Span, response: Any) -> None:
    """Record a Responses API object (or dict) on ``span``."""
    if response is None:
        span.record_response(response_text=None)
        return

    output = field(response, "output") or []
    usage = field(response, "usage")
    tool_calls = [to_plain(item) for item in output if field(item, "type") not in ("message", "reasoning")]
    detail: dict[str, Any] = {"status": field(response, "status")}
    if tool_calls:
        detail["tool_calls"] = tool_calls
    span.record_response(
        response_text=_output_text(output),
        model=field(response, "model"),
        prompt_tokens=field(usage, "input_tokens"),
        completion_tokens=field(usage, "output_tokens"),
        total_tokens=field(usage, "total_tokens"),
        detail=detail,
    )


def record_response(api: str, span: Span, response: Any) -> None:
    """Record the response of a call to ``api`` ("chat" or "responses") on ``span``."""
    if api == "responses":
        record_responses_response(span, response)
    else:
        record_chat_response(span, response)


class ResponsesEventAccumulator:
    """Rebuild a Responses API result from its stream events.

    The final ``response.completed`` (or ``response.incomplete`` / ``response.failed``)
    event carries the whole response; until it arrives, the text deltas are kept so an
    abandoned stream still records its partial text.
    """

    _FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self) -> None:
        self._deltas: list[str] = []
        self._final: Any = None
        self._model: str | None = None

    def add(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "response.output_text.delta":
            delta = field(event, "delta")
            if isinstance(delta, str):
                self._deltas.append(delta)
        elif kind in self._FINAL_EVENTS:
            self._final = field(event, "response")
        elif kind == "response.created":
            self._model = field(field(event, "response"), "model")

    def record(self, span: Span) -> None:
        if self._final is not None:
            record_responses_response(span, self._final)
            return
        span.record_response(response_text="".join(self._deltas) or None, model=self._model)
