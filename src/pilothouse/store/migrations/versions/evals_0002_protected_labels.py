"""evaluation: prompt labels protected by an evaluation suite

Revision ID: evals_0002
Revises: evals_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pilothouse.store.types

revision: str = "evals_0002"
down_revision: str | Sequence[str] | None = "evals_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = pilothouse.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "protected_labels",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("prompt_name", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("suite", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_protected_labels_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protected_labels")),
        sa.UniqueConstraint(
            "project_id",
            "prompt_name",
            "label",
            name=op.f("uq_protected_labels_project_id_prompt_name_label"),
        ),
    )


def downgrade() -> None:
    op.drop_table("protected_labels")
