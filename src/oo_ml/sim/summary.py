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
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from oo_ml.store.base import SimEvent

__all__ = ["CURVE_POINTS", "summarize", "t_critical"]

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


def _normalized(events: Sequence[SimEvent]) -> float | None:
    if not events or events[0].oracle_reward is None:
        return None
    chosen = sum(e.chosen_expected or 0.0 for e in events)
    rand = sum(e.random_reward or 0.0 for e in events)
    best = sum(e.oracle_reward or 0.0 for e in events)
    return None if best - rand <= 0 else (chosen - rand) / (best - rand)


def _user_means(events: Sequence[SimEvent]) -> dict[str, float]:
    """Each simulated user's mean reward."""
    by_user: dict[str, list[float]] = defaultdict(list)
    for e in events:
        by_user[e.user_id].append(e.reward_milli / 1000.0)
    return {user: float(np.mean(rewards)) for user, rewards in by_user.items()}


def _paired(first: dict[str, float], other: dict[str, float]) -> tuple[float | None, list[float]]:
    """Mean of ``other − first`` over the users in both, and its 95% interval."""
    diffs = [other[user] - first[user] for user in other if user in first]
    if not diffs:
        return None, [float("nan"), float("nan")]
    return float(np.mean(diffs)), list(_interval(diffs))


def _policy_summary(events: Sequence[SimEvent], steps: int) -> dict[str, Any]:
    actions: dict[str, int] = defaultdict(int)
    for e in events:
        actions[e.action] += 1
    user_means = list(_user_means(events).values())
    mean = float(np.mean([e.reward_milli for e in events])) / 1000.0 if events else 0.0
    late = [e for e in events if e.step >= steps - max(1, steps // 4)]
    has_model = bool(events) and events[0].oracle_reward is not None
    regret = (
        sum((e.oracle_reward or 0.0) - (e.chosen_expected or 0.0) for e in events)
        if has_model
        else None
    )
    return {
        "mean_reward": mean,
        "ci95": list(_interval(user_means)),
        "normalized": _normalized(events),
        "normalized_last_quarter": _normalized(late),
        "regret": regret,
        "regret_per_step": None if regret is None else regret / max(1, len(events)),
        "actions": {a: actions[a] / max(1, len(events)) for a in ("done", "snooze", "dismiss")},
        "users": len(user_means),
        "events": len(events),
    }


def _curve(by_policy: dict[str, list[SimEvent]], steps: int) -> dict[str, Any]:
    """Mean reward per step bucket: expected reward with a model, realised otherwise."""
    width = max(1, math.ceil(steps / CURVE_POINTS))
    buckets = list(range(0, steps, width))
    series: dict[str, list[float]] = {}
    oracle: list[float] = []
    rand: list[float] = []
    for name, events in by_policy.items():
        sums = np.zeros(len(buckets))
        best = np.zeros(len(buckets))
        base = np.zeros(len(buckets))
        counts = np.zeros(len(buckets))
        for e in events:
            i = e.step // width
            modelled = e.chosen_expected is not None
            sums[i] += e.chosen_expected if modelled else e.reward_milli / 1000.0
            best[i] += e.oracle_reward or 0.0
            base[i] += e.random_reward or 0.0
            counts[i] += 1
        safe = np.maximum(counts, 1)
        series[name] = (sums / safe).tolist()
        if not oracle and events and events[0].oracle_reward is not None:
            oracle, rand = (best / safe).tolist(), (base / safe).tolist()
    return {
        "steps": [b + (min(b + width, steps) - b - 1) / 2 for b in buckets],
        "series": series,
        "oracle": oracle,
        "random": rand,
        "measure": "expected reward" if oracle else "reward",
    }


def summarize(events: Sequence[SimEvent], policies: Sequence[str]) -> dict[str, Any]:
    """The run's summary as plain JSON-safe data (see the module docstring)."""
    steps = 1 + max((e.step for e in events), default=0)
    by_policy: dict[str, list[SimEvent]] = {p: [] for p in policies}
    by_persona: dict[str, dict[str, list[SimEvent]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        by_policy.setdefault(e.policy, []).append(e)
        by_persona[e.persona][e.policy].append(e)
    table = {name: _policy_summary(evs, steps) for name, evs in by_policy.items()}
    first = policies[0] if policies else None
    if first is not None:
        base = table[first]["mean_reward"]
        base_users = _user_means(by_policy[first])
        for name, row in table.items():
            row["lift_pct"] = None if base == 0 else 100.0 * (row["mean_reward"] - base) / abs(base)
            if name == first:
                row["difference"], row["difference_ci95"] = None, None
            else:
                row["difference"], row["difference_ci95"] = _paired(
                    base_users, _user_means(by_policy[name])
                )
    personas = {
        persona: {
            policy: {
                "mean_reward": float(np.mean([e.reward_milli for e in evs])) / 1000.0,
                "normalized": _normalized(evs),
            }
            for policy, evs in policy_events.items()
        }
        for persona, policy_events in sorted(by_persona.items())
    }
    return {
        "steps": steps,
        "first_policy": first,
        "policies": table,
        "personas": personas,
        "curve": _curve(by_policy, steps),
    }
