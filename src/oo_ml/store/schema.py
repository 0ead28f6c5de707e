"""The tables, as SQLAlchemy Core metadata. Alembic owns the schema: a change here goes with a
new revision in ``migrations/versions``; a test checks the two agree.

Times are integer milliseconds since the Unix epoch (UTC): portable, sortable and cheap.
Arrays are float64 little-endian blobs (see :mod:`oo_ml.store.codec`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

__all__ = [
    "decisions",
    "metadata",
    "policy_state",
    "service_settings",
    "shadow_decisions",
    "sim_events",
    "sim_runs",
    "tip_feedback",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

USER_ID = 256
NAME = 64

policy_state = Table(
    "policy_state",
    metadata,
    Column("user_id", String(USER_ID), primary_key=True),
    Column("policy", String(NAME), primary_key=True),
    Column("state", LargeBinary, nullable=False),
    Column("n_updates", BigInteger, nullable=False),
    Column("reward_count", BigInteger, nullable=False),
    Column("reward_sum_milli", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("event_id", String(NAME), primary_key=True),
    Column("user_id", String(USER_ID), nullable=False),
    Column("policy", String(NAME), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("hour_of_day", SmallInteger, nullable=False),
    Column("day_of_week", SmallInteger, nullable=False),
    Column("n_candidates", Integer, nullable=False),
    Column("dim", Integer, nullable=False),
    # JSON list of [id, is_overdue, task_age_days, priority, source, source_id] per candidate.
    Column("candidates", Text, nullable=False),
    Column("features", LargeBinary, nullable=False),
    Column("scores", LargeBinary, nullable=False),
    Column("probabilities", LargeBinary, nullable=True),
    Column("chosen", Integer, nullable=False),
    Column("chosen_id", String(USER_ID), nullable=False),
    # True when the policy chose something other than its best-scoring candidate.
    Column("explored", Boolean, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("model_updates", BigInteger, nullable=False),
    Column("origin", String(16), nullable=False),
    Column("means", LargeBinary, nullable=True),  # θ·x per candidate; 0004
    Column("content", Text, nullable=True),
    Index(None, "user_id", "created_ms"),
    Index(None, "user_id", "policy", "chosen_id", "created_ms"),
    Index(None, "created_ms"),
)

tip_feedback = Table(
    "tip_feedback",
    metadata,
    Column(
        "event_id",
        String(NAME),
        ForeignKey("decisions.event_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", String(USER_ID), nullable=False),
    Column("policy", String(NAME), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("action", String(16), nullable=True),
    Column("dwell_ms", BigInteger, nullable=True),
    Column("reward_milli", Integer, nullable=False),
    Column("reward_rule", String(NAME), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("applied", Boolean, nullable=False),
    Index(None, "user_id", "created_ms"),
)

# What each shadow (challenger) policy would have done with a decision; see ShadowRecord.
shadow_decisions = Table(
    "shadow_decisions",
    metadata,
    Column(
        "event_id",
        String(NAME),
        ForeignKey("decisions.event_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("policy", String(NAME), primary_key=True),
    Column("scores", LargeBinary, nullable=False),
    Column("probabilities", LargeBinary, nullable=False),
    Column("chosen", Integer, nullable=False),
    Column("model_updates", BigInteger, nullable=False),
    Column("means", LargeBinary, nullable=True),  # 0004
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(USER_ID), primary_key=True),
    Column("reset_ms", BigInteger, nullable=True),
)

service_settings = Table(
    "service_settings",
    metadata,
    Column("key", String(NAME), primary_key=True),
    Column("value", Text, nullable=False),
)

sim_runs = Table(
    "sim_runs",
    metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("total_steps", BigInteger, nullable=False),
    Column("done_steps", BigInteger, nullable=False),
    Column("summary", Text, nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "created_ms"),
)

sim_events = Table(
    "sim_events",
    metadata,
    Column(
        "run_id",
        String(NAME),
        ForeignKey("sim_runs.run_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("policy", String(NAME), nullable=False),
    Column("user_id", String(USER_ID), nullable=False),
    Column("step", Integer, nullable=False),
    Column("persona", String(NAME), nullable=False),
    Column("hour_of_day", SmallInteger, nullable=False),
    Column("day_of_week", SmallInteger, nullable=False),
    Column("chosen_id", String(USER_ID), nullable=False),
    Column("probability", Float, nullable=False),
    Column("action", String(16), nullable=False),
    Column("dwell_ms", BigInteger, nullable=True),
    Column("reward_milli", Integer, nullable=False),
    Column("oracle_reward", Float, nullable=True),
    Column("random_reward", Float, nullable=True),
    Column("chosen_expected", Float, nullable=True),
    # Step first: a run writes every user's step t, then step t + 1, so its inserts append to
    # the key instead of landing on one page per user (migration 0003).
    PrimaryKeyConstraint("run_id", "step", "policy", "user_id"),
)
