"""A server refits population models in the background: no request waits for a refit."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import oo_ml.engine as engine_module
from oo_ml import Candidate, Context
from oo_ml.engine import Engine, EngineConfig
from oo_ml.policies import get_policy
from oo_ml.store.base import Txn
from oo_ml.store.memory import MemoryStore
from oo_ml.types import Action, Outcome

T = TypeVar("T")

CANDIDATES = [
    Candidate("a", False, 1.0, 2, "todoist"),
    Candidate("b", True, 5.0, 4, "email"),
    Candidate("c", False, 0.0, 1, "calendar"),
]


class GatedStore(MemoryStore):
    """A memory store whose reads from the refit thread wait until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.refit_reads = 0

    def read(self, job: Callable[[Txn], T]) -> T:
        if threading.current_thread().name == "oo-ml-population":
            self.refit_reads += 1
            assert self.gate.wait(30), "the test never opened the gate"
        return super().read(job)


def teach(engine: Engine, users: int, rounds: int) -> None:
    for r in range(rounds):
        for u in range(users):
            record = engine.rank(f"u{u}", Context(8 + r % 12, r % 7), CANDIDATES)
            action = Action.DONE if record.chosen_id == "b" else Action.DISMISS
            engine.feedback(record.event_id, Outcome(action, 40_000))


def wait_for(condition: Callable[[], Any]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_go_on_while_a_refit_waits() -> None:
    store = GatedStore()
    config = EngineConfig(
        default_policy="ucb-pop1", population_refit_background=True, population_refresh_every=5
    )
    engine = Engine(store, config)
    teach(engine, users=4, rounds=10)  # 40 updates while the refit thread is stuck
    policy = get_policy("ucb-pop1")
    assert store.refit_reads == 1  # one refit at a time
    assert engine.store.read(lambda txn: engine.population_model(txn, policy)) is None
    store.gate.set()
    wait_for(lambda: engine._population["ucb-pop1"].model is not None)
    wait_for(lambda: not engine._population["ucb-pop1"].refitting)
    teach(engine, users=4, rounds=2)
    assert engine.store.read(lambda txn: engine.population_model(txn, policy)) is not None


def test_closing_waits_for_the_refit_in_the_background() -> None:
    store = GatedStore()
    config = EngineConfig(
        default_policy="ucb-pop1", population_refit_background=True, population_refresh_every=5
    )
    engine = Engine(store, config)
    teach(engine, users=4, rounds=3)
    assert store.refit_reads == 1  # a refit has started and waits at the gate
    waiter = threading.Thread(target=engine.wait_for_refits)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the refit cannot end before the gate opens
    store.gate.set()
    waiter.join(30)
    assert not waiter.is_alive()
    assert not engine._refits
    assert engine._population["ucb-pop1"].model is not None
    engine.wait_for_refits()  # nothing running: returns at once


def test_without_background_refits_the_model_is_fitted_inline() -> None:
    config = EngineConfig(default_policy="ucb-pop1", population_refresh_every=5)
    engine = Engine(MemoryStore(), config)
    teach(engine, users=4, rounds=3)
    cached = engine._population["ucb-pop1"]
    assert cached.model is not None
    assert not cached.refitting


def test_refits_wait_one_update_per_user_when_there_are_more_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fit costs O(users): with more users than ``population_refresh_every`` updates, the
    engine waits one update per user it last fitted to, so refits cost O(1) per update."""
    config = EngineConfig(default_policy="ucb-pop1", population_refresh_every=5)
    engine = Engine(MemoryStore(), config)
    fits: list[tuple[int, int]] = []  # (users fitted to, updates since the previous fit)
    real_fit = engine_module._fit_population

    def counting_fit(policy: Any, rows: Any) -> Any:
        fits.append((len(rows), engine._population[policy.name].updates))
        return real_fit(policy, rows)

    monkeypatch.setattr(engine_module, "_fit_population", counting_fit)
    teach(engine, users=12, rounds=6)
    assert len(fits) >= 4
    for (users_before, _), (_, waited) in itertools.pairwise(fits):
        assert waited >= max(5, users_before)
    assert (12, 12) in [(before, waited) for (before, _), (_, waited) in itertools.pairwise(fits)]
