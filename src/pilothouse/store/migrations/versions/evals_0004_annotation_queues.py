"""evaluation: annotation queues, their items and reviewers' annotations

Revision ID: evals_0004
Revises: evals_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pilothouse.store.types

revision: str = "evals_0004"
down_revision: str | Sequence[str] | None = "evals_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = pilothouse.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "annotation_queues",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("score_configs", JSON, nullable=False),
        sa.Column("reviewers_per_item", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_annotation_queues_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_queues")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_annotation_queues_project_id_name")
        ),
    )
    op.create_table(
        "annotation_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("queue_id", ID, nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("dataset_item_id", ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=320), nullable=True),
        sa.Column("claimed_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_item_id"],
            ["dataset_items.id"],
            name=op.f("fk_annotation_items_dataset_item_id_dataset_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["annotation_queues.id"],
            name=op.f("fk_annotation_items_queue_id_annotation_queues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_items")),
    )
    with op.batch_alter_table("annotation_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotation_items_queue_id"), ["queue_id"], unique=False
        )
    op.create_table(
        "annotations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("reviewer", sa.String(length=320), nullable=False),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["annotation_items.id"],
            name=op.f("fk_annotations_item_id_annotation_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint("item_id", "reviewer", name=op.f("uq_annotations_item_id_reviewer")),
    )


def downgrade() -> None:
    op.drop_table("annotations")
    with op.batch_alter_table("annotation_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_items_queue_id"))
    op.drop_table("annotation_items")
    op.drop_table("annotation_queues")
