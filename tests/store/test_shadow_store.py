"""The storage contract for shadow decisions, on memory, SQLite and PostgreSQL, and the schema
that the migrations build."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from oo_ml import ConflictError
from oo_ml.store.base import ShadowRecord, Store, Txn
from oo_ml.store.migrate import downgrade, upgrade
from oo_ml.store.schema import metadata
from oo_ml.store.sql import SqlStore

from .test_store_contract import decision, feedback, trained_row


def shadow(
    event_id: str, policy: str = "linucb-v1", *, k: int = 3, chosen: int = 1, means: bool = True
) -> ShadowRecord:
    rng = np.random.default_rng(len(event_id) * 31 + len(policy))
    probabilities = rng.dirichlet(np.ones(k))
    return ShadowRecord(
        event_id=event_id,
        policy=policy,
        scores=rng.normal(size=k) / 3.0,  # arbitrary float64s: must come back bit for bit
        probabilities=probabilities,
        chosen=chosen,
        model_updates=11,
        means=rng.normal(size=k) / 5.0 if means else None,
    )


def assert_same_shadow(a: ShadowRecord, b: ShadowRecord) -> None:
    assert (a.event_id, a.policy, a.chosen, a.model_updates) == (
        b.event_id,
        b.policy,
        b.chosen,
        b.model_updates,
    )
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    if a.means is None:
        assert b.means is None
    else:
        assert b.means is not None
        np.testing.assert_array_equal(a.means, b.means)
    assert a.scores.dtype == np.float64
    assert a.probabilities.shape == b.probabilities.shape


def test_shadows_round_trip_exactly_ordered_by_policy(store: Store) -> None:
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_decision(decision("e2", k=1)))
    first = [shadow("e1", "ucb-ix1", chosen=2), shadow("e1", "linucb-v1", means=False)]
    store.write(lambda t: t.insert_shadows(first))
    store.write(lambda t: t.insert_shadows([shadow("e2", k=1, chosen=0)]))
    found = store.read(lambda t: t.shadows_for(["e1", "e2", "missing"]))
    assert set(found) == {"e1", "e2", "missing"}
    assert [s.policy for s in found["e1"]] == ["linucb-v1", "ucb-ix1"]
    assert_same_shadow(found["e1"][0], first[1])
    assert_same_shadow(found["e1"][1], first[0])
    assert_same_shadow(found["e2"][0], shadow("e2", k=1, chosen=0))
    assert found["missing"] == []
    assert store.read(lambda t: t.shadows_for([])) == {}


def test_shadows_for_a_page_of_a_thousand_events(store: Store) -> None:
    ids = [f"e{i:04d}" for i in range(1000)]

    def job(t: Txn) -> None:
        for i, event_id in enumerate(ids):
            t.insert_decision(decision(event_id, created_ms=i))
            if i % 3 == 0:
                t.insert_shadows([shadow(event_id, chosen=i % 3)])

    store.write(job)
    found = store.read(lambda t: t.shadows_for(ids))
    assert len(found) == 1000
    assert [e for e in ids if found[e]] == ids[::3]
    assert all(found[e][0].event_id == e for e in ids[::3])


def test_duplicate_shadow_is_a_conflict_and_changes_nothing(store: Store) -> None:
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_shadows([shadow("e1", chosen=0)]))

    def job(t: Txn) -> None:
        t.set_setting("touched", "yes")
        t.insert_shadows([shadow("e1", "ucb-ix1"), shadow("e1", chosen=2)])

    with pytest.raises(ConflictError):
        store.write(job)
    found = store.read(lambda t: t.shadows_for(["e1"]))["e1"]
    assert [(s.policy, s.chosen) for s in found] == [("linucb-v1", 0)]
    assert store.read(lambda t: t.get_setting("touched")) is None


def test_a_shadow_needs_its_decision(store: Store) -> None:
    with pytest.raises(ConflictError):
        store.write(lambda t: t.insert_shadows([shadow("nope")]))
    assert store.read(lambda t: t.shadows_for(["nope"])) == {"nope": []}


def test_delete_user_erases_their_shadows_and_counts_them(store: Store) -> None:
    store.write(lambda t: t.save_state("u1", "ucb-ix1", trained_row()))
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_feedback(feedback("e1")))
    store.write(lambda t: t.insert_shadows([shadow("e1"), shadow("e1", "ucb-ix1")]))
    store.write(lambda t: t.insert_decision(decision("e2", user_id="u2")))
    store.write(lambda t: t.insert_shadows([shadow("e2")]))
    assert store.write(lambda t: t.delete_user("u1")) == 5
    assert store.read(lambda t: t.shadows_for(["e1"])) == {"e1": []}
    assert [s.event_id for s in store.read(lambda t: t.shadows_for(["e2"]))["e2"]] == ["e2"]
    # The same event id can be logged again, with new shadows, after the user is gone.
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_shadows([shadow("e1")]))
    assert len(store.read(lambda t: t.shadows_for(["e1"]))["e1"]) == 1


def test_reset_keeps_shadow_decisions_in_the_log(store: Store) -> None:
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_shadows([shadow("e1")]))
    store.write(lambda t: t.mark_reset("u1", 5_000))
    assert len(store.read(lambda t: t.shadows_for(["e1"]))["e1"]) == 1


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migrations_build_exactly_the_declared_schema(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    upgrade(url)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            assert "shadow_decisions" in sqlalchemy.inspect(conn).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0002_upgrades_and_downgrades_a_database_at_0001(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    upgrade(url, "0001")
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert "shadow_decisions" not in sqlalchemy.inspect(conn).get_table_names()
        upgrade(url)
        with engine.connect() as conn:
            assert "shadow_decisions" in sqlalchemy.inspect(conn).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0004_adds_and_drops_the_means_keeping_the_log(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Decisions, feedback and shadows logged at 0003 survive the upgrade (without means) and
    the downgrade (which drops the means that were logged since); nothing cascades."""
    url: str = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    upgrade(url, "0003")
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def counts() -> tuple[int, ...]:
        with engine.connect() as conn:
            return tuple(
                conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("decisions", "tip_feedback", "shadow_decisions")
            )

    def columns(table: str) -> list[str]:
        with engine.connect() as conn:
            return [c["name"] for c in sqlalchemy.inspect(conn).get_columns(table)]

    try:
        old = decision("e1", means=False)
        with engine.begin() as conn:  # written as 0003's code wrote it: no means column
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO decisions (event_id, user_id, policy, created_ms, hour_of_day,"
                    " day_of_week, n_candidates, dim, candidates, features, scores, chosen,"
                    " chosen_id, explored, seed, model_updates, origin) VALUES ('e1', 'u1',"
                    " 'egreedy-v1', 1000, 9, 2, 3, :dim, :candidates, :features, :scores, 0,"
                    " 'tip-0', false, 5, 7, 'rank')"
                ),
                {
                    "dim": old.features.shape[1],
                    "candidates": '[["tip-0",true,-2.0,1,"todoist",null],'
                    '["tip-1",false,1.5,2,"todoist",null],["tip-2",true,5.0,3,"todoist",null]]',
                    "features": old.features.tobytes(),
                    "scores": old.scores.tobytes(),
                },
            )
        assert "means" not in columns("decisions")
        upgrade(url)
        assert "means" in columns("decisions")
        assert "means" in columns("shadow_decisions")
        store = SqlStore(url)
        try:
            found = store.read(lambda t: t.get_decision("e1"))
            assert found is not None
            assert found.means is None
            store.write(lambda t: t.insert_decision(decision("e2")))
            store.write(lambda t: t.insert_feedback(feedback("e2")))
            store.write(lambda t: t.insert_shadows([shadow("e1"), shadow("e2")]))
            again = store.read(lambda t: t.get_decision("e2"))
            assert again is not None
            assert again.means is not None
        finally:
            store.close()
        assert counts() == (2, 1, 2)
        downgrade(url, "0003")
        assert "means" not in columns("decisions")
        assert "means" not in columns("shadow_decisions")
        assert counts() == (2, 1, 2)
    finally:
        engine.dispose()
