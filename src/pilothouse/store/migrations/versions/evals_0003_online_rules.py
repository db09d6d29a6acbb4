"""evaluation: online evaluation rules

Revision ID: evals_0003
Revises: evals_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pilothouse.store.types

revision: str = "evals_0003"
down_revision: str | Sequence[str] | None = "evals_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = pilothouse.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "online_eval_rules",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filter", JSON, nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("evaluators", JSON, nullable=False),
        sa.Column("max_per_run", sa.Integer(), nullable=False),
        sa.Column("cost_cap_usd", sa.Float(), nullable=True),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("scored", sa.BigInteger(), nullable=False),
        sa.Column("cursor_ns", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_online_eval_rules_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_eval_rules")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_online_eval_rules_project_id_name")
        ),
    )


def downgrade() -> None:
    op.drop_table("online_eval_rules")
