"""The simulator's own decisions in this process: a policy's decide and learn, and the reward
rule, for every simulated user of a step, without the serving engine's per-request plumbing.

A simulated step of an in-process run used to go through :class:`~oo_ml.engine.Engine` over a
memory store: a request validated, an event id and a decision record made, stored and read back
at the feedback, the user's state loaded and saved, a feedback record stored. For a policy
whose own round costs 20–50 µs, that plumbing cost two to three times the round, and the
simulated world as much again (ADR 0010). Nobody reads those records: the run's events are its
log.

:class:`DirectDecisions` keeps what decides the numbers and nothing else:

- every user's :class:`~oo_ml.policies.model.RidgeState`, in memory;
- each policy's decision seeds, from the stream the engine's path draws them from
  (:class:`~oo_ml.sim.runner.DecisionSeeds`), one per decision in the users' order;
- the features of every user's pool for the whole step at once, by the encoder's column form
  (:meth:`~oo_ml.features.Encoder.encode_columns`, the rows :meth:`Encoder.encode` gives, bit
  for bit);
- :meth:`Policy.decide` and :meth:`Policy.learn`, and the run's reward rule, as the engine calls
  them.

So a run makes the very same events through either path (``tests/sim/test_direct.py`` holds
them equal, event for event, for every policy it takes). Policies with a population prior are
not taken: their prior is refitted from every user's stored state as the engine keeps it, and
they go through the engine as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from oo_ml.policies import get_policy
from oo_ml.policies.base import Policy, seeded_generator
from oo_ml.policies.model import RidgeState
from oo_ml.rewards import RewardRule
from oo_ml.sim.tasks import Pools
from oo_ml.types import FloatArray, Outcome

__all__ = ["DirectDecisions", "takes"]


def takes(policy: Policy) -> bool:
    """Whether :class:`DirectDecisions` can decide for ``policy``: any policy without a
    population prior."""
    return policy.population is None


class DirectDecisions:
    """Decisions and learning for the members of a :class:`~oo_ml.sim.runner.Cohort` whose
    policies :func:`takes` (``None`` in :attr:`policies` for the others).

    ``seeds(policy)`` gives a policy's next decision seed.
    """

    def __init__(
        self, policies: Sequence[str], rule: RewardRule, seeds: Callable[[str], int]
    ) -> None:
        self.policies: tuple[Policy | None, ...] = tuple(
            policy if takes(policy := get_policy(name)) else None for name in policies
        )
        self._rule = rule
        self._seeds = seeds
        self._states: list[RidgeState | None] = [
            None if policy is None else policy.new_state() for policy in self.policies
        ]
        self._rows: list[FloatArray | None] = [None] * len(self.policies)
        encoders = {p.encoder.name: p.encoder for p in self.policies if p is not None}
        # Each encoder with its members: as a mask over all members, and listed.
        self._encoders = []
        for encoder in encoders.values():
            members = np.array([p is not None and p.encoder is encoder for p in self.policies])
            self._encoders.append((encoder, members, np.flatnonzero(members).tolist()))

    def __len__(self) -> int:
        return sum(policy is not None for policy in self.policies)

    def _taken(self, m: int) -> tuple[Policy, RidgeState]:
        policy, state = self.policies[m], self._states[m]
        if policy is None or state is None:
            raise KeyError(f"member {m} is not decided here")
        return policy, state

    def state(self, m: int) -> RidgeState:
        """Member ``m``'s learned state."""
        return self._taken(m)[1]

    def see(self, pools: Pools) -> list[FloatArray | None]:
        """Every taken member's candidates now, encoded for its policy (``None`` for the
        others): member ``m``'s tasks in its pool's order, as
        :meth:`~oo_ml.sim.tasks.Pools.candidates` gives them to the engine."""
        columns = pools.candidate_columns()
        counts = pools.flat()[0]
        sizes = counts.tolist()
        rows = self._rows
        for encoder, members, listed in self._encoders:
            if len(listed) == len(sizes):  # every member: no rows to pick out
                x = encoder.encode_columns(*columns)
            else:
                held = np.repeat(members, counts)
                x = encoder.encode_columns(*(column[held] for column in columns))
            start = 0
            for m in listed:
                end = start + sizes[m]
                rows[m] = x[start:end]
                start = end
        return rows

    def rank(self, m: int, features: FloatArray) -> tuple[int, float]:
        """Member ``m``'s choice among the rows of ``features`` (its :meth:`see`): (index,
        its probability)."""
        policy, state = self._taken(m)
        return policy.choose(state, features, seeded_generator(self._seeds(policy.name)))

    def feedback(self, m: int, x: FloatArray, outcome: Outcome) -> int:
        """The reward rule's reward for ``outcome`` of the candidate whose row is ``x``, in
        thousandths, learned by member ``m``'s model."""
        policy, state = self._taken(m)
        milli = self._rule.score(outcome).milli
        # As the engine learns it (Policy.learn), but for the row's checks: the row is the
        # policy's encoder's own.
        policy.model.update_encoded(state, x, milli / 1000.0)
        return milli
