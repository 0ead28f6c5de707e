"""Personas: simulated people, defined as TOML data files.

A persona has a *utility* for each task at each moment — a weighted sum of task features, with
weights that depend on the hour and the day — and a *response model* that turns utility into
what they do with the tip:

    p(done)    = sigmoid(slope · (utility − threshold))
    p(snooze)  = (1 − p(done)) · snooze_share
    p(dismiss) = the rest
    dwell | done ~ log-normal with median ``dwell_median_s`` and log-sd ``dwell_sigma``

Features a persona can weigh (all also visible to the service): ``bias``, ``priority``
((p−1)/3), ``overdue`` (0/1), ``age`` (days overdue, /30, clipped), ``upcoming`` (days until due,
/30, clipped) and ``source.todoist`` / ``source.calendar`` / ``source.email`` / ``source.other``.
``[prefer]`` weights always apply; each ``[[when]]`` table adds its weights when its conditions
hold: ``hours = [from, to]`` (inclusive; ``[22, 2]`` spans midnight), ``weekend = true|false``,
``days = [0, …]`` (Monday = 0). ``awake = [from, to]`` are the hours the person asks for tips
(inclusive, by default ``[7, 22]``; ``[18, 3]`` spans midnight): the simulated world's clock
follows them. ``[drift]`` switches to another persona's preferences, and waking hours, from a
given step on.

File layout::

    name = "morning-focused"
    description = "One or two sentences an LLM judge can role-play from."
    awake = [7, 22]  # optional
    [response]
    threshold = 0.3
    slope = 5.0
    snooze_share = 0.5
    dwell_median_s = 60
    dwell_sigma = 0.8
    [prefer]
    priority = 0.5
    [[when]]
    hours = [5, 11]
    priority = 0.6
    [drift]          # optional
    at_step = 75
    persona = "evening-focused"
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from operator import truediv
from pathlib import Path
from typing import Any

import numpy as np

from oo_ml.compiling import compiled
from oo_ml.errors import ConfigurationError, NotFoundError
from oo_ml.rewards import RewardRule
from oo_ml.sim.tasks import (
    AWAKE,
    TEMPLATE_SOURCES,
    Pools,
    SimTask,
    awake_problem,
    in_hours,
)
from oo_ml.types import Action, Context, FloatArray, IntArray

__all__ = [
    "FEATURES",
    "RULE_CONDITIONS",
    "Persona",
    "PoolsUtilities",
    "Response",
    "Rule",
    "definitions_of",
    "feature_matrix",
    "features_at",
    "load_persona",
    "load_personas",
    "persona_data",
    "pools_oracle",
    "pools_utilities",
    "response_expectation",
    "shipped_personas",
    "static_features",
    "utilities",
]

RULE_CONDITIONS = frozenset({"hours", "weekend", "days"})
"""The keys of a ``[[when]]`` table that say when it applies; the others are weights."""
MAX_NAME_LENGTH = 64
"""The longest persona name (it is stored with every simulated step)."""
MAX_RULES = 64
"""The most ``[[when]]`` tables a persona may have."""
MAX_DESCRIPTION_LENGTH = 2_000
"""The longest persona description (an LLM judge reads it at every step)."""

FEATURES = (
    "bias",
    "priority",
    "overdue",
    "age",
    "upcoming",
    "source.todoist",
    "source.calendar",
    "source.email",
    "source.other",
)
_SOURCE_COLUMN = {"todoist": 5, "calendar": 6, "email": 7}


def task_features(tasks: Sequence[SimTask]) -> FloatArray:
    """(n, len(FEATURES)) matrix of the features personas weigh."""
    return feature_matrix(
        np.array([t.priority for t in tasks], dtype=np.float64),
        np.array([t.due_in_days for t in tasks], dtype=np.float64),
        [t.source for t in tasks],
    )


def feature_matrix(
    priorities: FloatArray, due_in_days: FloatArray, sources: Sequence[str]
) -> FloatArray:
    """:func:`task_features` from a pool's columns (what :meth:`TaskStream.columns` gives)."""
    return features_at(static_features(priorities, sources), due_in_days)


