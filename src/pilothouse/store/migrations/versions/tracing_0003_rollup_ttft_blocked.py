"""tracing: trace_rollups.blocked (guardrail blocks) and a time-to-first-token histogram

Revision ID: tracing_0003
Revises: tracing_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "tracing_0003"
down_revision: str | Sequence[str] | None = "tracing_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As in pilothouse.store.traces (a migration does not import the models that may change).
COLUMNS = ["blocked", *(f"ttft_{i:02d}" for i in range(20))]


def upgrade() -> None:
    with op.batch_alter_table("trace_rollups") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trace_rollups") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
