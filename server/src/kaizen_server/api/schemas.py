"""Response models of the JSON API; they make the OpenAPI document complete and exact."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kaizen_server.wire import ScoreIn, TraceIn

EXAMPLE_TRACE_ID = "0b6f5e36-3d4c-4f0e-9a59-4f1f4f2a8c11"


class IngestRequest(BaseModel):
    """A batch of traces and scores. Items are validated one by one (see the item results)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "traces": [
                        {
                            "id": EXAMPLE_TRACE_ID,
                            "task": "SUMMARIZE_PROMPT",
                            "messages": [{"role": "user", "content": "Summarize this ticket: printer on fire"}],
                            "prompt_text": "Summarize this ticket: printer on fire",
                            "response_text": "A printer is on fire.",
                            "model": "gpt-4o-mini",
                            "prompt_tokens": 12,
                            "completion_tokens": 6,
                            "total_tokens": 18,
                            "latency_ms": 412.5,
                            "started_at": "2026-01-05T10:00:00Z",
                            "template": "Summarize this ticket: {ticket}",
                            "inputs": {"ticket": "printer on fire"},
                            "library": "openai",
                        }
                    ],
                    "scores": [
                        {
                            "id": "6f1d2c1e-8d0b-4a47-a1a4-3c1c7f0b9b01",
                            "trace_id": EXAMPLE_TRACE_ID,
                            "score": 1.0,
                            "scored_by": "sdk",
                        }
                    ],
                }
            ]
        },
    )

    traces: list[TraceIn] = Field(default_factory=list)
    scores: list[ScoreIn] = Field(default_factory=list)


class ItemResult(BaseModel):
    type: Literal["trace", "score"]
    id: str | None = Field(description="The item's id as sent (null when it had none).")
    status: Literal["accepted", "duplicate", "rejected"]
    error: str | None = Field(default=None, description="Why a rejected item was rejected.")
    warnings: list[str] = Field(default_factory=list, description="What was changed or ignored in an accepted item.")


class IngestResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"type": "trace", "id": EXAMPLE_TRACE_ID, "status": "accepted", "error": None, "warnings": []},
                        {"type": "trace", "id": "not-a-uuid", "status": "rejected",
                         "error": "field 'latency_ms' = -3.0: Input should be greater than or equal to 0", "warnings": []},
                    ],
                    "accepted": 1,
                    "duplicate": 0,
                    "rejected": 1,
                }
            ]
        }
    )

    items: list[ItemResult]
    accepted: int
    duplicate: int
    rejected: int


class ScoreOut(BaseModel):
    id: str
    trace_id: str
    score: float
    scored_by: str
    name: str | None = None
    comment: str | None = None
    created_at: str


class ScoreResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "6f1d2c1e-8d0b-4a47-a1a4-3c1c7f0b9b01", "trace_id": EXAMPLE_TRACE_ID, "status": "accepted"}]}
    )

    id: str
    trace_id: str
    status: Literal["accepted", "duplicate"]


class TraceOut(BaseModel):
    id: str
    task: str
    messages: list[dict[str, Any]]
    prompt_text: str
    response_text: str | None = None
    response: dict[str, Any] | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    latency_ms: float
    started_at: str = Field(description="ISO 8601 in UTC.")
    error: str | None = None
    incomplete: bool
    source_variable: str | None = None
    source_file: str | None = None
    source_line: int | None = None
    detection_rule: str | None = None
    inputs: dict[str, Any] | None = None
    prompt_version: str | None = Field(default=None, description="SHA-256 of the template text, when the trace had one.")
    library: str | None = None
    parameters: dict[str, Any] | None = None
    received_at: str
    score: float | None = Field(default=None, description="The latest score.")
    scored_by: str | None = None
    score_name: str | None = None
    scored_at: str | None = None


class TraceDetail(TraceOut):
    template: str | None = None
    scores: list[ScoreOut] = Field(description="Every score of the trace, oldest first.")


class TraceList(BaseModel):
    items: list[TraceOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    has_more: bool
    limit: int


class Figures(BaseModel):
    trace_count: int
    scored_count: int
    mean_score: float | None = Field(description="Mean of each trace's latest score.")
    error_count: int
    error_rate: float | None
    mean_latency_ms: float | None
    p50_latency_ms: float | None = Field(description="Median latency, from a log histogram (within about 2.4%).")
    p95_latency_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    first_seen: str | None
    last_seen: str | None


class TaskSummary(Figures):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task": "SUMMARIZE_PROMPT", "trace_count": 1520, "scored_count": 310, "mean_score": 0.82,
                    "error_count": 4, "error_rate": 0.002632, "mean_latency_ms": 640.2, "p50_latency_ms": 580.1,
                    "p95_latency_ms": 1210.4, "prompt_tokens": 281000, "completion_tokens": 95000, "total_tokens": 376000,
                    "first_seen": "2026-01-02T08:00:12+00:00", "last_seen": "2026-01-31T17:42:03+00:00", "prompt_version_count": 2,
                }
            ]
        }
    )

    task: str
    prompt_version_count: int


class WindowOut(BaseModel):
    since: str | None = Field(description="Start of the window, rounded down to the hour.")
    until: str | None = Field(description="End of the window (exclusive), rounded up to the hour.")


class TaskList(BaseModel):
    items: list[TaskSummary]
    window: WindowOut


class PromptVersion(Figures):
    prompt_version: str | None = Field(description="SHA-256 of the template text; null groups the traces without a template.")
    template: str | None
    created_at: str | None


class TaskDetail(Figures):
    task: str
    prompt_versions: list[PromptVersion]
    window: WindowOut


class SeriesPoint(BaseModel):
    start: str
    trace_count: int
    scored_count: int
    mean_score: float | None
    error_count: int
    mean_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    total_tokens: int


class TimeSeries(BaseModel):
    task: str | None
    interval: Literal["hour", "day"]
    points: list[SeriesPoint]
    window: WindowOut


class ProjectOut(BaseModel):
    project: str
    key_name: str | None
    key_prefix: str


class Health(BaseModel):
    status: Literal["ok"]
    version: str
