"""A real decision log: a seeded simulation driven through the Engine over a real SQLite file.

Every decision offers one task of each source; the simulated people finish email tasks
(reward +1) and dismiss or snooze the rest (−1 or +0.1), so a learner that reads the
exported features right learns to put email first. Some decisions get no feedback and one
legacy record (an old-style ``/reward`` for a tip never ranked here) is made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from oo_ml.engine import Engine, EngineConfig
from oo_ml.store.base import DecisionRecord, FeedbackRecord, Store
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore
from oo_ml.types import Candidate, Context, Outcome

SOURCES = ("todoist", "calendar", "email", "other")
START_S = 1_717_000_000.0  # 2024-05-29T16:26:40Z
STEP_S = 37 * 60 + 0.25  # hours and days of week vary; milliseconds are not all zero
POLICIES = ("egreedy-v1", "ucb-ix1")  # the v2 (d=7) and v3 (d=44) encoders


@dataclass
class SimulatedLog:
    """What the simulation logged, as the engine returned it, oldest first."""

    url: str
    decisions: list[DecisionRecord] = field(default_factory=list)
    feedback: dict[str, FeedbackRecord] = field(default_factory=dict)
    legacy_ids: list[str] = field(default_factory=list)

    @property
    def rounds(self) -> list[tuple[DecisionRecord, FeedbackRecord | None]]:
        return [(d, self.feedback.get(d.event_id)) for d in self.decisions]

    def labelled(self) -> list[tuple[DecisionRecord, FeedbackRecord]]:
        return [
            (d, f)
            for d, f in self.rounds
            if f is not None and d.probabilities is not None  # legacy records have none
        ]


def simulate(store: Store, url: str, *, seed: int, users: int = 4, steps: int = 40) -> SimulatedLog:
    rng = np.random.default_rng(seed)
    now = [START_S]
    engine = Engine(
        store,
        EngineConfig(),
        clock=lambda: now[0],
        seed_source=lambda: int(rng.integers(2**62)),
    )
    log = SimulatedLog(url)
    for step in range(steps):
        for u in range(users):
            user = f"user-{u}"
            now[0] += STEP_S
            moment = np.datetime64(int(now[0]), "s").astype(object)
            context = Context(moment.hour, moment.weekday())
            order = rng.permutation(len(SOURCES))
            candidates = [
                Candidate(
                    f"{user}-{step}-{SOURCES[s]}",
                    is_overdue=bool(rng.random() < 0.3),
                    task_age_days=float(rng.integers(-40, 160)) / 4,
                    priority=int(rng.integers(1, 5)),
                    source=SOURCES[s],
                )
                for s in order
            ]
            source_ids = [f"src-{c.id}" if rng.random() < 0.5 else None for c in candidates]
            decision = engine.rank(
                user, context, candidates, policy=POLICIES[u % 2], source_ids=source_ids
            )
            log.decisions.append(decision)
            if (step + u) % 9 == 4:
                continue  # no feedback yet
            chosen = decision.candidates[decision.chosen]
            if chosen.source == "email":
                outcome = Outcome("done", dwell_ms=int(rng.integers(15_000, 120_000)))
            elif step % 5 == 0:
                outcome = Outcome("snooze")
            else:
                outcome = Outcome("dismiss")
            now[0] += 1.5
            log.feedback[decision.event_id] = engine.feedback(decision.event_id, outcome).feedback
        if step == steps // 2:
            now[0] += STEP_S
            result = store.write(
                engine.legacy_reward_job(
                    "user-0",
                    "egreedy-v1",
                    "never-ranked",
                    0.5,
                    client_candidate=Candidate("never-ranked", priority=2),
                    client_context=Context(10, 1),
                )
            )
            legacy_id = result.feedback.event_id
            legacy = store.read(lambda txn, e=legacy_id: txn.get_decision(e))
            assert legacy is not None
            assert legacy.probabilities is None
            log.decisions.append(legacy)
            log.feedback[legacy_id] = result.feedback
            log.legacy_ids.append(legacy_id)
    return log


@pytest.fixture(scope="session")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedLog]:
    """One simulated log in a SQLite file, shared by the tests that only read it."""
    path: Path = tmp_path_factory.mktemp("export") / "oo-ml.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    store = SqlStore(url, sqlite_synchronous="OFF")
    try:
        yield simulate(store, url, seed=7)
    finally:
        store.close()


@pytest.fixture
def log_store(sim_log: SimulatedLog) -> Iterator[SqlStore]:
    store = SqlStore(sim_log.url)
    yield store
    store.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Settings come from the test alone, never from the shell that runs it."""
    for name in list(os.environ):
        if name.startswith("OO_ML_") and name != "OO_ML_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    return monkeypatch
