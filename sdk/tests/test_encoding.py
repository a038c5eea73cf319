"""Encoding batch items: orjson when it is importable, the standard encoder otherwise, same values."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import datetime, timezone

import pytest

from kaizen_sdk import _encoding


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Color(str, enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "opaque object"


PAYLOADS = {
    "plain": {"task": "T", "messages": [{"role": "user", "content": "hello"}], "latency_ms": 1.25, "error": None},
    "non_ascii": {"prompt_text": "Zusammenfassung: Grüße aus Köln, 東京 🙂"},
    "non_finite": {"parameters": {"temperature": float("nan"), "top_p": float("inf"), "x": [float("-inf"), 1.0]}},
    "tuple_key": {"inputs": {("a", 1): "tuple key", "b": 2}},
    "int_key": {"inputs": {1: "one", "2": "two"}},
    "datetime": {"parameters": {"at": datetime(2026, 12, 5, 1, 2, 3, tzinfo=timezone.utc)}},
    "dataclass": {"parameters": {"point": Point(1, 2)}},
    "object": {"parameters": {"thing": Opaque(), "tags": {1, 2}}},
    "str_enum": {"parameters": {"color": Color.RED}},
    "tuple_value": {"parameters": {"stop": ("a", "b")}},
    "big_int": {"parameters": {"seed": 2**70}},
    "lone_surrogate": {"prompt_text": "broken \ud800 text"},
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_both_encoders_send_the_same_values(name: str) -> None:
    payload = PAYLOADS[name]

    standard = json.loads(_encoding.encode_standard(payload))

    assert json.loads(_encoding.encode(payload)) == standard


def test_values_sent() -> None:
    def sent(payload: dict) -> dict:
        return json.loads(_encoding.encode(payload))

    assert sent(PAYLOADS["non_finite"])["parameters"] == {"temperature": None, "top_p": None, "x": [None, 1.0]}
    assert sent(PAYLOADS["tuple_key"])["inputs"] == {"('a', 1)": "tuple key", "b": 2}
    assert sent(PAYLOADS["datetime"])["parameters"] == {"at": "2026-12-05 01:02:03+00:00"}
    assert sent(PAYLOADS["dataclass"])["parameters"] == {"point": "Point(x=1, y=2)"}
    assert sent(PAYLOADS["str_enum"])["parameters"] == {"color": "red"}
    assert sent(PAYLOADS["lone_surrogate"])["prompt_text"] == "broken \ud800 text"
    assert sent(PAYLOADS["big_int"])["parameters"] == {"seed": 2**70}


def test_standard_encoder_alone_when_orjson_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(_encoding, "orjson", None)

    for payload in PAYLOADS.values():
        assert _encoding.encode(payload) == _encoding.encode_standard(payload)


def test_circular_reference_raises() -> None:
    payload: dict = {"task": "T"}
    payload["parameters"] = {"self": payload}

    with pytest.raises(RecursionError):
        _encoding.encode(payload)
