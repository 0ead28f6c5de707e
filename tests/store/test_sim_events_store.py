"""The storage contract for simulation runs and their events, on memory, SQLite and
PostgreSQL: events come back exactly as written, in (policy, user, step) order, and a batch
with a step that exists is refused whole."""

from __future__ import annotations

import pytest
import sqlalchemy

from oo_ml import ConflictError
from oo_ml.store.base import RunRecord, SimEvent, Store
from oo_ml.store.migrate import downgrade, upgrade
from oo_ml.store.sql import SqlStore


def run(run_id: str = "run-1") -> RunRecord:
    return RunRecord(run_id, 1_000, 1_000, "running", {"seed": 3}, total_steps=6)


def event(step: int, user: str = "u0", policy: str = "ucb-ix1", **change: object) -> SimEvent:
    values: dict[str, object] = {
        "run_id": "run-1",
        "policy": policy,
        "user_id": user,
        "step": step,
        "persona": "quick-wins",
        "hour_of_day": 9 + step,
        "day_of_week": step % 7,
        "chosen_id": f"{user}-t{step}",
        "probability": 0.1 + step / 3.0,  # not a short decimal: must come back bit for bit
        "action": "done",
        "dwell_ms": 45_000 + step,
        "reward_milli": 1_000 - 7 * step,
        "oracle_reward": 0.6 + step / 7.0,
        "random_reward": -0.05 - step / 11.0,
        "chosen_expected": 0.2 + step / 13.0,
    }
    values.update(change)
    return SimEvent(**values)  # type: ignore[arg-type]


def test_events_round_trip_exactly_in_policy_user_step_order(store: Store) -> None:
    store.write(lambda t: t.insert_run(run()))
    written = [
        event(1, "u1"),
        event(0, "u1", dwell_ms=None, action="dismiss"),
        event(0, "u0", policy="egreedy-v1"),
        event(2, "u0", oracle_reward=None, random_reward=None, chosen_expected=None),
        event(0, "u0"),
    ]
    store.write(lambda t: t.insert_sim_events(written))
    store.write(lambda t: t.insert_sim_events([]))  # nothing to write is not an error
    found = store.read(lambda t: t.sim_events("run-1"))
    assert list(found) == sorted(written, key=lambda e: (e.policy, e.user_id, e.step))
    assert store.read(lambda t: t.sim_events("another-run")) == []


def test_a_batch_with_an_existing_step_is_refused_whole(store: Store) -> None:
    store.write(lambda t: t.insert_run(run()))
    store.write(lambda t: t.insert_sim_events([event(0)]))
    with pytest.raises(ConflictError):
        store.write(lambda t: t.insert_sim_events([event(1), event(0, chosen_id="other")]))
    assert store.read(lambda t: t.sim_events("run-1")) == [event(0)]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0003_keys_events_step_first_and_keeps_them(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """A run's inserts append to a (run, step, policy, user) key; the events written under the
    old key survive the upgrade and the downgrade, and the key still refuses a repeated step."""
    url: str = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    written = [event(step, user) for step in range(3) for user in ("u0", "u1")]
    in_order = sorted(written, key=lambda e: (e.policy, e.user_id, e.step))

    def key_and_events() -> tuple[list[str], list[SimEvent]]:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                key = sqlalchemy.inspect(conn).get_pk_constraint("sim_events")
        finally:
            engine.dispose()
        store = SqlStore(url)
        try:
            return key["constrained_columns"], list(store.read(lambda t: t.sim_events("run-1")))
        finally:
            store.close()

    upgrade(url, "0002")
    store = SqlStore(url)
    store.write(lambda t: t.insert_run(run()))
    store.write(lambda t: t.insert_sim_events(written))
    store.close()
    assert key_and_events() == (["run_id", "policy", "user_id", "step"], in_order)
    upgrade(url)
    assert key_and_events() == (["run_id", "step", "policy", "user_id"], in_order)
    store = SqlStore(url)
    with pytest.raises(ConflictError):
        store.write(lambda t: t.insert_sim_events([event(1, "u1", chosen_id="again")]))
    store.close()
    downgrade(url, "0002")
    assert key_and_events() == (["run_id", "policy", "user_id", "step"], in_order)
