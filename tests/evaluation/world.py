"""A small world with a known answer: the reward of a tip depends only on its source.

A ``calendar`` tip is done (dwell 60 s, reward +1.0 under dwell-v1) with probability 0.8 and
dismissed (−1.0) otherwise; any other tip is done with probability 0.2. So a policy's true
value on a logged round is Σₖ π(k)·μₖ with μ = +0.6 for calendar tips and −0.6 for the rest.
The v2 features of ``egreedy-v1`` and ``linucb-v1`` cannot see the source; v3 can.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from oo_ml import Candidate, Context
from oo_ml.engine import Engine, EngineConfig
from oo_ml.store.base import Store
from oo_ml.types import Action, Outcome

SOURCES = ("calendar", "todoist", "email")
P_DONE = {"calendar": 0.8, "todoist": 0.2, "email": 0.2}


def expected_reward(candidate: Candidate) -> float:
    p = P_DONE[candidate.source]
    return p * 1.0 + (1 - p) * -1.0


def round_inputs(rng: np.random.Generator, k: int = 3) -> tuple[Context, list[Candidate]]:
    context = Context(int(rng.integers(0, 24)), int(rng.integers(0, 7)))
    sources = rng.permutation(SOURCES)[:k]
    candidates = [
        Candidate(
            f"t{i}-{int(rng.integers(1_000_000))}",
            bool(rng.random() < 0.3),
            float(rng.uniform(0, 40)),
            int(rng.integers(1, 5)),
            str(source),
        )
        for i, source in enumerate(sources)
    ]
    return context, candidates


def outcome_for(candidate: Candidate, rng: np.random.Generator) -> Outcome:
    if rng.random() < P_DONE[candidate.source]:
        return Outcome(Action.DONE, 60_000)
    return Outcome(Action.DISMISS)


def play(
    rank: Callable[[str, Context, list[Candidate]], tuple[str, int]],
    feedback: Callable[[str, Outcome], None],
    *,
    users: int,
    rounds: int,
    seed: int,
) -> None:
    """Drive ``users`` × ``rounds`` decisions: ``rank`` returns (event id, chosen index)."""
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for u in range(users):
            context, candidates = round_inputs(rng)
            event_id, chosen = rank(f"user-{u}", context, candidates)
            feedback(event_id, outcome_for(candidates[chosen], rng))


def seeded_engine(
    store: Store,
    policy: str,
    *,
    start: float,
    tick: float,
    seed: int,
    shadows: tuple[str, ...] = (),
) -> Engine:
    """An engine serving ``policy`` whose clock advances ``tick`` seconds per reading (one per
    rank, one per feedback) from ``start``, and whose decision seeds come from ``seed``."""
    ticks = itertools.count()
    seeds = np.random.default_rng(seed)
    return Engine(
        store,
        EngineConfig(default_policy=policy, shadow_policies=shadows),
        clock=lambda: start + next(ticks) * tick,
        seed_source=lambda: int(seeds.integers(2**62)),
    )


def play_engine(engine: Engine, *, users: int, rounds: int, seed: int) -> None:
    """:func:`play` through ``engine``'s own rank and feedback."""

    def rank(user: str, context: Context, candidates: list[Candidate]) -> tuple[str, int]:
        record = engine.rank(user, context, candidates)
        return record.event_id, record.chosen

    def feedback(event_id: str, outcome: Outcome) -> None:
        engine.feedback(event_id, outcome)

    play(rank, feedback, users=users, rounds=rounds, seed=seed)
