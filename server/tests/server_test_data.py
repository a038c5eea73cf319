"""Builders of valid wire-format traces and scores for the server tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient


@dataclass
class ApiClient:
    """A TestClient bound to one fresh project through its API key."""

    http: TestClient
    key: str
    project: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def get(self, path: str, **kwargs):
        return self.http.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs):
        return self.http.post(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def ingest(self, traces=(), scores=()) -> dict:
        response = self.post("/api/v1/ingest", json={"traces": list(traces), "scores": list(scores)})
        assert response.status_code == 200, response.text
        return response.json()


def make_trace(**overrides) -> dict:
    """A valid wire-format trace; keyword arguments replace fields (None values stay None)."""
    trace = {
        "id": str(uuid.uuid4()),
        "task": "SUMMARIZE_PROMPT",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarize: the printer is on fire"}],
        "prompt_text": "Be brief.\n\nSummarize: the printer is on fire",
        "response_text": "Printer fire.",
        "response": None,
        "model": "gpt-4o-mini",
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "latency_ms": 250.0,
        "started_at": datetime.now(timezone.utc).isoformat(),
        "error": None,
        "incomplete": False,
        "source_variable": "SUMMARIZE_PROMPT",
        "source_file": "app.py",
        "source_line": 12,
        "detection_rule": "template",
        "inputs": {"ticket": "the printer is on fire"},
        "template": "Summarize: {ticket}",
        "library": "openai",
        "parameters": {"temperature": 0.2},
    }
    trace.update(overrides)
    return trace


def make_score(trace_id: str, value: float = 1.0, **overrides) -> dict:
    score = {"id": str(uuid.uuid4()), "trace_id": trace_id, "score": value, "scored_by": "sdk"}
    score.update(overrides)
    return score


def hours_ago(hours: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat()
