"""A policy is features × model × exploration: one frozen combination of hyper-parameters.

The policy itself holds no learned state. Per-user statistics live in a
:class:`~oo_ml.policies.model.RidgeState` that the caller loads, passes in and stores, and every
random choice uses a ``numpy.random.Generator`` the caller seeds, so a decision can be
reproduced from (state, inputs, seed). :class:`Bandit` bundles one state and one generator for
code that runs a single learner in memory (the simulator, benchmarks, notebooks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from oo_ml.compiling import compiled
from oo_ml.errors import StateError, ValidationError
from oo_ml.features import Encoder
from oo_ml.policies.exploration import Exploration
from oo_ml.policies.model import RidgeModel, RidgeState
from oo_ml.policies.pcg import MAX_SEED, first_random
from oo_ml.policies.population import Population
from oo_ml.types import Candidate, Context, Decision, FloatArray, check_candidates

__all__ = ["Bandit", "Policy", "seeded_generator"]


def _draw(probabilities: FloatArray, rng: np.random.Generator) -> int:
    """Index drawn with the given probabilities; an entry with probability 0 is never drawn.

    When a single entry is possible (a greedy or UCB choice without ties) it is returned
    without drawing, so ``rng`` is not touched: a :func:`seeded_generator` is then never built.
    """
    only = _only_possible(probabilities)
    if only >= 0:
        return only
    return _drawn_at(probabilities, float(rng.random()))


@compiled
def _only_possible(probabilities: FloatArray) -> int:
    """The index of the one entry above 0 (the first largest), or -1 if there are several
    (or none)."""
    k = probabilities.shape[0]
    zeros = 0
    best = 0
    for index in range(k):
        if probabilities[index] == 0.0:
            zeros += 1
        if probabilities[index] > probabilities[best]:
            best = index
    return best if zeros == k - 1 else -1


@compiled
def _drawn_at(probabilities: FloatArray, u: float) -> int:
    """The entry a uniform ``u`` in [0, 1) falls on: the first whose running total, added up
    in index order, exceeds ``u`` times the whole total (entries of 0 are never drawn)."""
    total = 0.0
    for p in probabilities:
        total += p
    target = u * total
    running = 0.0
    last = 0
    for index in range(probabilities.shape[0]):
        p = probabilities[index]
        if p > 0.0:
            running += p
            last = index
            if target < running:
                return index
    return last  # rounding left the target at the very top: the last possible index


class _LazyGenerator:
    """Stands in for ``Generator(PCG64(seed))`` and builds it at the first use — unless that
    use is one ``random()`` of an integer seed, which :func:`~oo_ml.policies.pcg.first_random`
    computes without the generator (an ε-greedy decision's one draw: ~3 µs against ~9); a
    generator built after it skips that first number, as the real one would have drawn it."""

    def __init__(self, seed: int | np.random.SeedSequence) -> None:
        self._seed = seed
        self._generator: np.random.Generator | None = None
        self._drawn = False

    def random(self, *args: Any, **kwargs: Any) -> Any:
        seed = self._seed
        if (
            self._generator is None
            and not self._drawn
            and not args
            and not kwargs
            and type(seed) is int
            and 0 <= seed <= MAX_SEED
        ):
            self._drawn = True
            return first_random(seed)
        return self._built().random(*args, **kwargs)

    def _built(self) -> np.random.Generator:
        if self._generator is None:
            self._generator = np.random.Generator(np.random.PCG64(self._seed))
            if self._drawn:
                self._generator.random()  # the number first_random gave
        return self._generator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._built(), name)


def seeded_generator(seed: int | np.random.SeedSequence) -> np.random.Generator:
    """``Generator(PCG64(seed))``, the generator of a logged decision, built only if the
    decision draws from it. Building one costs ~8 µs, and a UCB or greedy decision without
    ties draws nothing; the numbers drawn, if any, are the same."""
    return cast(np.random.Generator, _LazyGenerator(seed))


@dataclass(frozen=True, slots=True)
class Policy:
    """A named policy. ``rank`` decides, ``learn`` updates a state; both are pure given the rng."""

    name: str
    encoder: Encoder
    exploration: Exploration
    model: RidgeModel = field(default_factory=RidgeModel)
    description: str = field(default="", compare=False)
    population: Population | None = None
    """A prior learned from every user (see :mod:`oo_ml.policies.population`); the engine
    keeps the population model and re-centres each user's prior on it. With a discount the
    population is fitted to everyone's recent, discounted, data."""
    dim: int = field(init=False, repr=False, compare=False)
    """The encoder's dimension, kept here because every decision and update checks it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", self.encoder.dim)

    def params(self) -> dict[str, Any]:
        """The hyper-parameters, flat and JSON-safe, for listings and logs."""
        return {
            "encoder": self.encoder.name,
            "dim": self.dim,
            "lambda": self.model.lam,
            "discount": self.model.discount,
            "refactor_every": self.model.refactor_every,
            "population_clusters": 0 if self.population is None else self.population.clusters,
            "population_noise": None if self.population is None else self.population.noise,
            "population_restarts": None if self.population is None else self.population.restarts,
            "population_min_clusters": (
                None if self.population is None else self.population.min_clusters
            ),
            "population_effective_parameters": (
                None if self.population is None else self.population.effective_parameters
            ),
            **self.exploration.params(),
        }

    def clone(self, **changes: Any) -> Policy:
        """A copy of this policy, with some fields replaced."""
        return dataclasses.replace(self, **changes)

    def new_state(self, prior_mean: FloatArray | None = None) -> RidgeState:
        """Fresh statistics for a new user, optionally centred on a population mean."""
        return self.model.new_state(self.encoder.name, self.dim, prior_mean)

    def check_state(self, state: RidgeState) -> None:
        if state.encoder != self.encoder.name or state.b.shape[0] != self.dim:
            raise StateError(
                f"policy {self.name!r} needs {self.encoder.name} state of dimension {self.dim}, "
                f"got {state.encoder} of dimension {state.dim}"
            )

    def rank(
        self,
        state: RidgeState,
        context: Context,
        candidates: Sequence[Candidate],
        rng: np.random.Generator,
    ) -> Decision:
        """Choose one of ``candidates`` for ``context``; neither argument is modified."""
        if not isinstance(context, Context):
            raise ValidationError("context", f"must be a Context, got {type(context).__name__}")
        check_candidates(candidates)
        self.check_state(state)
        features = self.encoder.encode(context, candidates)
        return self._choose(state, features, tuple([c.id for c in candidates]), rng)

    def decide(
        self,
        state: RidgeState,
        features: FloatArray,
        candidate_ids: tuple[str, ...],
        rng: np.random.Generator,
    ) -> Decision:
        """Choose among already-encoded candidates (a (k, d) matrix), e.g. to replay a log."""
        self.check_state(state)
        self._check_features(features)
        return self._choose(state, features, candidate_ids, rng)

    def distribution(
        self, state: RidgeState, features: FloatArray, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        """(scores, probabilities, draws) over the rows of ``features`` without choosing."""
        self._check_features(features)
        return self.exploration.distribution(features, features.dot(state.theta), state, rng)

    def _check_features(self, features: FloatArray) -> None:
        if features.ndim != 2 or features.shape[1] != self.dim or features.shape[0] == 0:
            raise ValidationError(
                "features", f"must have shape (k>0, {self.dim}), got {features.shape}"
            )

    def choose(
        self, state: RidgeState, features: FloatArray, rng: np.random.Generator
    ) -> tuple[int, float]:
        """:meth:`decide`'s choice and its probability alone, for a caller whose state and
        features are this policy's by construction (the simulator's own decisions, which
        log no :class:`~oo_ml.types.Decision`): nothing is checked."""
        means = features.dot(state.theta)
        probs = self.exploration.distribution(features, means, state, rng)[1]
        chosen = _draw(probs, rng)
        return chosen, float(probs[chosen])

    def _choose(
        self,
        state: RidgeState,
        features: FloatArray,
        candidate_ids: tuple[str, ...],
        rng: np.random.Generator,
    ) -> Decision:
        """:meth:`decide` on a checked state and features (as :meth:`choose` decides)."""
        means = features.dot(state.theta)
        scores, probs, draws = self.exploration.distribution(features, means, state, rng)
        chosen = _draw(probs, rng)
        means.setflags(write=False)
        scores.setflags(write=False)
        probs.setflags(write=False)
        features.setflags(write=False)
        return Decision(self.name, chosen, candidate_ids, scores, probs, features, draws, means)

    def learn(self, state: RidgeState, x: FloatArray, reward: float, weight: float = 1.0) -> None:
        """Update ``state`` with reward ``reward`` for the feature row ``x`` it was given for."""
        self.check_state(state)
        self.model.update(state, x, reward, weight)


class Bandit:
    """One policy with its own state and seeded generator, learning online in memory.

    >>> from oo_ml.policies.registry import get_policy
    >>> bandit = Bandit(get_policy("linucb-v1"), seed=7)
    >>> decision = bandit.rank(Context(9, 2), [Candidate("a"), Candidate("b", priority=4)])
    >>> bandit.learn(decision, 1.0)
    >>> bandit.state.n_updates
    1
    """

    def __init__(
        self, policy: Policy, seed: int | None = None, state: RidgeState | None = None
    ) -> None:
        self.policy = policy
        self.state = policy.new_state() if state is None else state
        policy.check_state(self.state)
        self.rng = np.random.default_rng(seed)

        self._issued: Decision | None = None

    def rank(self, context: Context, candidates: Sequence[Candidate]) -> Decision:
        decision = self.policy.rank(self.state, context, candidates, self.rng)
        self._issued = decision
        return decision

    def learn(self, decision: Decision, reward: float) -> None:
        """Learn from the reward of ``decision``'s chosen candidate."""
        if decision is self._issued:
            # Its row came from our encoder, out of validated candidates, and is read-only:
            # no need to check it again, only the reward.
            self.policy.check_state(self.state)
            self.policy.model.update_encoded(self.state, decision.chosen_features, reward)
        else:
            self.policy.learn(self.state, decision.chosen_features, reward)
