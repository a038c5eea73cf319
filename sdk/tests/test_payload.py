"""Payload hygiene: media references, field size caps and the redact hook."""

from __future__ import annotations

import base64
import copy
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen_sdk import _encoding
from kaizen_sdk._payload import (
    RedactError,
    clean,
    may_need_cleaning,
    prepare_score,
    prepare_trace,
    truncate,
)

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PNG_B64 = base64.b64encode(PNG_BYTES).decode()
PNG_REFERENCE = {
    "type": "image_ref",
    "media_type": "image/png",
    "bytes": len(PNG_BYTES),
    "sha256": hashlib.sha256(PNG_BYTES).hexdigest(),
}


def replace_media(value):
    return clean(value, max_chars=10_000_000)


def make_trace(**fields) -> dict:
    trace = {"id": "00000000-0000-4000-8000-000000000001", "task": "T", "messages": [], "prompt_text": ""}
    trace.update(fields)
    return trace


def test_image_data_url_becomes_reference() -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"}},
        ],
    }

    cleaned = replace_media([message])

    assert cleaned[0]["content"][0] == {"type": "text", "text": "What is this?"}
    assert cleaned[0]["content"][1] == PNG_REFERENCE


def test_input_audio_becomes_reference() -> None:
    part = {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "wav"}}

    cleaned = replace_media(part)

    assert cleaned["type"] == "media_ref"
    assert cleaned["media_type"] == "audio/wav"
    assert cleaned["bytes"] == len(PNG_BYTES)


def test_anthropic_source_becomes_reference() -> None:
    part = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}

    assert replace_media(part) == PNG_REFERENCE


def test_file_part_becomes_reference() -> None:
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG_B64}", "filename": "a.pdf"}}

    cleaned = replace_media(part)

    assert cleaned["media_type"] == "application/pdf"
    assert cleaned["sha256"] == PNG_REFERENCE["sha256"]


def test_bare_data_url_string_becomes_reference() -> None:
    assert replace_media({"url": f"data:image/png;base64,{PNG_B64}"}) == {"url": PNG_REFERENCE}


def test_short_and_remote_urls_kept() -> None:
    short = "data:image/png;base64,iVBORw0KGgo="
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}

    assert replace_media(short) == short
    assert replace_media(remote) == remote


def test_clean_shares_unchanged_containers() -> None:
    trace = make_trace(messages=[{"role": "user", "content": "short"}], prompt_text="x" * 1000)

    cleaned = clean(trace, 500)

    assert cleaned is not trace
    assert cleaned["messages"] is trace["messages"]
    assert clean(trace["messages"], 500) is trace["messages"]


def test_clean_handles_tuples_and_subclasses() -> None:
    class Label(str):
        pass

    cleaned = clean({"tags": ("a" * 600,), "label": Label("b" * 600)}, 300)

    assert len(cleaned["tags"][0]) == 300
    assert len(cleaned["label"]) == 300


def test_prepare_leaves_input_unchanged() -> None:
    trace = make_trace(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}])
    before = copy.deepcopy(trace)

    prepare_trace(trace, max_field_chars=1000)

    assert trace == before


def test_truncate_records_original_length() -> None:
    text = "x" * 5000

    cut = truncate(text, 1000)

    assert len(cut) == 1000
    assert cut.startswith("x" * 900)
    assert "original length 5000 characters" in cut


def test_truncate_keeps_short_text() -> None:
    assert truncate("short", 1000) == "short"


def test_clean_caps_nested_strings() -> None:
    trace = make_trace(prompt_text="p" * 3000, messages=[{"role": "user", "content": [{"type": "text", "text": "t" * 3000}]}])

    capped = clean(trace, 500)

    assert len(capped["prompt_text"]) == 500
    assert len(capped["messages"][0]["content"][0]["text"]) == 500
    assert capped["task"] == "T"


