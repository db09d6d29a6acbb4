"""tracing: traces.model_start_ns (the earliest span with a model gives the trace's model)

Revision ID: tracing_0002
Revises: tracing_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "tracing_0002"
down_revision: str | Sequence[str] | None = "tracing_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("model_start_ns", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("model_start_ns")
