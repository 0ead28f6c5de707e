"""decisions and shadow decisions keep the model's expected rewards

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 19:00:00.000000

Each decision, and each shadow's, now keeps θ·x of every candidate as the model saw it when it
decided: the reward model of DM and DR, which off-policy evaluation otherwise gets by replaying
the policy over the whole log. Nullable: rows logged before have none and are replayed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = ("decisions", "shadow_decisions")


def upgrade() -> None:
    # A nullable column is added in place on SQLite and PostgreSQL alike: no table is copied.
    for table in _TABLES:
        op.add_column(table, sa.Column("means", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # SQLite (3.35 and later) drops a column in place too; copying ``decisions`` into a new
    # table instead would cascade the drop of the old one to its feedback and shadows.
    for table in _TABLES:
        op.drop_column(table, "means")