def test_redact_rewrites_trace() -> None:
    def mask_emails(trace: dict) -> dict:
        trace["prompt_text"] = trace["prompt_text"].replace("bob@example.com", "<email>")
        return trace

    prepared = prepare_trace(make_trace(prompt_text="mail bob@example.com"), max_field_chars=1000, redact=mask_emails)

    assert prepared["prompt_text"] == "mail <email>"


def test_redact_mutation_spares_input() -> None:
    trace = make_trace(messages=[{"role": "user", "content": "secret"}])

    def mutate(copy: dict) -> dict:
        copy["messages"][0]["content"] = "<masked>"
        return copy

    prepared = prepare_trace(trace, max_field_chars=1000, redact=mutate)

    assert prepared["messages"][0]["content"] == "<masked>"
    assert trace["messages"][0]["content"] == "secret"


def test_redact_sees_references_not_base64() -> None:
    seen = []

    def record(trace: dict) -> dict:
        seen.append(trace["messages"][0]["content"][0])
        return trace

    trace = make_trace(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}])
    prepare_trace(trace, max_field_chars=1000, redact=record)

    assert seen == [PNG_REFERENCE]


def test_redact_output_is_capped() -> None:
    prepared = prepare_trace(make_trace(), max_field_chars=300, redact=lambda trace: {**trace, "prompt_text": "y" * 1000})

    assert len(prepared["prompt_text"]) == 300


def test_redact_returning_none_drops() -> None:
    assert prepare_trace(make_trace(), max_field_chars=1000, redact=lambda trace: None) is None


def test_redact_raising_is_reported() -> None:
    def broken(trace: dict) -> dict:
        raise KeyError("missing")

    with pytest.raises(RedactError, match="KeyError"):
        prepare_trace(make_trace(), max_field_chars=1000, redact=broken)


def test_redact_returning_non_dict_is_reported() -> None:
    with pytest.raises(RedactError, match="expected a dict or None"):
        prepare_trace(make_trace(), max_field_chars=1000, redact=lambda trace: "oops")


def test_score_comment_is_capped() -> None:
    score = {"id": "s", "trace_id": "t", "score": 1.0, "comment": "c" * 2000}

    assert len(prepare_score(score, max_field_chars=256)["comment"]) == 256


# --- deciding from an item's JSON whether it needs cleaning ---------------------------------

_MEDIA_TEXT = st.builds(lambda data: f"data:image/png;base64,{base64.b64encode(data).decode()}", st.binary(min_size=0, max_size=600))
_BASE64_TEXT = st.builds(lambda data: base64.b64encode(data).decode(), st.binary(min_size=150, max_size=600))
_TEXT = st.one_of(st.text(max_size=40), st.text(alphabet='ab "\\é', min_size=200, max_size=900), _MEDIA_TEXT)
_PARTS = st.one_of(
    st.builds(lambda url: {"type": "image_url", "image_url": {"url": url}}, _MEDIA_TEXT),
    st.builds(lambda data: {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}, _BASE64_TEXT),
    st.builds(lambda data: {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}, _BASE64_TEXT),
    st.builds(lambda url: {"type": "file", "file": {"file_data": url}}, _MEDIA_TEXT),
)
_VALUES = st.recursive(
    st.one_of(st.none(), st.integers(), _TEXT, _PARTS),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.sampled_from(["messages", "inputs", "parameters", "prompt_text"]), _VALUES), max_chars=st.integers(256, 1200))
def test_json_without_marks_needs_no_cleaning(value, max_chars) -> None:
    # The exporter skips cleaning when may_need_cleaning returns False: clean must then change nothing.
    for encode in (_encoding.encode, _encoding.encode_standard):
        if not may_need_cleaning(encode(value), max_chars):
            assert clean(value, max_chars) == value


def test_media_and_long_text_flagged() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "wav"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG_B64}"}},
    ]
    for part in parts:
        assert may_need_cleaning(_encoding.encode(make_trace(messages=[{"role": "user", "content": [part]}])), 100_000)

    assert may_need_cleaning(_encoding.encode(make_trace(prompt_text="q" * 2000)), 1000)
    assert not may_need_cleaning(_encoding.encode(make_trace(prompt_text="q" * 2000)), 100_000)
