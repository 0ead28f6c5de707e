"""Summaries of a simulation run: what the comparison table, the curves and the console show.

For each policy:

- ``mean_reward`` — mean realised reward per step, with a 95% interval from Student's t over the
  simulated users' own means (users are the independent units; steps of one user are not);
- ``normalized`` — (chosen − random) / (oracle − random) in *expected* reward under the personas'
  own models: 0 is choosing at random, 1 is always choosing the best tip (rule judge only);
  ``normalized_last_quarter`` is the same over the last quarter of the steps, after learning;
- ``regret`` — total expected reward lost against the oracle, and per step;
- ``lift_pct`` — mean reward relative to the first policy (the old comparison's "+10.7%");
- ``difference`` and ``difference_ci95`` — mean reward minus the first policy's, with a 95%
  interval from Student's t over the users' *paired* differences: user ``u`` meets the same
  world under every policy (common random numbers), so comparing each user with themself
  leaves out how much users differ from one another, and the interval is much narrower than
  the two policies' own intervals suggest (``None`` for the first policy, and when no user
  played both);
- ``actions`` — shares of done / snooze / dismiss.

A :class:`SummaryBuilder` takes a run's events batch by batch as they are played, so a run's
memory does not grow with its length; :func:`summarize` is the same for a list of events. Each
(policy, user)'s totals add up that user's steps in step order, and users are added up in the
order of their ids: the numbers do not depend on the order the users' steps come in, so a run
summarised while it plays equals its stored events summarised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oo_ml.store.base import SimEvent

__all__ = ["CURVE_POINTS", "SummaryBuilder", "summarize", "t_critical"]

CURVE_POINTS = 50

# Two-sided 95% critical values of Student's t for 1…30 degrees of freedom.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_critical(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.inf
    if df <= len(_T95):
        return _T95[df - 1]
    return 1.96 + 2.4 / df  # within 0.002 of the exact value for df > 30


def _interval(per_user: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(per_user, dtype=np.float64)
    if values.size < 2:
        return (float("nan"), float("nan"))
    half = t_critical(values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return (float(values.mean() - half), float(values.mean() + half))


def _normalized(chosen: float, rand: float, best: float) -> float | None:
    return None if best - rand <= 0 else (chosen - rand) / (best - rand)


_ACTIONS = ("done", "snooze", "dismiss")


@dataclass(slots=True)
class _Totals:
    """One simulated user's steps under one policy, added up in step order."""

    persona: str
    steps: int = 0
    reward_milli: int = 0
    actions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_ACTIONS, 0))
    modelled: bool = False
    """Whether the steps carry the persona model's expected rewards (the rule judge's do)."""
    expected: list[float] = field(default_factory=lambda: [0.0] * 6)
    """Σ chosen, random and oracle expected reward; then the same over the last quarter."""
    bucket: int = -1
    """The curve bucket of the user's latest step."""
    cell: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    """That bucket's [Σ expected (or realised) reward, Σ oracle, Σ random, steps] so far."""


