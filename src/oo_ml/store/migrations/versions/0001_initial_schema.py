"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 20:55:45.918665
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("hour_of_day", sa.SmallInteger(), nullable=False),
        sa.Column("day_of_week", sa.SmallInteger(), nullable=False),
        sa.Column("n_candidates", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=False),
        sa.Column("scores", sa.LargeBinary(), nullable=False),
        sa.Column("probabilities", sa.LargeBinary(), nullable=True),
        sa.Column("chosen", sa.Integer(), nullable=False),
        sa.Column("chosen_id", sa.String(length=256), nullable=False),
        sa.Column("explored", sa.Boolean(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("model_updates", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_created_ms"), ["created_ms"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_decisions_user_id_created_ms"), ["user_id", "created_ms"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_decisions_user_id_policy_chosen_id_created_ms"),
            ["user_id", "policy", "chosen_id", "created_ms"],
            unique=False,
        )

    op.create_table(
        "policy_state",
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("n_updates", sa.BigInteger(), nullable=False),
        sa.Column("reward_count", sa.BigInteger(), nullable=False),
        sa.Column("reward_sum_milli", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "policy", name=op.f("pk_policy_state")),
    )
    op.create_table(
        "service_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_service_settings")),
    )
    op.create_table(
        "sim_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("total_steps", sa.BigInteger(), nullable=False),
        sa.Column("done_steps", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_sim_runs")),
    )
    with op.batch_alter_table("sim_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sim_runs_created_ms"), ["created_ms"], unique=False)

    op.create_table(
        "users",
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("reset_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_table(
        "sim_events",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=False),
        sa.Column("hour_of_day", sa.SmallInteger(), nullable=False),
        sa.Column("day_of_week", sa.SmallInteger(), nullable=False),
        sa.Column("chosen_id", sa.String(length=256), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("dwell_ms", sa.BigInteger(), nullable=True),
        sa.Column("reward_milli", sa.Integer(), nullable=False),
        sa.Column("oracle_reward", sa.Float(), nullable=True),
        sa.Column("random_reward", sa.Float(), nullable=True),
        sa.Column("chosen_expected", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sim_runs.run_id"],
            name=op.f("fk_sim_events_run_id_sim_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "policy", "user_id", "step", name=op.f("pk_sim_events")),
    )
    op.create_table(
        "tip_feedback",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("dwell_ms", sa.BigInteger(), nullable=True),
        sa.Column("reward_milli", sa.Integer(), nullable=False),
        sa.Column("reward_rule", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["decisions.event_id"],
            name=op.f("fk_tip_feedback_event_id_decisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_tip_feedback")),
    )
    with op.batch_alter_table("tip_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tip_feedback_user_id_created_ms"),
            ["user_id", "created_ms"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("tip_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tip_feedback_user_id_created_ms"))

    op.drop_table("tip_feedback")
    op.drop_table("sim_events")
    op.drop_table("users")
    with op.batch_alter_table("sim_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sim_runs_created_ms"))

    op.drop_table("sim_runs")
    op.drop_table("service_settings")
    op.drop_table("policy_state")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_user_id_policy_chosen_id_created_ms"))
        batch_op.drop_index(batch_op.f("ix_decisions_user_id_created_ms"))
        batch_op.drop_index(batch_op.f("ix_decisions_created_ms"))

    op.drop_table("decisions")