def static_features(priorities: Sequence[float] | FloatArray, sources: Sequence[str]) -> FloatArray:
    """The columns of :func:`feature_matrix` that do not move with the clock; the due-date
    columns are left at zero for :func:`features_at`. Read-only: a pool's tasks keep their
    priority and source, so this can be reused until a task arrives or leaves."""
    if isinstance(priorities, np.ndarray):
        priorities = priorities.tolist()
    rows = [_static_row(p, s) for p, s in zip(priorities, sources, strict=True)]
    x = np.array(rows, dtype=np.float64) if rows else np.zeros((0, len(FEATURES)))
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=1024)
def _static_row(priority: float, source: str) -> tuple[float, ...]:
    """A task's row of :func:`static_features` (there are a handful of distinct ones)."""
    row = [1.0, (priority - 1.0) / 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    row[_SOURCE_COLUMN.get(source.lower(), 8)] = 1.0
    return tuple(row)


def features_at(static: FloatArray, due_in_days: FloatArray) -> FloatArray:
    """:func:`feature_matrix` from :func:`static_features` and the days until each task is due
    (negative: overdue), in place on a copy: a step costs a few operations on its arrays.

    The columns are filled in as rows of the transposed matrix, where they are contiguous
    (operations on strided columns cost twice as much), then transposed back to rows.
    """
    xt = static.T.copy()
    _fill_due_rows(xt, due_in_days)
    return xt.T.copy()


def _fill_due_rows(xt: FloatArray, due_in_days: FloatArray) -> None:
    """Write the due-date features into transposed features (one row per feature)."""
    np.less(due_in_days, 0.0, out=xt[2])
    np.negative(due_in_days, out=xt[3])
    xt[4] = due_in_days
    # age = clip(-due, 0, 30) / 30 and upcoming = clip(due, 0, 30) / 30, both rows at once.
    clipped = xt[3:5]
    np.maximum(clipped, 0.0, out=clipped)
    np.minimum(clipped, 30.0, out=clipped)
    clipped /= 30.0


def utilities(features_t: FloatArray, weights: FloatArray) -> FloatArray:
    """x·w for each task, from transposed features (one row per feature, one column per task)
    and weights (one vector for all tasks, or one column per task).

    Summed feature by feature in :data:`FEATURES` order, element-wise: a task gets the same
    bits alone or in a batch of any size (a BLAS matrix product's rounding depends on the
    matrix's shape and place in memory), which lets the simulator score a whole batch of steps
    at once.
    """
    total: FloatArray = features_t[0] * weights[0]
    for j in range(1, features_t.shape[0]):
        total += features_t[j] * weights[j]
    return total


def response_expectation(
    utility: FloatArray,
    slope: float | FloatArray,
    threshold: float | FloatArray,
    base: float | FloatArray,
    gain: float | FloatArray,
) -> FloatArray:
    """Expected reward from utility, in place: base + gain · sigmoid(slope · (u − threshold))
    (see :meth:`Persona.expected_rewards_of`); parameters are scalars or one per task."""
    utility -= threshold
    utility *= -slope
    np.exp(utility, out=utility)
    utility += 1.0
    np.divide(1.0, utility, out=utility)  # p(done)
    utility *= gain
    utility += base
    return utility


_TEMPLATE_SOURCE_COLUMN = np.array([_SOURCE_COLUMN.get(s, 8) for s in TEMPLATE_SOURCES])
"""The column of each template's source in :data:`FEATURES`."""


@compiled
def _utilities_into(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    counts: Any,
    priorities: Any,
    templates: Any,
    source_columns: Any,
    due: FloatArray,
    table: FloatArray,
    out: FloatArray,
    scaled: FloatArray,
) -> None:
    """x·w of every task of :meth:`Pools.flat` (``due``: :meth:`Pools.due`), member ``m``'s
    tasks weighted by ``table[m, :9]``: each task's :func:`_feature_row`, summed feature by
    feature in :data:`FEATURES` order, as :func:`utilities` and the rule judge sum them (a
    zero's sign aside, which no sum it is added to can tell). Into ``scaled``, what
    :func:`response_expectation` takes the exponential of: (x·w − threshold) · −slope, with
    the member's slope and threshold in ``table[m, 9:11]``."""
    t = 0
    x = np.zeros(9)
    for m in range(counts.shape[0]):
        slope, threshold = table[m, 9], table[m, 10]
        for _ in range(counts[m]):
            d = due[t]
            x[1] = (priorities[t] - 1.0) / 3.0
            x[2] = 1.0 if d < 0.0 else 0.0
            x[3] = min(max(-d, 0.0), 30.0) / 30.0
            x[4] = min(max(d, 0.0), 30.0) / 30.0
            x[5] = x[6] = x[7] = x[8] = 0.0
            x[source_columns[templates[t]]] = 1.0
            total = 1.0 * table[m, 0]
            for j in range(1, 9):
                total += x[j] * table[m, j]
            out[t] = total
            scaled[t] = (total - threshold) * -slope
            t += 1


@compiled
def _oracle_into(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    exponentials: FloatArray,
    counts: Any,
    terms: FloatArray,
    chosen: Any,
    best: FloatArray,
    shown: FloatArray,
) -> None:
    """:func:`response_expectation`'s last steps, task by task: each exponential becomes the
    task's expected reward, base + gain · 1 / (1 + e) (in place), with member ``m``'s base
    and gain in ``terms[m, 2:4]``; each member's best, and the one of task ``chosen[m]``."""
    t = 0
    for m in range(counts.shape[0]):
        base, gain = terms[m, 2], terms[m, 3]
        top = math.nan
        for i in range(counts[m]):
            value = 1.0 / (exponentials[t] + 1.0) * gain + base
            exponentials[t] = value
            if i == 0 or value > top:
                top = value
            if i == chosen[m]:
                shown[m] = value
            t += 1
        best[m] = top


@dataclass(frozen=True, slots=True)
class PoolsUtilities:
    """Every task's utility in every member's pool of a :class:`Pools` at one moment, each
    under its member's persona and context (:func:`pools_utilities`), with what the oracle
    needs beside them."""

    utility: FloatArray
    """x·w of every task, member after member, tasks in pool order (read-only)."""
    starts: list[int]
    """Where each member's tasks start in :attr:`utility`."""
    counts: list[int]
    terms: FloatArray
    """Each member's response and reward constants (columns: slope, threshold, base,
    gain)."""
    scaled: FloatArray
    """Every task's (x·w − threshold) · −slope, whose exponential the oracle takes."""
    counts_array: IntArray
    """:attr:`counts` as the array :meth:`Pools.flat` gives (read-only)."""

    def of(self, m: int, index: int) -> float:
        """Task ``index`` of member ``m``'s utility."""
        return float(self.utility[self.starts[m] + index])

    def oracle(self, chosen: Sequence[int]) -> list[tuple[float, float, float]]:
        """(best, average, shown) expected reward of each member's pool, shown its task
        ``chosen[m]`` (shown: NaN if the pool has no such task): :func:`response_expectation`
        of every task, numpy's exponential between two compiled passes."""
        counts = self.counts
        best, shown = np.empty(len(counts)), np.full(len(counts), math.nan)
        expected = np.exp(self.scaled)
        _oracle_into(expected, self.counts_array, self.terms, np.array(chosen), best, shown)
        total = np.add.reduceat(expected, self.starts).tolist() if counts else []
        return list(zip(best.tolist(), map(truediv, total, counts), shown.tolist(), strict=True))


def pools_utilities(
    pools: Pools, moments: Sequence[tuple[Persona, Context]], rule: RewardRule
) -> PoolsUtilities:
    """Every task's utility in every member's pool of ``pools`` as it stands now, member
    ``m`` having the persona and moment ``moments[m]``; with ``rule``'s reward terms for the
    oracle.

    The same numbers, bit for bit, as one member at a time (:meth:`Persona.utilities` of its
    tasks) and as the rule judge's one task (:meth:`Persona.done_probability`): every
    task's sum is its own, its features added up in :data:`FEATURES` order.
    """
    counts_array, priorities, templates, _, _ = pools.flat()
    counts = counts_array.tolist()
    # Each member's weights and response constants; a step meets few (persona, moment) pairs.
    known: dict[tuple[int, Context], tuple[float, ...]] = {}
    terms = []
    for persona, context in moments:
        found = known.get((id(persona), context))
        if found is None:
            r = persona.response
            found = known[(id(persona), context)] = (
                *persona._weights_at(context)[1], r.slope, r.threshold, *persona.reward_terms(rule)
            )  # fmt: skip
        terms.append(found)
    n = len(FEATURES)
    table = np.array(terms, dtype=np.float64).reshape(len(moments), n + 4)
    utility, scaled = np.empty(len(templates)), np.empty(len(templates))
    if len(templates):
        _utilities_into(
            counts_array, priorities, templates, _TEMPLATE_SOURCE_COLUMN, pools.due(), table,
            utility, scaled,
        )  # fmt: skip
    utility.setflags(write=False)
    return PoolsUtilities(utility, pools.starts(), counts, table[:, n:], scaled, counts_array)


def pools_oracle(
    pools: Pools,
    moments: Sequence[tuple[Persona, Context]],
    chosen: Sequence[int],
    rule: RewardRule,
) -> list[tuple[float, float, float]]:
    """(best, average, shown) expected reward over every member's pool of ``pools`` as it
    stands now, all at once: member ``m`` has the persona and moment ``moments[m]`` and was
    shown its task ``chosen[m]``.

    The same numbers, bit for bit, as one member at a time (:meth:`Persona.expected_rewards`
    of its tasks): every operation is element-wise per task, and each member's maximum and sum
    are reduced over its own tasks only.
    """
    return pools_utilities(pools, moments, rule).oracle(chosen)


def _feature_row(task: SimTask) -> tuple[float, ...]:
    """One task's row of :func:`task_features`, in plain floats (the judge's one-task case)."""
    due = task.due_in_days
    return (
        1.0,
        (task.priority - 1.0) / 3.0,
        1.0 if due < 0 else 0.0,
        min(max(-due, 0.0), 30.0) / 30.0,
        min(max(due, 0.0), 30.0) / 30.0,
        *_source_one_hot(task.source),
    )


@functools.lru_cache(maxsize=256)
def _source_one_hot(source: str) -> tuple[float, float, float, float]:
    """The ``source.*`` features of a task from ``source``."""
    found = [0.0, 0.0, 0.0, 0.0]
    found[_SOURCE_COLUMN.get(source.lower(), 8) - 5] = 1.0
    return (found[0], found[1], found[2], found[3])


@dataclass(frozen=True, slots=True)
class Rule:
    """Weights that apply when the context matches."""

    weights: FloatArray
    hours: tuple[int, int] = (0, 23)
    weekend: bool | None = None
    days: frozenset[int] | None = None

    def applies(self, context: Context) -> bool:
        if not in_hours(self.hours, context.hour_of_day):  # [22, 2]: 22, 23, 0, 1, 2
            return False
        if self.weekend is not None and (context.day_of_week >= 5) != self.weekend:
            return False
        return self.days is None or context.day_of_week in self.days


@dataclass(frozen=True, slots=True)
class Response:
    threshold: float = 0.3
    slope: float = 5.0
    snooze_share: float = 0.5
    dwell_median_s: float = 60.0
    dwell_sigma: float = 0.8


@dataclass(frozen=True, slots=True)
class Persona:
    """A simulated person (see the module docstring for the model)."""

    name: str
    description: str
    response: Response
    prefer: FloatArray
    rules: tuple[Rule, ...] = ()
    drift_at: int | None = None
    drift_to: Persona | None = field(default=None, compare=False)
    awake: tuple[int, int] = AWAKE
    """The hours this person asks for tips, first and last, both included (``(18, 3)`` spans
    midnight)."""
    _weights: dict[int, tuple[FloatArray, tuple[float, ...]]] = field(
        init=False, repr=False, compare=False
    )
    """The weights in force at (hour, day of week), by ``24·day + hour``, as an array and as
    plain floats: each moment's rules are evaluated once instead of at every step."""
    _done_rewards: dict[str, tuple[RewardRule, float]] = field(
        init=False, repr=False, compare=False
    )
    _reward_terms_by_rule: dict[str, tuple[RewardRule, tuple[float, float]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_weights", {})
        object.__setattr__(self, "_done_rewards", {})
        object.__setattr__(self, "_reward_terms_by_rule", {})

    def _weights_at(self, context: Context) -> tuple[FloatArray, tuple[float, ...]]:
        key = 24 * context.day_of_week + context.hour_of_day
        found = self._weights.get(key)
        if found is None:
            w = self.prefer.copy()
            for rule in self.rules:
                if rule.applies(context):
                    w += rule.weights
            w.setflags(write=False)
            found = self._weights[key] = (w, tuple(w.tolist()))
        return found

    def at_step(self, step: int) -> Persona:
        """The preferences in force at ``step`` (after a drift, the other persona's)."""
        if self.drift_to is not None and self.drift_at is not None and step >= self.drift_at:
            return self.drift_to
        return self

    def weights(self, context: Context) -> FloatArray:
        """The weights in force in ``context`` (read-only)."""
        return self._weights_at(context)[0]

    def utilities(self, tasks: Sequence[SimTask], context: Context) -> FloatArray:
        return utilities(task_features(tasks).T, self.weights(context))

    def action_probabilities(self, tasks: Sequence[SimTask], context: Context) -> FloatArray:
        """(n, 3) probabilities of done, snooze, dismiss per task."""
        r = self.response
        done = 1.0 / (1.0 + np.exp(-r.slope * (self.utilities(tasks, context) - r.threshold)))
        snooze = (1.0 - done) * r.snooze_share
        return np.column_stack([done, snooze, 1.0 - done - snooze])

    def done_probability(self, task: SimTask, context: Context) -> float:
        """``action_probabilities([task], context)[0, 0]`` in plain floats: the rule judge asks
        this once per step, where numpy's per-call overhead would cost more than the sum."""
        weights = self._weights_at(context)[1]
        return self.done_of(sum([x * w for x, w in zip(_feature_row(task), weights, strict=True)]))

    def done_of(self, utility: float) -> float:
        """The probability that a task of utility x·w = ``utility`` is done."""
        r = self.response
        z = -r.slope * (utility - r.threshold)
        return 0.0 if z > 700.0 else 1.0 / (1.0 + math.exp(z))

    def dwell_cdf(self, seconds: float) -> float:
        """P(dwell < seconds | done)."""
        if seconds <= 0:
            return 0.0
        r = self.response
        z = (math.log(seconds) - math.log(r.dwell_median_s)) / r.dwell_sigma
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))

    def expected_done_reward(self, rule: RewardRule) -> float:
        """E[reward | done] under ``rule``'s dwell bands (remembered per rule)."""
        cached = self._done_rewards.get(rule.name)
        if cached is not None and cached[0] is rule:
            return cached[1]
        total = 0.0
        for band in rule.actions[Action.DONE].bands:
            upper = 1.0 if band.until_ms is None else self.dwell_cdf(band.until_ms / 1000.0)
            total += (upper - self.dwell_cdf(band.from_ms / 1000.0)) * band.milli / 1000.0
        self._done_rewards[rule.name] = (rule, total)
        return total

    def expected_rewards(
        self, tasks: Sequence[SimTask], context: Context, rule: RewardRule
    ) -> FloatArray:
        """Expected reward of showing each task: the oracle the simulator compares against."""
        return self.expected_rewards_of(task_features(tasks), context, rule)

    def expected_rewards_of(
        self, features: FloatArray, context: Context, rule: RewardRule
    ) -> FloatArray:
        """:meth:`expected_rewards` for a :func:`feature_matrix`.

        With p = p(done) and s the snooze share, E = p·R_done + (1−p)·s·R_snooze +
        (1−p)(1−s)·R_dismiss = base + p·(R_done − base), base = s·R_snooze + (1−s)·R_dismiss.
        """
        r = self.response
        base, gain = self.reward_terms(rule)
        return response_expectation(
            utilities(features.T, self._weights_at(context)[0]), r.slope, r.threshold, base, gain
        )

    def reward_terms(self, rule: RewardRule) -> tuple[float, float]:
        """(base, R_done − base) of :meth:`expected_rewards_of` under ``rule`` (remembered)."""
        cached = self._reward_terms_by_rule.get(rule.name)
        if cached is not None and cached[0] is rule:
            return cached[1]
        r = self.response
        base = (
            r.snooze_share * rule.actions[Action.SNOOZE].milli_for(None)
            + (1.0 - r.snooze_share) * rule.actions[Action.DISMISS].milli_for(None)
        ) / 1000.0
        terms = (base, self.expected_done_reward(rule) - base)
        self._reward_terms_by_rule[rule.name] = (rule, terms)
        return terms

    def sample_dwell_ms(self, rng: np.random.Generator) -> int:
        r = self.response
        seconds = r.dwell_median_s * math.exp(r.dwell_sigma * float(rng.standard_normal()))
        return int(min(seconds, 6 * 3600.0) * 1000)


def _weights_data(weights: FloatArray) -> dict[str, float]:
    return {name: float(w) for name, w in zip(FEATURES, weights.tolist(), strict=True) if w}


def persona_data(persona: Persona) -> dict[str, Any]:
    """What ``persona`` says, laid out as its file is (``awake``, ``response``, ``prefer``,
    ``when``, ``drift``; weights by feature name, zeros left out), so that it reads back as the
    same persona (:func:`load_personas`' ``definitions``): for people checking that a file
    says what they meant, for JSON, and for a run's stored settings."""
    rules = []
    for rule in persona.rules:
        conditions: dict[str, Any] = {"hours": list(rule.hours)}
        if rule.weekend is not None:
            conditions["weekend"] = rule.weekend
        if rule.days is not None:
            conditions["days"] = sorted(rule.days)
        rules.append({**conditions, **_weights_data(rule.weights)})
    drift = None
    if persona.drift_at is not None and persona.drift_to is not None:
        drift = {"at_step": persona.drift_at, "persona": persona.drift_to.name}
    return {
        "name": persona.name,
        "description": persona.description,
        "awake": list(persona.awake),
        "response": dataclasses.asdict(persona.response),
        "prefer": _weights_data(persona.prefer),
        "when": rules,
        "drift": drift,
    }


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (``true`` is not a number here)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}: must be a table of keys and values")
    return value


