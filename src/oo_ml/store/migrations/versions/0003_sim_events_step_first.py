"""sim_events keyed step first

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 17:00:00.000000

A run writes its events step after step, every user at each step. Keyed (run, policy, user,
step), each batch of inserts landed on one index page per user, all over the index, and every
commit rewrote those pages; keyed (run, step, policy, user) the inserts append. The key holds
the same columns, so uniqueness is unchanged.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NAME = "pk_sim_events"


def _key(columns: list[str]) -> None:
    # SQLite cannot alter a primary key: batch mode copies the table into a new one.
    with op.batch_alter_table("sim_events", recreate="auto") as batch:
        batch.drop_constraint(_NAME, type_="primary")
        batch.create_primary_key(_NAME, columns)


def upgrade() -> None:
    _key(["run_id", "step", "policy", "user_id"])


def downgrade() -> None:
    _key(["run_id", "policy", "user_id", "step"])
