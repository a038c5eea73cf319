"""Tests of instrument() / uninstrument(): argument checks, dispatch and options at call time."""

from __future__ import annotations

import json

import openai
import pytest

import kaizen_sdk
from kaizen_sdk import _exporter, _instrument
from kaizen_sdk.integrations.openai import _patch


@pytest.fixture(autouse=True)
def no_exporter(monkeypatch):
    monkeypatch.delenv("KAIZEN_API_KEY", raising=False)
    monkeypatch.setattr(_exporter, "get_exporter", lambda: None)
    yield
    kaizen_sdk.uninstrument(openai)


def test_unsupported_module_names_fix():
    with pytest.raises(ValueError) as caught:
        kaizen_sdk.instrument(json)
    message = str(caught.value)
    assert "json" in message
    assert "openai" in message
    assert "kaizen_sdk.instrument(openai)" in message


def test_non_module_rejected():
    with pytest.raises(ValueError, match="cannot instrument 42"):
        kaizen_sdk.instrument(42)


@pytest.mark.parametrize(
    ("task_map", "fragment"),
    [(["a"], "must be a mapping"), ({"VAR": ""}, "non-empty task name"), ({1: "x"}, "non-empty task name")],
)
def test_invalid_task_map_rejected(task_map, fragment):
    with pytest.raises(ValueError, match=fragment):
        kaizen_sdk.instrument(openai, task_map=task_map)
    assert "openai" not in _instrument.instrumented_libraries()


def test_invalid_ignore_unmapped_rejected():
    with pytest.raises(ValueError, match="ignore_unmapped must be True or False"):
        kaizen_sdk.instrument(openai, ignore_unmapped="yes")


def test_unknown_keyword_rejected():
    with pytest.raises(TypeError, match="'flush_every'"):
        kaizen_sdk.instrument(openai, flush_every=3)


def test_unknown_keyword_lists_each_once():
    with pytest.raises(TypeError) as caught:
        kaizen_sdk.instrument(openai, flush_every=3)

    accepted = str(caught.value).split("accepted: ", 1)[1].split(", ")
    assert len(accepted) == len(set(accepted)), accepted
    assert "api_key" in accepted
    assert "base_url" in accepted
    assert "task_map" in accepted


def test_exporter_keyword_accepted():
    kaizen_sdk.instrument(openai, max_queue_size=50)
    assert _instrument.instrumented_libraries() == ["openai"]


def test_second_call_updates_options():
    kaizen_sdk.instrument(openai)
    kaizen_sdk.instrument(openai, task_map={"A_PROMPT": "a"}, ignore_unmapped=True)
    options = _patch._current_options()
    assert options.task_map == {"A_PROMPT": "a"}
    assert options.ignore_unmapped is True


def test_uninstrument_makes_wrappers_passthrough():
    kaizen_sdk.instrument(openai)
    kaizen_sdk.uninstrument(openai)
    assert _patch._current_options() is None
    kaizen_sdk.uninstrument(openai)


def test_library_name_string_accepted():
    kaizen_sdk.instrument("openai")
    assert "openai" in _instrument.instrumented_libraries()
    kaizen_sdk.uninstrument("openai")
    assert "openai" not in _instrument.instrumented_libraries()