def _weights(table: Mapping[str, Any], where: str) -> FloatArray:
    table = _table(table, where)
    w = np.zeros(len(FEATURES))
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key == "source" and isinstance(value, Mapping):
            flat.update({f"source.{k}": v for k, v in value.items()})
        elif key not in RULE_CONDITIONS:
            flat[key] = value
    for key, value in flat.items():
        if key not in FEATURES:
            known = ", ".join(FEATURES)
            raise ConfigurationError(f"{where}: unknown feature {key!r}; known: {known}")
        if not _finite(value):
            raise ConfigurationError(f"{where}.{key}: weight must be a finite number")
        w[FEATURES.index(key)] = float(value)
    return w


def _rule(table: Mapping[str, Any], where: str) -> Rule:
    table = _table(table, where)
    hours = table.get("hours", [0, 23])
    if not _hours(hours):
        raise ConfigurationError(
            f"{where}.hours: must be [from, to], two hours of 0 … 23 (from > to spans midnight)"
        )
    weekend = table.get("weekend")
    if weekend is not None and not isinstance(weekend, bool):
        raise ConfigurationError(f"{where}.weekend: must be true or false")
    days = table.get("days")
    if days is not None and not (
        isinstance(days, list)
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
    ):
        raise ConfigurationError(f"{where}.days: must be a list of 0 (Monday) … 6 (Sunday)")
    return Rule(
        _weights(table, where),
        (hours[0], hours[1]),
        weekend,
        None if days is None else frozenset(days),
    )


