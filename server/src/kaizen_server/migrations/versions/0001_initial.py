"""Create projects, keys, traces, scores, prompt versions and the hourly rollups.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_api_keys_project_id_projects"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(1000), nullable=False),
        sa.Column("template_hash", sa.String(64), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_prompt_versions_project_id_projects"),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        sa.UniqueConstraint("project_id", "task", "template_hash", name="uq_prompt_versions_project_id_task_template_hash"),
    )
    op.create_table(
        "traces",
        sa.Column("pk", BigIntId, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("task", sa.String(1000), nullable=False),
        sa.Column("prompt_version_id", sa.Integer(), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("prompt_text", sa.Text(), nullable=False),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("model", sa.String(500), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=True),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("incomplete", sa.Boolean(), nullable=False),
        sa.Column("source_variable", sa.String(1000), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("detection_rule", sa.String(100), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("library", sa.String(100), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("scored_by", sa.String(200), nullable=True),
        sa.Column("score_name", sa.String(200), nullable=True),
        sa.Column("scored_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_traces_project_id_projects"),
        sa.PrimaryKeyConstraint("pk", name="pk_traces"),
        sa.UniqueConstraint("project_id", "id", name="uq_traces_project_id_id"),
    )
    op.create_index("ix_traces_project_task_started", "traces", ["project_id", "task", "started_at", "pk"])
    op.create_index("ix_traces_project_started", "traces", ["project_id", "started_at", "pk"])
    op.create_table(
        "scores",
        sa.Column("pk", BigIntId, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("trace_id", sa.String(36), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scored_by", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_scores_project_id_projects"),
        sa.PrimaryKeyConstraint("pk", name="pk_scores"),
        sa.UniqueConstraint("project_id", "id", name="uq_scores_project_id_id"),
    )
    op.create_index("ix_scores_project_trace", "scores", ["project_id", "trace_id"])
    for suffix in ("", "_daily"):
        _create_rollup_tables(suffix)


def _create_rollup_tables(suffix: str) -> None:
    rollups = f"task_rollups{suffix}"
    op.create_table(
        rollups,
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(1000), nullable=False),
        sa.Column("prompt_version_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(), nullable=False),
        sa.Column("trace_count", sa.BigInteger(), nullable=False),
        sa.Column("error_count", sa.BigInteger(), nullable=False),
        sa.Column("scored_count", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.Float(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_min", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        sa.Column("prompt_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=f"fk_{rollups}_project_id_projects"),
        sa.PrimaryKeyConstraint("project_id", "task", "prompt_version_id", "bucket_start", name=f"pk_{rollups}"),
    )
    op.create_index(f"ix_{rollups}_project_bucket", rollups, ["project_id", "bucket_start"])
    histograms = f"latency_histograms{suffix}"
    op.create_table(
        histograms,
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(1000), nullable=False),
        sa.Column("prompt_version_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=f"fk_{histograms}_project_id_projects"),
        sa.PrimaryKeyConstraint("project_id", "task", "prompt_version_id", "bucket_start", "bin", name=f"pk_{histograms}"),
    )
    op.create_index(f"ix_{histograms}_project_bucket", histograms, ["project_id", "bucket_start"])


def downgrade() -> None:
    for table in ("latency_histograms_daily", "task_rollups_daily", "latency_histograms", "task_rollups", "scores", "traces", "prompt_versions", "api_keys", "projects"):
        op.drop_table(table)
