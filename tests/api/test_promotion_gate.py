"""The promotion gate: PUT /v1/policies/active refuses a challenger the log does not support."""

from __future__ import annotations

import time

import pytest

from oo_ml.store.memory import MemoryStore

from ..evaluation.world import play_engine, seeded_engine
from .conftest import ServerFactory
from .support import ADMIN


def logged_store(rounds: int = 60) -> MemoryStore:
    """A seeded log of egreedy-v1 over the last hour, 20 users: the source decides the reward,
    and only v3 policies (ucb-ix1, ucb-pop1) can see the source."""
    store = MemoryStore()
    engine = seeded_engine(store, "egreedy-v1", start=time.time() - 3600, tick=0.001, seed=7)
    play_engine(engine, users=20, rounds=rounds, seed=3)
    return store


@pytest.fixture
def log() -> MemoryStore:
    """A fresh copy per test: promoting writes the active policy into the store."""
    return logged_store()


def test_a_challenger_the_log_supports_is_promoted_with_the_numbers(
    start_server: ServerFactory, log: MemoryStore
) -> None:
    server = start_server(store=log, promotion_gate="dr", promotion_min_rounds=1000)
    response = server.client.put("/v1/policies/active", json={"policy": "ucb-pop1"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] == "ucb-pop1"
    gate = body["gate"]
    assert gate["allowed"] is True
    assert gate["rounds"] == 1200
    assert gate["challenger"]["lower"] > gate["active"]["value"]
    assert server.client.get("/v1/policies").json()["active"] == "ucb-pop1"


def test_a_challenger_that_does_not_beat_the_active_policy_is_refused(
    start_server: ServerFactory, log: MemoryStore
) -> None:
    server = start_server(store=log, promotion_gate="snips", promotion_min_rounds=1000)
    response = server.client.put("/v1/policies/active", json={"policy": "linucb-v1"}, headers=ADMIN)
    assert response.status_code == 409, response.text
    body = response.json()
    gate = body["gate"]
    assert gate["allowed"] is False
    assert gate["estimator"] == "snips"
    assert gate["challenger"]["policy"] == "linucb-v1"
    assert gate["active"]["policy"] == "egreedy-v1"
    assert gate["challenger"]["lower"] <= gate["active"]["value"]
    assert f"{gate['challenger']['lower']:+.4f}" in body["detail"]
    assert f"{gate['active']['value']:+.4f}" in body["detail"]
    # Nothing changed.
    assert server.client.get("/v1/policies").json()["active"] == "egreedy-v1"


def test_too_little_evidence_is_refused(start_server: ServerFactory, log: MemoryStore) -> None:
    server = start_server(store=log, promotion_gate="dr", promotion_min_rounds=5000)
    response = server.client.put("/v1/policies/active", json={"policy": "ucb-pop1"}, headers=ADMIN)
    assert response.status_code == 409
    assert "1200 usable logged rounds" in response.json()["gate"]["reason"]


def test_without_a_gate_any_registered_policy_is_promoted(
    start_server: ServerFactory, log: MemoryStore
) -> None:
    server = start_server(store=log)
    response = server.client.put("/v1/policies/active", json={"policy": "linucb-v1"}, headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"active": "linucb-v1", "gate": None}
