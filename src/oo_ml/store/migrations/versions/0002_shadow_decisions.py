"""shadow decisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_decisions",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("scores", sa.LargeBinary(), nullable=False),
        sa.Column("probabilities", sa.LargeBinary(), nullable=False),
        sa.Column("chosen", sa.Integer(), nullable=False),
        sa.Column("model_updates", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["decisions.event_id"],
            name=op.f("fk_shadow_decisions_event_id_decisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "policy", name=op.f("pk_shadow_decisions")),
    )


def downgrade() -> None:
    op.drop_table("shadow_decisions")
