"""Tests of spans: the trace dict, nesting, task_map, sampling, context isolation, logging."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from dataclasses import dataclass

import pytest

from kaizen_sdk import _tracer
from kaizen_sdk._tracer import InstrumentOptions, start_span


@dataclass(frozen=True)
class FakeDetection:
    task: str = "SUMMARIZE_PROMPT"
    rule: str = "template"
    variable: str | None = "SUMMARIZE_PROMPT"
    file: str | None = "app.py"
    line: int | None = 12
    inputs: dict | None = None
    template: str | None = "Summarize {ticket}"


class Collector:
    def __init__(self):
        self.items = []

    def enqueue_trace(self, trace):
        self.items.append(("trace", trace))

    def enqueue_score(self, score):
        self.items.append(("score", score))

    @property
    def traces(self):
        return [item for kind, item in self.items if kind == "trace"]


@pytest.fixture
def collector(monkeypatch):
    from kaizen_sdk import _exporter

    sink = Collector()
    monkeypatch.setattr(_exporter, "get_exporter", lambda: sink)
    return sink


@pytest.fixture
def detection(monkeypatch):
    holder = {"value": FakeDetection()}
    monkeypatch.setattr(_tracer, "_detect", lambda messages, caller=None: holder["value"])
    return holder


MESSAGES = [{"role": "user", "content": "Summarize ticket 7"}]


def test_span_builds_wire_trace(collector, detection):
    span = start_span("openai", MESSAGES, model="gpt-4o", parameters={"temperature": 0.2}, options=InstrumentOptions())
    span.record_response(response_text="ok", model="gpt-4o-2024", prompt_tokens=3, completion_tokens=1)
    span.end()

    [trace] = collector.traces
    json.dumps(trace)
    assert trace["id"] == span.trace_id
    assert trace["task"] == "SUMMARIZE_PROMPT"
    assert trace["messages"] == MESSAGES
    assert trace["prompt_text"] == "Summarize ticket 7"
    assert trace["response_text"] == "ok"
    assert trace["model"] == "gpt-4o-2024"
    assert trace["prompt_tokens"] == 3
    assert trace["completion_tokens"] == 1
    assert trace["total_tokens"] == 4
    assert trace["latency_ms"] > 0
    assert trace["started_at"].endswith("Z")
    assert trace["error"] is None
    assert trace["incomplete"] is False
    assert trace["source_variable"] == "SUMMARIZE_PROMPT"
    assert trace["source_file"] == "app.py"
    assert trace["source_line"] == 12
    assert trace["detection_rule"] == "template"
    assert trace["template"] == "Summarize {ticket}"
    assert trace["library"] == "openai"
    assert trace["parameters"] == {"temperature": 0.2}


def test_unknown_tokens_stay_none(collector, detection):
    span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    span.record_response(response_text="x")
    span.end()
    trace = collector.traces[0]
    assert trace["prompt_tokens"] is None
    assert trace["completion_tokens"] is None
    assert trace["total_tokens"] is None
    assert trace["model"] == "m"


def test_error_recorded_as_type_and_message(collector, detection):
    span = start_span("litellm", MESSAGES, model="m", options=InstrumentOptions())
    span.record_error(TimeoutError("took too long"))
    span.end()
    assert collector.traces[0]["error"] == "TimeoutError: took too long"


def test_end_is_idempotent(collector, detection):
    span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    span.end()
    span.end(incomplete=True)
    assert len(collector.traces) == 1
    assert collector.traces[0]["incomplete"] is False


def test_nested_span_suppressed(collector, detection):
    outer = start_span("langchain", MESSAGES, model="m", options=InstrumentOptions())
    with outer.activate():
        assert start_span("openai", MESSAGES, model="m", options=InstrumentOptions()) is None
    inner_after = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    assert inner_after is not None


def test_task_map_renames(collector, detection):
    options = InstrumentOptions(task_map={"SUMMARIZE_PROMPT": "summarize"})
    span = start_span("openai", MESSAGES, model="m", options=options)
    assert span.task == "summarize"


def test_ignore_unmapped_drops(collector, detection):
    options = InstrumentOptions(task_map={"OTHER": "other"}, ignore_unmapped=True)
    assert start_span("openai", MESSAGES, model="m", options=options) is None


def test_ignore_unmapped_keeps_override(collector, detection):
    detection["value"] = FakeDetection(task="chosen", rule="override", variable=None)
    options = InstrumentOptions(ignore_unmapped=True)
    span = start_span("openai", MESSAGES, model="m", options=options)
    assert span is not None
    assert span.task == "chosen"


def test_sample_rate_zero_traces_nothing(collector, detection):
    assert start_span("openai", MESSAGES, model="m", options=InstrumentOptions(sample_rate=0.0)) is None


def test_detection_failure_names_unnamed(collector, monkeypatch, caplog):
    def broken(messages, caller=None):
        raise RuntimeError("frames unavailable")

    monkeypatch.setattr(_tracer, "_detect", broken)
    monkeypatch.setattr(_tracer, "_log_state", {})
    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.tracer"):
        span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    assert span.task == _tracer.UNNAMED_TASK
    assert "task detection failed" in caplog.text


def test_base64_image_replaced_by_reference(collector, detection):
    import base64

    payload = base64.b64encode(b"\x89PNG" + b"\0" * 5000).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}"}},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
            ],
        }
    ]
    span = start_span("openai", messages, model="m", options=InstrumentOptions())
    span.end()
    parts = collector.traces[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_ref"
    assert parts[1]["media_type"] == "image/png"
    assert parts[1]["bytes"] == 5004
    assert len(parts[1]["sha256"]) == 64
    assert parts[2]["image_url"]["url"] == "https://example.invalid/cat.png"
    assert collector.traces[0]["prompt_text"] == "What is this?"
    assert messages[0]["content"][1]["image_url"]["url"].startswith("data:image/png")


def test_last_trace_id_per_thread(collector, detection):
    main_span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    seen = {}

    def worker():
        seen["before"] = _tracer.last_trace_id()
        span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
        seen["after"] = (_tracer.last_trace_id(), span.trace_id)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["before"] is None
    assert seen["after"][0] == seen["after"][1]
    assert _tracer.last_trace_id() == main_span.trace_id


def test_last_trace_id_per_task(collector, detection):
    async def one():
        span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
        await asyncio.sleep(0)
        return span.trace_id, _tracer.last_trace_id()

    async def main():
        return await asyncio.gather(*(one() for _ in range(10)))

    for made, seen in asyncio.run(main()):
        assert made == seen


def test_score_before_end_follows_trace(collector, detection):
    from kaizen_sdk import _result

    span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    _result.score_trace(span.trace_id, 0.5)
    assert collector.items == []
    span.end()
    assert [kind for kind, _ in collector.items] == ["trace", "score"]


def test_log_failure_rate_limited(monkeypatch, caplog):
    monkeypatch.setattr(_tracer, "_log_state", {})
    with caplog.at_level(logging.WARNING, logger="kaizen_sdk.tracer"):
        for _ in range(50):
            _tracer.log_failure("unit.key", "boom", ValueError("x"))
    assert len(caplog.records) == 1


def test_start_span_never_raises(collector, monkeypatch):
    monkeypatch.setattr(_tracer, "Span", None)
    assert start_span("openai", MESSAGES, model="m", options=InstrumentOptions()) is None


def test_no_exporter_drops_quietly(monkeypatch, detection):
    from kaizen_sdk import _exporter

    monkeypatch.setattr(_exporter, "get_exporter", lambda: None)
    span = start_span("openai", MESSAGES, model="m", options=InstrumentOptions())
    span.end()
    assert span.ended


def test_audio_and_file_replaced(collector, detection):
    import base64

    audio = base64.b64encode(b"RIFF" + bytes(3000)).decode()
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF" + bytes(3000)).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}},
                {"type": "input_file", "file_data": pdf, "filename": "b.pdf"},
            ],
        }
    ]
    span = start_span("openai", messages, model="m", options=InstrumentOptions())
    span.end()
    parts = collector.traces[0]["messages"][0]["content"]
    assert parts[0] == {"type": "media_ref", "media_type": "audio/wav", "bytes": 3004, "sha256": parts[0]["sha256"]}
    assert parts[1]["type"] == "media_ref"
    assert parts[1]["media_type"] == "application/pdf"
    assert parts[1]["bytes"] == 3004
    assert parts[2] == parts[1]


def test_trace_ids_are_version_4_uuids():
    ids = [_tracer.new_trace_id() for _ in range(2000)]

    assert len(set(ids)) == len(ids)
    for trace_id in ids:
        parsed = uuid.UUID(trace_id)
        assert str(parsed) == trace_id
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
