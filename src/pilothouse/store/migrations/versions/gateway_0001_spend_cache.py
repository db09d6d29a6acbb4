"""gateway: spend per project, key and day; response cache

Revision ID: gateway_0001
Revises: (none)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pilothouse.store.types

revision: str = "gateway_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("gateway",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "gateway_spend",
        sa.Column(
            "project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", pilothouse.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "key_id", "period_start", name=op.f("pk_gateway_spend")
        ),
    )
    with op.batch_alter_table("gateway_spend", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_spend_period_start"), ["period_start"], unique=False
        )

    op.create_table(
        "gateway_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", pilothouse.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", pilothouse.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_gateway_cache")),
    )
    with op.batch_alter_table("gateway_cache", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_cache_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_cache_expires_at"))
    op.drop_table("gateway_cache")
    with op.batch_alter_table("gateway_spend", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_spend_period_start"))
    op.drop_table("gateway_spend")
