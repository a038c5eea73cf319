"""The database schema as SQLAlchemy Core tables, shared by SQLite and PostgreSQL.

The store uses Core, not the ORM: every request runs a fixed number of set-based statements,
and bulk ingest goes through multi-row INSERT ... ON CONFLICT, which the ORM would only hide.

Layout:
- `projects` and `api_keys`: every key belongs to one project, and every other row carries
  the `project_id` of the key that wrote it, so no query of one project returns another's rows.
- `traces`: one row per (project, client trace id). The latest score is copied onto the trace
  (`score`, `scored_by`, ...) so lists, filters and task figures never join the scores.
- `scores`: every score ever sent, keyed by client score id. A score may name a trace that
  has not arrived yet; it stays here and is copied onto the trace when the trace arrives.
- `prompt_versions`: one row per distinct template text of a task, by SHA-256.
- `task_rollups` and `latency_histograms` (per hour), `task_rollups_daily` and
  `latency_histograms_daily` (per UTC day): sums per (task, prompt version), kept up to date by
  ingest, so task lists, prompt-version figures and time series read a few thousand rows
  instead of every trace.

Times are naive `DateTime` columns that always hold UTC: SQLite has no time zone type, and one
convention on both databases keeps cursors and comparisons identical.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only makes an INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing).
BigIntId = BigInteger().with_variant(Integer, "sqlite")

# Stands for "no prompt version" inside unique keys, where NULL would never conflict.
NO_PROMPT_VERSION = 0

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=True),
    # The first characters of the key, shown by `kaizen keys list` so a person can tell keys apart.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("task", String(1000), nullable=False),
    Column("template_hash", String(64), nullable=False),
    Column("template", Text, nullable=False),
    Column("first_seen", DateTime, nullable=False),
    UniqueConstraint("project_id", "task", "template_hash"),
)

traces = Table(
    "traces",
    metadata,
    Column("pk", BigIntId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("id", String(36), nullable=False),
    Column("task", String(1000), nullable=False),
    Column("prompt_version_id", Integer, nullable=True),
    Column("messages", JSON, nullable=False),
    Column("prompt_text", Text, nullable=False),
    Column("response_text", Text, nullable=True),
    Column("response", JSON, nullable=True),
    Column("model", String(500), nullable=True),
    Column("prompt_tokens", BigInteger, nullable=True),
    Column("completion_tokens", BigInteger, nullable=True),
    Column("total_tokens", BigInteger, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("error", Text, nullable=True),
    Column("incomplete", Boolean, nullable=False),
    Column("source_variable", String(1000), nullable=True),
    Column("source_file", Text, nullable=True),
    Column("source_line", Integer, nullable=True),
    Column("detection_rule", String(100), nullable=True),
    Column("inputs", JSON, nullable=True),
    Column("library", String(100), nullable=True),
    Column("parameters", JSON, nullable=True),
    Column("received_at", DateTime, nullable=False),
    # The latest score (by created_at, then arrival), copied from `scores`.
    Column("score", Float, nullable=True),
    Column("scored_by", String(200), nullable=True),
    Column("score_name", String(200), nullable=True),
    Column("scored_at", DateTime, nullable=True),
    UniqueConstraint("project_id", "id"),
    # Newest-first lists, by task or not, with (started_at, pk) keyset cursors.
    Index("ix_traces_project_task_started", "project_id", "task", "started_at", "pk"),
    Index("ix_traces_project_started", "project_id", "started_at", "pk"),
)

scores = Table(
    "scores",
    metadata,
    Column("pk", BigIntId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("id", String(36), nullable=False),
    Column("trace_id", String(36), nullable=False),
    Column("score", Float, nullable=False),
    Column("scored_by", String(200), nullable=False),
    Column("name", String(200), nullable=True),
    Column("comment", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    UniqueConstraint("project_id", "id"),
    Index("ix_scores_project_trace", "project_id", "trace_id"),
)

def _rollup_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
        Column("task", String(1000), primary_key=True),
        Column("prompt_version_id", Integer, primary_key=True),
        Column("bucket_start", DateTime, primary_key=True),
        Column("trace_count", BigInteger, nullable=False),
        Column("error_count", BigInteger, nullable=False),
        Column("scored_count", BigInteger, nullable=False),
        Column("score_sum", Float, nullable=False),
        Column("latency_sum", Float, nullable=False),
        Column("latency_min", Float, nullable=False),
        Column("latency_max", Float, nullable=False),
        Column("prompt_tokens_sum", BigInteger, nullable=False),
        Column("completion_tokens_sum", BigInteger, nullable=False),
        Column("total_tokens_sum", BigInteger, nullable=False),
        Column("first_seen", DateTime, nullable=False),
        Column("last_seen", DateTime, nullable=False),
        Index(f"ix_{name}_project_bucket", "project_id", "bucket_start"),
    )


def _histogram_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
        Column("task", String(1000), primary_key=True),
        Column("prompt_version_id", Integer, primary_key=True),
        Column("bucket_start", DateTime, primary_key=True),
        # Log-scale latency bin; see kaizen_server.store.rollups for the bin boundaries.
        Column("bin", Integer, primary_key=True),
        Column("count", BigInteger, nullable=False),
        Index(f"ix_{name}_project_bucket", "project_id", "bucket_start"),
    )


# Hourly rows serve time series by hour and the partial days at the edges of a window. Daily
# rows serve everything else, so an all-time task list reads days x tasks x versions rows.
task_rollups = _rollup_table("task_rollups")
task_rollups_daily = _rollup_table("task_rollups_daily")
latency_histograms = _histogram_table("latency_histograms")
latency_histograms_daily = _histogram_table("latency_histograms_daily")