class SummaryBuilder:
    """A run's summary (see the module docstring), from its events as they come.

    ``steps`` is the run's number of steps per user: the last quarter and the curve's
    buckets are set by it. Each user's events must come in step order (as a run plays them,
    and as the stores read them back); users may interleave in any way.
    """

    def __init__(self, policies: Sequence[str], steps: int) -> None:
        self.policies = list(policies)
        self.steps = max(1, steps)
        self._late_from = self.steps - max(1, self.steps // 4)
        self._width = max(1, math.ceil(self.steps / CURVE_POINTS))
        self._totals: dict[str, dict[str, _Totals]] = {name: {} for name in self.policies}
        self._curves: dict[str, dict[int, list[int]]] = {name: {} for name in self.policies}
        """Policy → bucket → the users' finished bucket sums, added exactly (:func:`_exact`),
        and their steps: the same whatever order the users finish a bucket in, and no
        memory per user."""

    def add(self, events: Iterable[SimEvent]) -> None:
        late_from, width = self._late_from, self._width
        for (
            _, policy, user_id, step, persona, _, _, _, _, action, _, reward_milli,
            oracle, rand, chosen,
        ) in events:  # fmt: skip
            users = self._totals.get(policy)
            if users is None:
                users = self._totals[policy] = {}
            totals = users.get(user_id)
            if totals is None:
                totals = users[user_id] = _Totals(persona)
            totals.steps += 1
            totals.reward_milli += reward_milli
            totals.actions[action] = totals.actions.get(action, 0) + 1
            if step // width != totals.bucket:
                if totals.bucket >= 0:
                    _add_cell(self._curves.setdefault(policy, {}), totals.bucket, totals.cell)
                    totals.cell = [0.0, 0.0, 0.0, 0.0]
                totals.bucket = step // width
            bucket = totals.cell
            bucket[3] += 1.0
            if chosen is None or oracle is None or rand is None:
                bucket[0] += reward_milli / 1000.0
                continue
            totals.modelled = True
            sums = totals.expected
            sums[0] += chosen
            sums[1] += rand
            sums[2] += oracle
            if step >= late_from:
                sums[3] += chosen
                sums[4] += rand
                sums[5] += oracle
            bucket[0] += chosen
            bucket[1] += oracle
            bucket[2] += rand

    def result(self) -> dict[str, Any]:
        """The summary as plain JSON-safe data."""
        ordered = {
            name: [users[user] for user in sorted(users)] for name, users in self._totals.items()
        }
        means = {
            name: {
                user: totals.reward_milli / totals.steps / 1000.0
                for user, totals in sorted(users.items())
            }
            for name, users in self._totals.items()
        }
        table = {
            name: self._policy(totals, list(means[name].values()))
            for name, totals in ordered.items()
        }
        first = self.policies[0] if self.policies else None
        if first is not None:
            base = table[first]["mean_reward"]
            for name, row in table.items():
                row["lift_pct"] = (
                    None if base == 0 else 100.0 * (row["mean_reward"] - base) / abs(base)
                )
                if name == first:
                    row["difference"], row["difference_ci95"] = None, None
                else:
                    row["difference"], row["difference_ci95"] = _paired(means[first], means[name])
        return {
            "steps": self.steps,
            "first_policy": first,
            "policies": table,
            "personas": self._personas(ordered),
            "curve": self._curve(ordered, self._finished_curves()),
        }

    @staticmethod
    def _policy(users: list[_Totals], user_means: list[float]) -> dict[str, Any]:
        steps = sum(t.steps for t in users)
        actions = {a: sum(t.actions.get(a, 0) for t in users) for a in _ACTIONS}
        modelled = any(t.modelled for t in users)
        sums = _add_up(users)
        regret = sums[2] - sums[0] if modelled else None
        return {
            "mean_reward": sum(t.reward_milli for t in users) / max(1, steps) / 1000.0,
            "ci95": list(_interval(user_means)),
            "normalized": _normalized(*sums[:3]) if modelled else None,
            "normalized_last_quarter": _normalized(*sums[3:]) if modelled else None,
            "regret": regret,
            "regret_per_step": None if regret is None else regret / max(1, steps),
            "actions": {a: actions[a] / max(1, steps) for a in _ACTIONS},
            "users": len(users),
            "events": steps,
        }

    @staticmethod
    def _personas(ordered: dict[str, list[_Totals]]) -> dict[str, dict[str, dict[str, Any]]]:
        found: dict[str, dict[str, list[_Totals]]] = {}
        for name, users in ordered.items():
            for totals in users:
                found.setdefault(totals.persona, {}).setdefault(name, []).append(totals)
        return {
            persona: {
                name: {
                    "mean_reward": sum(t.reward_milli for t in users)
                    / sum(t.steps for t in users)
                    / 1000.0,
                    "normalized": (
                        _normalized(*_add_up(users)[:3]) if any(t.modelled for t in users) else None
                    ),
                }
                for name, users in by_policy.items()
            }
            for persona, by_policy in sorted(found.items())
        }

    def _finished_curves(self) -> dict[str, dict[int, list[int]]]:
        """Every policy's bucket sums with each user's open bucket added (on copies: the
        builder can take more events afterwards)."""
        curves = {
            name: {index: list(sums) for index, sums in buckets.items()}
            for name, buckets in self._curves.items()
        }
        for name, users in self._totals.items():
            for totals in users.values():
                if totals.bucket >= 0:
                    _add_cell(curves.setdefault(name, {}), totals.bucket, totals.cell)
        return curves

    def _curve(
        self, ordered: dict[str, list[_Totals]], curves: dict[str, dict[int, list[int]]]
    ) -> dict[str, Any]:
        """Mean reward per step bucket: expected reward with a model, realised otherwise."""
        width = self._width
        buckets = list(range(0, self.steps, width))
        series: dict[str, list[float]] = {}
        oracle: list[float] = []
        rand: list[float] = []
        for name, users in ordered.items():
            sums = curves.get(name, {})
            rows = [sums.get(index, [0, 0, 0, 0]) for index in range(len(buckets))]
            counts = [max(row[3], 1) for row in rows]
            series[name] = [_float(row[0], n) for row, n in zip(rows, counts, strict=True)]
            if not oracle and any(t.modelled for t in users):
                oracle = [_float(row[1], n) for row, n in zip(rows, counts, strict=True)]
                rand = [_float(row[2], n) for row, n in zip(rows, counts, strict=True)]
        return {
            "steps": [b + (min(b + width, self.steps) - b - 1) / 2 for b in buckets],
            "series": series,
            "oracle": oracle,
            "random": rand,
            "measure": "expected reward" if oracle else "reward",
        }


_EXACT_BITS = 1074
"""A float is an integer times 2⁻¹⁰⁷⁴ at the finest (the smallest subnormal)."""


def _exact(value: float) -> int:
    """``value`` as an integer number of 2⁻¹⁰⁷⁴: sums of these are exact in any order."""
    numerator, denominator = value.as_integer_ratio()  # the denominator is a power of two
    return numerator * ((1 << _EXACT_BITS) // denominator)


def _float(total: int, count: int) -> float:
    """An exact sum (:func:`_exact`) divided by ``count``, rounded once."""
    return total / (count << _EXACT_BITS)


def _add_cell(buckets: dict[int, list[int]], index: int, cell: list[float]) -> None:
    """Add one user's sums for bucket ``index`` to ``buckets``, exactly."""
    sums = buckets.setdefault(index, [0, 0, 0, 0])
    sums[0] += _exact(cell[0])
    sums[1] += _exact(cell[1])
    sums[2] += _exact(cell[2])
    sums[3] += int(cell[3])


def _add_up(users: Sequence[_Totals]) -> list[float]:
    """The users' expected-reward sums, added in the order given."""
    total = [0.0] * 6
    for totals in users:
        for i, value in enumerate(totals.expected):
            total[i] += value
    return total


def _paired(first: dict[str, float], other: dict[str, float]) -> tuple[float | None, Any]:
    """Mean of ``other − first`` over the users in both, and its 95% interval."""
    diffs = [other[user] - first[user] for user in other if user in first]
    if not diffs:
        return None, None
    return float(np.mean(diffs)), list(_interval(diffs))


def summarize(events: Sequence[SimEvent], policies: Sequence[str]) -> dict[str, Any]:
    """The summary of a run's ``events`` (see :class:`SummaryBuilder`); its number of steps
    per user is taken from the events."""
    builder = SummaryBuilder(policies, 1 + max((e.step for e in events), default=0))
    builder.add(events)
    return builder.result()
