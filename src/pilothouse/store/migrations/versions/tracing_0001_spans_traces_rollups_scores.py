"""tracing: spans, traces (per-trace summary), trace_rollups (per minute), scores

Revision ID: tracing_0001
Revises: (none)
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pilothouse.store.types

revision: str = "tracing_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("tracing",)
depends_on: str | Sequence[str] | None = "core_0001"


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("project_id", _id(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.String(length=8), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("events", _json(), nullable=False),
        sa.Column("links", _json(), nullable=False),
        sa.Column("resource", _json(), nullable=False),
        sa.Column("scope", _json(), nullable=False),
        sa.Column("service_name", sa.Text(), nullable=True),
        sa.Column("operation", sa.String(length=32), nullable=True),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("request_model", sa.Text(), nullable=True),
        sa.Column("response_model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("input", _json(), nullable=True),
        sa.Column("output", _json(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("prompt_name", sa.Text(), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("environment", sa.Text(), nullable=True),
        sa.Column("release", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "trace_id", "span_id", name=op.f("pk_spans")),
    )
    op.create_table(
        "traces",
        sa.Column("project_id", _id(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("has_root", sa.Boolean(), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("service_name", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=True),
        sa.Column("release", sa.Text(), nullable=True),
        sa.Column("prompt_name", sa.Text(), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "trace_id", name=op.f("pk_traces")),
    )
    op.create_index("ix_traces_project_id_start_ns", "traces", ["project_id", "start_ns"])
    op.create_index(
        "ix_traces_project_id_model_start_ns", "traces", ["project_id", "model", "start_ns"]
    )
    op.create_index(
        "ix_traces_project_id_user_id_start_ns", "traces", ["project_id", "user_id", "start_ns"]
    )
    op.create_index(
        "ix_traces_project_id_session_id_start_ns",
        "traces",
        ["project_id", "session_id", "start_ns"],
    )
    op.create_table(
        "trace_rollups",
        sa.Column("project_id", _id(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("width_s", sa.Integer(), nullable=False),
        sa.Column("bucket_s", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("duration_ms_sum", sa.Float(), nullable=False),
        # Latency histogram: lat_00 (< 1 ms) .. lat_39, bounds growing by sqrt(2).
        *[sa.Column(f"lat_{i:02d}", sa.BigInteger(), nullable=False) for i in range(40)],
        sa.PrimaryKeyConstraint(
            "project_id",
            "dimension",
            "width_s",
            "bucket_s",
            "value",
            name=op.f("pk_trace_rollups"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "scores",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("project_id", _id(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", pilothouse.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
    )
    op.create_index("ix_scores_project_id_trace_id", "scores", ["project_id", "trace_id"])
    op.create_index("ix_scores_project_id_name_value", "scores", ["project_id", "name", "value"])


def downgrade() -> None:
    op.drop_index("ix_scores_project_id_name_value", table_name="scores")
    op.drop_index("ix_scores_project_id_trace_id", table_name="scores")
    op.drop_table("scores")
    op.drop_table("trace_rollups")
    for name in (
        "ix_traces_project_id_session_id_start_ns",
        "ix_traces_project_id_user_id_start_ns",
        "ix_traces_project_id_model_start_ns",
        "ix_traces_project_id_start_ns",
    ):
        op.drop_index(name, table_name="traces")
    op.drop_table("traces")
    op.drop_table("spans")
