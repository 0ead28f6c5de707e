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
- each policy's decision seeds, from the stream the engine's path draws them from (the
  runner's ``_Seeds``), one per decision in the users' order;
- the features of every user's pool for the whole step at once, by the encoder's column form
  (:meth:`~oo_ml.features.Encoder.encode_columns`, the rows :meth:`Encoder.encode` gives, bit
  for bit);
- the policy's own choice and learning, and the run's reward rule, as the engine calls them:
  :meth:`Policy.choose` and :meth:`RidgeModel.update_encoded` one user at a time, or, for the
  users of a greedy, ε-greedy or UCB policy without a discount, the same arithmetic for all of
  them in one compiled call each (:class:`_Group`, their states stacked in arrays).

So a run makes the very same events through either path (``tests/sim/test_direct.py`` holds
them equal, event for event and state for state, for every policy it takes). Policies with a
population prior are not taken: their prior is refitted from every user's stored state as the
engine keeps it, and they go through the engine as before (ADR 0012).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from oo_ml.compiling import compiled
from oo_ml.policies import get_policy
from oo_ml.policies.base import Policy, _drawn_at, _only_possible, seeded_generator
from oo_ml.policies.exploration import TIE_TOLERANCE, UCB, EpsilonGreedy, Greedy
from oo_ml.policies.kernels import sherman_morrison, tie_split_into, ucb_distribution
from oo_ml.policies.model import RidgeState
from oo_ml.policies.pcg import _first_random
from oo_ml.rewards import RewardRule
from oo_ml.sim.tasks import Pools
from oo_ml.types import Action, FloatArray, IntArray

__all__ = ["DirectDecisions", "takes"]

_GREEDY, _EPSILON_GREEDY, _UCB = 0, 1, 2
"""The explorations a :class:`_Group` decides for in one compiled call."""


def takes(policy: Policy) -> bool:
    """Whether :class:`DirectDecisions` can decide for ``policy``: any policy without a
    population prior."""
    return policy.population is None


def _kind(policy: Policy) -> tuple[int, float] | None:
    """(kind, its parameter) if a :class:`_Group` can decide for ``policy`` (greedy,
    ε-greedy or UCB, undiscounted); ``None`` for the others."""
    exploration = policy.exploration
    if policy.model.discount != 1.0:
        return None
    if type(exploration) is Greedy:
        return _GREEDY, 0.0
    if type(exploration) is EpsilonGreedy:
        return _EPSILON_GREEDY, exploration.epsilon
    if type(exploration) is UCB:
        return _UCB, exploration.alpha
    return None


@compiled
def _choose_each(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    kind: int,
    parameter: float,
    features: FloatArray,
    starts: IntArray,
    counts: IntArray,
    means: FloatArray,
    a_inv: FloatArray,
    seeds: IntArray,
    chosen: IntArray,
    probability: FloatArray,
) -> None:
    """Each member's choice among its rows of ``features`` (its ``means`` after one another),
    as :meth:`Policy.choose` makes it: the exploration's probabilities by the same kernels
    (:func:`~oo_ml.policies.kernels.tie_split_into`, :func:`~oo_ml.policies.kernels.
    ucb_distribution`), then the same draw from the decision's seed (its generator's first
    number), made only when more than one candidate is possible."""
    at = 0
    for i in range(seeds.shape[0]):
        k = counts[i]
        mine = means[at : at + k]
        if kind == _UCB:
            start = starts[i]
            probs = ucb_distribution(
                features[start : start + k], a_inv[i], mine, parameter, TIE_TOLERANCE
            )[1]
        else:
            probs = np.empty(k)
            mass = 1.0 - parameter
            tie_split_into(mine, mass, parameter / k, TIE_TOLERANCE, probs)
        index = _only_possible(probs)
        if index < 0:
            index = _drawn_at(probs, _first_random(seeds[i], 0))
        chosen[i] = index
        probability[i] = probs[index]
        at += k


@compiled
def _learn_each(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    a: FloatArray,
    a_inv: FloatArray,
    b: FloatArray,
    theta: FloatArray,
    rows: FloatArray,
    rewards: FloatArray,
) -> None:
    """Every member's Sherman–Morrison update with its row and reward, weight 1."""
    for i in range(rewards.shape[0]):
        sherman_morrison(a[i], a_inv[i], b[i], theta[i], rows[i], rewards[i], 1.0)


class _Group:
    """The members of one greedy, ε-greedy or UCB policy (undiscounted), their states stacked
    in arrays: each step they are ranked in one compiled call (:func:`_choose_each`) and
    learn in another (:func:`_learn_each`), with the arithmetic of
    :meth:`Policy.choose` and :meth:`RidgeModel.update_encoded`. Every member learns once a
    step, so they share their update counters."""

    def __init__(self, policy: Policy, members: list[int], kind: tuple[int, float]) -> None:
        self.policy = policy
        self.members = members
        self.kind, self.parameter = kind
        fresh = policy.new_state()
        count = len(members)
        self.a = np.repeat(fresh.A[None], count, axis=0)
        self.a_inv = np.repeat(fresh.A_inv[None], count, axis=0)
        self.b = np.repeat(fresh.b[None], count, axis=0)
        self.theta = np.repeat(fresh.theta[None], count, axis=0)
        self.prior_mean = np.repeat(fresh.prior_mean[None], count, axis=0)
        self.n_updates = 0
        self.since_refactor = 0
        self.rows = np.empty((count, policy.dim))
        self.rewards = np.empty(count)
        self.given = 0
        """Feedback given since the last :meth:`learn`: one per member a step."""

    def state(self, i: int) -> RidgeState:
        """Member number ``i``'s state: views of the stacked arrays."""
        return RidgeState(
            self.policy.encoder.name, self.a[i], self.b[i], self.a_inv[i], self.theta[i],
            self.prior_mean[i], self.n_updates, self.since_refactor,
        )  # fmt: skip

    def learn(self) -> None:
        """Every member's update with the row and reward its feedback left."""
        if self.given != len(self.members):
            raise RuntimeError(
                f"{self.policy.name}: {self.given} of {len(self.members)} members were given"
                " feedback this step; every one learns once a step"
            )
        self.given = 0
        _learn_each(self.a, self.a_inv, self.b, self.theta, self.rows, self.rewards)
        self.n_updates += 1
        self.since_refactor += 1
        model = self.policy.model
        if model.refactor_every and self.since_refactor >= model.refactor_every:
            for i in range(len(self.members)):
                state = self.state(i)
                model.refactor(state)
                self.a_inv[i], self.theta[i] = state.A_inv, state.theta
            self.since_refactor = 0


class DirectDecisions:
    """Decisions and learning for the members of a :class:`~oo_ml.sim.runner.Cohort` whose
    policies :func:`takes` (``None`` in :attr:`policies` for the others).

    A step is :meth:`see`, :meth:`rank_all`, a :meth:`feedback` for each member ranked, then
    :meth:`learned`. ``seeds(policy)`` gives a policy's next decision seed.
    """

    def __init__(
        self, policies: Sequence[str], rule: RewardRule, seeds: Callable[[str], int]
    ) -> None:
        self.policies: tuple[Policy | None, ...] = tuple(
            policy if takes(policy := get_policy(name)) else None for name in policies
        )
        self._rule = rule
        self._seeds = seeds
        members_of: dict[str, list[int]] = {}
        for m, taken in enumerate(self.policies):
            if taken is not None:
                members_of.setdefault(taken.name, []).append(m)
        self._groups: list[_Group] = []
        self._in_group: list[tuple[_Group, int] | None] = [None] * len(self.policies)
        """Member ``m``'s group and its number in it, if its policy has one."""
        for name, listed in members_of.items():
            kind = _kind(get_policy(name))
            if kind is not None:
                group = _Group(get_policy(name), listed, kind)
                self._groups.append(group)
                for i, m in enumerate(listed):
                    self._in_group[m] = (group, i)
        self._states: list[RidgeState | None] = [
            policy.new_state() if policy is not None and self._in_group[m] is None else None
            for m, policy in enumerate(self.policies)
        ]
        """The states of the members outside any group."""
        self._rows: list[FloatArray | None] = [None] * len(self.policies)
        self._starts: list[int] = [0] * len(self.policies)
        """Where member ``m``'s rows start in its encoder's features (:meth:`see`)."""
        self._features: dict[str, FloatArray] = {}
        """Every member's rows, by encoder (:meth:`see`)."""
        encoders = {p.encoder.name: p.encoder for p in self.policies if p is not None}
        # Each encoder with its members: as a mask over all members, and listed.
        self._encoders = []
        for encoder in encoders.values():
            mask = np.array([p is not None and p.encoder is encoder for p in self.policies])
            self._encoders.append((encoder, mask, np.flatnonzero(mask).tolist()))

    def __len__(self) -> int:
        return sum(policy is not None for policy in self.policies)

    def state(self, m: int) -> RidgeState:
        """Member ``m``'s learned state (of a group's member: views of its arrays)."""
        found = self._in_group[m]
        if found is not None:
            return found[0].state(found[1])
        state = self._states[m]
        if state is None:
            raise KeyError(f"member {m} is not decided here")
        return state

    def see(self, pools: Pools) -> list[FloatArray | None]:
        """Every taken member's candidates now, encoded for its policy (``None`` for the
        others): member ``m``'s tasks in its pool's order, as
        :meth:`~oo_ml.sim.tasks.Pools.candidates` gives them to the engine."""
        columns = pools.candidate_columns()
        counts = pools.flat()[0]
        sizes = counts.tolist()
        rows, starts = self._rows, self._starts
        for encoder, mask, listed in self._encoders:
            if len(listed) == len(sizes):  # every member: no rows to pick out
                x = encoder.encode_columns(*columns)
            else:
                held = np.repeat(mask, counts)
                x = encoder.encode_columns(*(column[held] for column in columns))
            self._features[encoder.name] = x
            start = 0
            for m in listed:
                end = start + sizes[m]
                rows[m] = x[start:end]
                starts[m] = start
                start = end
        return rows

    def _seen(self, m: int) -> FloatArray:
        x = self._rows[m]
        if x is None:
            raise RuntimeError("see() comes first")
        return x

    def rank_all(self) -> list[tuple[int, float] | None]:
        """Every taken member's choice among the rows :meth:`see` gave it: (index, its
        probability); ``None`` for the others. Seeds are drawn member after member, one per
        decision, as the engine draws them."""
        ranked: list[tuple[int, float] | None] = [None] * len(self.policies)
        for m, (policy, state) in enumerate(zip(self.policies, self._states, strict=True)):
            if policy is not None and state is not None:
                x = self._seen(m)
                ranked[m] = policy.choose(state, x, seeded_generator(self._seeds(policy.name)))
        for group in self._groups:
            members = group.members
            name = group.policy.name
            seeds = np.array([self._seeds(name) for _ in members], dtype=np.int64)
            member_rows = [self._seen(m) for m in members]
            # θ·x as Policy.choose computes it (numpy's product, whose rounding is its own).
            means = np.concatenate(
                [x.dot(theta) for x, theta in zip(member_rows, group.theta, strict=True)]
            )
            counts = np.array([x.shape[0] for x in member_rows], dtype=np.int64)
            chosen = np.empty(len(members), dtype=np.int64)
            probability = np.empty(len(members))
            _choose_each(
                group.kind, group.parameter, self._features[group.policy.encoder.name],
                np.array([self._starts[m] for m in members], dtype=np.int64), counts, means,
                group.a_inv, seeds, chosen, probability,
            )  # fmt: skip
            for m, index, p in zip(members, chosen.tolist(), probability.tolist(), strict=True):
                ranked[m] = (index, p)
        return ranked

    def feedback(self, m: int, x: FloatArray, action: Action, dwell_ms: int | None) -> int:
        """The reward rule's reward for ``action`` and ``dwell_ms`` (the rule judge's verdict)
        on the candidate whose row is ``x``, in thousandths, for member ``m`` to learn: at
        once, or with its group's other members at :meth:`learned`."""
        milli = self._rule.milli_of(action, dwell_ms)
        found = self._in_group[m]
        if found is not None:
            group, i = found
            group.rows[i] = x
            group.rewards[i] = milli / 1000.0
            group.given += 1
            return milli
        policy, state = self.policies[m], self._states[m]
        if policy is None or state is None:
            raise KeyError(f"member {m} is not decided here")
        # As the engine learns it (Policy.learn), but for the row's checks: the row is the
        # policy's encoder's own.
        policy.model.update_encoded(state, x, milli / 1000.0)
        return milli

    def learned(self) -> None:
        """The step's feedback learned by every group's members (each was given one)."""
        for group in self._groups:
            group.learn()