def _hours(value: Any) -> bool:
    """Whether ``value`` is ``[from, to]``: two hours of 0 … 23."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in value)
    )


def _awake(value: Any, where: str) -> tuple[int, int]:
    if not _hours(value):
        raise ConfigurationError(
            f"{where}: must be [from, to], two hours of 0 … 23 (from > to spans midnight)"
        )
    awake = (value[0], value[1])
    problem = awake_problem(awake)
    if problem is not None:
        raise ConfigurationError(f"{where}: {problem}")
    return awake


def _response(table: Mapping[str, Any], where: str) -> Response:
    table = _table(table, where)
    allowed = set(Response.__dataclass_fields__)
    unknown = set(table) - allowed
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    for key, value in table.items():
        if not _finite(value):
            raise ConfigurationError(f"{where}.{key}: must be a finite number")
    response = Response(**{k: float(v) for k, v in table.items()})
    if not 0 <= response.snooze_share <= 1:
        raise ConfigurationError(f"{where}.snooze_share: must be in [0, 1]")
    if response.slope <= 0 or response.dwell_median_s <= 0 or response.dwell_sigma <= 0:
        raise ConfigurationError(f"{where}: slope, dwell_median_s and dwell_sigma must be > 0")
    return response


def _parse(data: Mapping[str, Any], origin: str) -> tuple[Persona, Mapping[str, Any] | None]:
    unknown = set(data) - {"name", "description", "awake", "response", "prefer", "when", "drift"}
    if unknown:
        raise ConfigurationError(f"{origin}: unknown keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{origin}: needs a name")
    if (
        len(name) > MAX_NAME_LENGTH
        or not name.isprintable()
        or name != name.strip()
        or name.endswith(".toml")
    ):
        raise ConfigurationError(
            f"{origin}: name must be at most {MAX_NAME_LENGTH} printable characters, without"
            " spaces at either end, and not end in .toml (that names a file)"
        )
    description = data.get("description", "")
    if not isinstance(description, str) or not description.strip():
        raise ConfigurationError(f"{origin}: needs a description")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise ConfigurationError(
            f"{origin}: description must be at most {MAX_DESCRIPTION_LENGTH} characters"
        )
    rules = data.get("when", [])
    if not isinstance(rules, list):
        raise ConfigurationError(f"{origin}: when must be a list of tables ([[when]])")
    if len(rules) > MAX_RULES:
        raise ConfigurationError(f"{origin}: at most {MAX_RULES} [[when]] tables")
    drift = data.get("drift")
    if drift is not None:
        drift = _table(drift, f"{origin}: drift")
    persona = Persona(
        name=name,
        description=description.strip(),
        response=_response(data.get("response", {}), f"{origin}: response"),
        prefer=_weights(data.get("prefer", {}), f"{origin}: prefer"),
        rules=tuple(_rule(table, f"{origin}: when[{i}]") for i, table in enumerate(rules)),
        awake=_awake(data.get("awake", list(AWAKE)), f"{origin}: awake"),
    )
    return persona, drift


def _resolve(parsed: Mapping[str, tuple[Persona, Mapping[str, Any] | None]]) -> dict[str, Persona]:
    personas = {name: p for name, (p, _) in parsed.items()}
    for name, (persona, drift) in parsed.items():
        if drift is None:
            continue
        target, at = drift.get("persona"), drift.get("at_step")
        if not isinstance(target, str) or target not in personas or target == name:
            raise ConfigurationError(
                f"{name}: drift.persona must name another persona (shipped, loaded with it, or"
                f" a .toml file beside it), not {target!r}"
            )
        if not isinstance(at, int) or isinstance(at, bool) or at < 1:
            raise ConfigurationError(f"{name}: drift.at_step must be a positive integer")
        personas[name] = dataclasses.replace(persona, drift_at=at, drift_to=personas[str(target)])
    return personas


@functools.cache
def _shipped_files() -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """The shipped persona files, read and parsed once per process (they are package data)."""
    return tuple(
        (entry.name, tomllib.loads(entry.read_text()))
        for entry in sorted(resources.files("oo_ml.sim.personas").iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    )


def _shipped_tables() -> dict[str, tuple[Persona, Mapping[str, Any] | None]]:
    """The shipped personas parsed, their drifts not yet resolved: a new dict each call, of
    personas parsed once per process (a persona is a value; its caches are of pure
    functions of it)."""
    return dict(_shipped_parsed())


@functools.cache
def _shipped_parsed() -> tuple[tuple[str, tuple[Persona, Mapping[str, Any] | None]], ...]:
    parsed = []
    for name, data in _shipped_files():
        persona, drift = _parse(data, name)
        parsed.append((persona.name, (persona, drift)))
    return tuple(parsed)


@functools.cache
def _shipped_data() -> dict[str, dict[str, Any]]:
    """:func:`persona_data` of every shipped persona, once per process. Not to be changed."""
    return {name: persona_data(p) for name, p in shipped_personas().items()}


def shipped_personas() -> dict[str, Persona]:
    """The personas that ship with oo_ml, by name."""
    return dict(_shipped_resolved())


@functools.cache
def _shipped_resolved() -> dict[str, Persona]:
    return _resolve(_shipped_tables())


def load_persona(path: str | Path) -> Persona:
    """A persona from a TOML file (its drift may name a shipped persona)."""
    return load_personas([path])[0]


def _read_file(
    path: Path, parsed: dict[str, tuple[Persona, Mapping[str, Any] | None]], reading: set[Path]
) -> str:
    """Parse the persona file at ``path`` into ``parsed`` and return its persona's name. A
    drift to another ``*.toml`` file (relative to this one) is read too, and named by its
    persona; ``reading`` holds the files being read, so that drifts in a circle are refused."""
    where = path.resolve()
    if where in reading:
        raise ConfigurationError(f"{path}: drift.persona leads back to this file")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    persona, drift = _parse(data, str(path))
    target = None if drift is None else drift.get("persona")
    if drift is not None and isinstance(target, str) and target.endswith(".toml"):
        reading.add(where)
        drift = {**drift, "persona": _read_file(path.parent / target, parsed, reading)}
        reading.discard(where)
    parsed[persona.name] = (persona, drift)
    return persona.name


def load_personas(
    names_or_paths: Iterable[str | Path], definitions: Iterable[Mapping[str, Any]] = ()
) -> list[Persona]:
    """Shipped personas by name, user files by path (``*.toml``) and ``definitions`` by name,
    in the given order. A definition is a persona file's data (:func:`persona_data`'s layout);
    its drift names a shipped persona or another definition, never a file. A file's
    ``drift.persona`` names a shipped persona, one loaded with it, or another file (a path
    relative to the file)."""
    parsed = _shipped_tables()
    for i, data in enumerate(definitions):
        where = f"persona_definitions[{i}]"
        persona, drift = _parse(_table(data, where), where)
        if persona.name in parsed:
            raise ConfigurationError(
                f"{where}: the name {persona.name!r} is taken (a shipped persona or an earlier"
                " definition)"
            )
        if drift is not None and str(drift.get("persona", "")).endswith(".toml"):
            raise ConfigurationError(f"{where}: drift.persona must name a persona, not a file")
        parsed[persona.name] = (persona, drift)
    wanted: list[str] = []
    for item in names_or_paths:
        text = str(item)
        if text.endswith(".toml"):
            wanted.append(_read_file(Path(text), parsed, set()))
        elif text in parsed:
            wanted.append(text)
        else:
            raise NotFoundError(f"unknown persona {text!r}; known: {', '.join(sorted(parsed))}")
    resolved = _resolve(parsed)
    return [resolved[name] for name in wanted]


def definitions_of(personas: Iterable[Persona]) -> list[dict[str, Any]]:
    """The definitions (:func:`persona_data`) that, with the shipped personas, load
    ``personas`` again: those not shipped as they are, and the personas they drift to."""
    shipped = _shipped_data()
    found: dict[str, dict[str, Any]] = {}
    for persona in personas:
        at: Persona | None = persona
        while at is not None and at.name not in found:
            data = persona_data(at)
            if shipped.get(at.name) == data:
                break
            found[at.name] = data
            at = at.drift_to
    return list(found.values())
