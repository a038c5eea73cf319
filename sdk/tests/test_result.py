"""Tests of ct_trace_id / ct_score: results unchanged, scores queued after traces."""

from __future__ import annotations

import copy
import gc
import pickle

import pytest
from openai.types.chat import ChatCompletion

from kaizen_sdk import _result, _tracer
from kaizen_sdk._tracer import Span


class Collector:
    def __init__(self):
        self.items = []

    def enqueue_trace(self, trace):
        self.items.append(("trace", trace))

    def enqueue_score(self, score):
        self.items.append(("score", score))


@pytest.fixture
def collector(monkeypatch):
    from kaizen_sdk import _exporter

    sink = Collector()
    monkeypatch.setattr(_exporter, "get_exporter", lambda: sink)
    return sink


def make_span() -> Span:
    return Span(library="openai", task="t", messages=[], prompt_text="", model="m", parameters={}, detection=None)


def make_completion() -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def test_trace_id_readable():
    result = make_completion()
    span = make_span()
    assert _result.attach(result, span)
    assert result.ct_trace_id == span.trace_id


def test_serialization_unchanged():
    plain = make_completion()
    traced = make_completion()
    _result.attach(traced, make_span())
    assert traced.model_dump() == plain.model_dump()
    assert traced.model_dump_json() == plain.model_dump_json()
    assert traced == plain
    assert pickle.dumps(traced) == pickle.dumps(plain)
    assert pickle.loads(pickle.dumps(traced)) == plain
    assert copy.deepcopy(traced) == plain
    assert copy.copy(traced) == plain
    assert "ct_trace_id" not in traced.model_dump()
    assert "ct_trace_id" not in traced.__dict__


def test_untraced_instance_has_no_attribute():
    traced = make_completion()
    _result.attach(traced, make_span())
    other = make_completion()
    assert not hasattr(other, "ct_trace_id")
    assert not hasattr(other, "ct_score")
    assert not hasattr(copy.deepcopy(traced), "ct_trace_id")


def test_entry_removed_after_gc():
    result = make_completion()
    _result.attach(result, make_span())
    before = len(_result._entries)
    del result
    gc.collect()
    assert len(_result._entries) == before - 1


def test_builtin_results_not_attached():
    assert not _result.attach("text", make_span())
    assert not _result.attach({"a": 1}, make_span())
    assert not _result.attach(None, make_span())


def test_ct_score_enqueues_after_trace(collector):
    span = make_span()
    result = make_completion()
    _result.attach(result, span)
    span.end()
    result.ct_score(0.75, scored_by="reviewer", name="accuracy")
    kinds = [kind for kind, _ in collector.items]
    assert kinds == ["trace", "score"]
    score = collector.items[1][1]
    assert score["trace_id"] == span.trace_id
    assert score["score"] == 0.75
    assert score["scored_by"] == "reviewer"
    assert score["name"] == "accuracy"
    assert score["created_at"].endswith("Z")


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "0.5", True, None])
def test_ct_score_rejects_invalid(collector, bad):
    span = make_span()
    result = make_completion()
    _result.attach(result, span)
    with pytest.raises(ValueError, match="score"):
        result.ct_score(bad)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"scored_by": "s" * 201}, "scored_by must be at most 200 characters, got 201"),
        ({"scored_by": ""}, "scored_by must be a non-empty string"),
        ({"name": "n" * 201}, "name must be at most 200 characters, got 201"),
        ({"name": 7}, "name must be a string or None, got 7"),
        ({"comment": 7}, "comment must be a string or None, got 7"),
        ({"comment": "c" * 100_001}, "comment must be at most 100000 characters"),
    ],
)
def test_ct_score_rejects_invalid_text(collector, keywords, message):
    # The server would reject these; raising here shows the mistake at the call.
    span = make_span()
    result = make_completion()
    _result.attach(result, span)

    with pytest.raises(ValueError, match=message):
        result.ct_score(0.5, **keywords)

    assert collector.items == []


def test_ct_score_without_exporter_drops(monkeypatch):
    from kaizen_sdk import _exporter

    monkeypatch.setattr(_exporter, "get_exporter", lambda: None)
    span = make_span()
    span.end()
    result = make_completion()
    _result.attach(result, span)
    result.ct_score(1.0)


def test_open_span_registry_is_weak():
    span = make_span()
    _tracer._register_open(span)
    trace_id = span.trace_id
    del span
    gc.collect()
    assert _tracer.open_span(trace_id) is None
