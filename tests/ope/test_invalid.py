"""One table of bad inputs, run against every estimator that takes the argument it spoils."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from oo_ml.errors import ValidationError
from oo_ml.ope import Estimate, bootstrap, dm, dr, ips, replay, sample_actions, snips

ESTIMATORS: dict[str, Callable[..., Estimate]] = {
    "ips": ips,
    "snips": snips,
    "dm": dm,
    "dr": dr,
    "replay": replay,
}

# Four rounds, three candidate slots; row 1 pads its last slot.
VALID: dict[str, Any] = {
    "reward": [1.0, 0.0, 0.5, 1.0],
    "pscore": [0.5, 0.25, 1.0, 0.5],
    "target_pscore": [0.2, 0.0, 1.0, 0.5],
    "target_dist": [[0.2, 0.8, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]],
    "q_hat": [[0.1, 0.2, 0.3]] * 4,
    "action": [0, 1, 0, 2],
    "target_action": [0, 0, 0, 2],
    "clip": 5.0,
    "level": 0.9,
}


def with_value(rows: list[Any], index: int, value: Any) -> list[Any]:
    changed = list(rows)
    changed[index] = value
    return changed


@dataclass(frozen=True)
class Case:
    """``argument`` set to ``value`` must raise on ``field`` with ``fragment`` in the message.

    ``needs``: other arguments the estimator must also take for the case to apply (a row count
    mismatch needs ``reward`` to disagree with; an index bound needs ``target_dist``).
    """

    id: str
    argument: str
    value: Any
    field: str
    fragment: str
    needs: frozenset[str] = field(default_factory=frozenset)


R = frozenset({"reward"})
D = frozenset({"target_dist"})
NAN, INF = math.nan, math.inf

CASES = [
    # reward
    Case("reward-2d", "reward", [VALID["reward"]], "reward", "must be a 1-d array"),
    Case("reward-scalar", "reward", 1.0, "reward", "got 0-d"),
    Case("reward-empty", "reward", [], "reward", "at least one round"),
    Case("reward-nan", "reward", [1.0, 0.0, NAN, 1.0], "reward[2]", "is NaN"),
    Case("reward-inf", "reward", [1.0, -INF, 0.0, 1.0], "reward[1]", "is infinite"),
    Case("reward-text", "reward", ["1", "0", "1", "0"], "reward", "must hold numbers"),
    Case("reward-none", "reward", [1.0, None, 0.0, 1.0], "reward", "must hold numbers"),
    Case("reward-ragged", "reward", [[1.0], [0.0, 1.0]], "reward", "rectangular"),
    # pscore
    Case("pscore-zero", "pscore", with_value(VALID["pscore"], 1, 0.0), "pscore[1]", "(0, 1]"),
    Case("pscore-above-1", "pscore", with_value(VALID["pscore"], 0, 1.5), "pscore[0]", "(0, 1]"),
    Case("pscore-negative", "pscore", with_value(VALID["pscore"], 3, -0.5), "pscore[3]", "(0, 1]"),
    Case("pscore-nan", "pscore", with_value(VALID["pscore"], 2, NAN), "pscore[2]", "is NaN"),
    Case("pscore-short", "pscore", [0.5, 0.5, 0.5], "pscore", "has 3 rounds but reward has 4", R),
    Case("pscore-2d", "pscore", [VALID["pscore"]], "pscore", "must be a 1-d array"),
    Case(
        "pscore-subnormal",
        "pscore",
        with_value(VALID["pscore"], 0, 5e-324),
        "pscore[0]",
        "finite weight",
    ),
    # target_pscore
    Case(
        "target_pscore-negative",
        "target_pscore",
        [0.2, -0.1, 1.0, 0.5],
        "target_pscore[1]",
        "[0, 1]",
    ),
    Case(
        "target_pscore-above-1",
        "target_pscore",
        [0.2, 0.0, 1.01, 0.5],
        "target_pscore[2]",
        "[0, 1]",
    ),
    Case("target_pscore-nan", "target_pscore", [NAN, 0.0, 1.0, 0.5], "target_pscore[0]", "is NaN"),
    Case(
        "target_pscore-long",
        "target_pscore",
        [0.5] * 5,
        "target_pscore",
        "has 5 rounds but reward has 4",
        R,
    ),
    # target_dist
    Case("target_dist-1d", "target_dist", [0.5, 0.5], "target_dist", "must be a 2-d array"),
    Case(
        "target_dist-slots",
        "target_dist",
        np.full((4, 2, 2), 0.5),
        "target_dist",
        "has 2 slots (rounds × K × slots); rankings are not supported",
    ),
    Case("target_dist-4d", "target_dist", np.full((4, 2, 1, 1), 0.5), "target_dist", "got 4-d"),
    Case("target_dist-empty", "target_dist", np.zeros((0, 3)), "target_dist", "at least one round"),
    Case(
        "target_dist-no-columns",
        "target_dist",
        np.zeros((4, 0)),
        "target_dist",
        "at least one candidate",
    ),
    Case(
        "target_dist-row-sum",
        "target_dist",
        with_value(VALID["target_dist"], 1, [0.5, 0.4, 0.0]),
        "target_dist[1]",
        "sums to 0.9",
    ),
    Case(
        "target_dist-negative",
        "target_dist",
        with_value(VALID["target_dist"], 0, [0.2, 0.9, -0.1]),
        "target_dist[0][2]",
        "outside [0, 1]",
    ),
    Case(
        "target_dist-nan",
        "target_dist",
        with_value(VALID["target_dist"], 3, [NAN, 0.5, 0.5]),
        "target_dist[3]",
        "is NaN",
    ),
    Case(
        "target_dist-rows",
        "target_dist",
        VALID["target_dist"][:3],
        "target_dist",
        "has 3 rounds but reward has 4",
        R,
    ),
    # q_hat
    Case(
        "q_hat-columns",
        "q_hat",
        [[0.1, 0.2]] * 4,
        "q_hat",
        "has shape (4, 2) but target_dist has shape (4, 3)",
    ),
    Case("q_hat-rows", "q_hat", [[0.1, 0.2, 0.3]] * 5, "q_hat", "has shape (5, 3)"),
    Case(
        "q_hat-nan", "q_hat", with_value(VALID["q_hat"], 1, [0.1, NAN, 0.3]), "q_hat[1]", "is NaN"
    ),
    Case(
        "q_hat-inf",
        "q_hat",
        with_value(VALID["q_hat"], 2, [INF, 0.2, 0.3]),
        "q_hat[2]",
        "is infinite",
    ),
    Case("q_hat-1d", "q_hat", [0.1, 0.2, 0.3, 0.4], "q_hat", "must be a 2-d array"),
    # action
    Case("action-negative", "action", [0, 1, -1, 2], "action[2]", "is -1"),
    Case("action-beyond-K", "action", [3, 1, 0, 2], "action[0]", "must be in [0, 3)", D),
    Case("action-fractional", "action", [0.0, 1.5, 0.0, 2.0], "action[1]", "integer action index"),
    Case("action-nan", "action", [0.0, float("nan"), 0.0, 2.0], "action[1]", "finite"),
    Case("action-bool", "action", [True, False, True, False], "action", "integer action indices"),
    Case("action-short", "action", [0, 1], "action", "has 2 rounds but reward has 4", R),
    # target_action
    Case("target_action-negative", "target_action", [0, -2, 0, 2], "target_action[1]", "is -2"),
    Case("target_action-half", "target_action", [0.5, 0, 0, 2], "target_action[0]", "integer"),
    Case("target_action-text", "target_action", ["a", "b", "c", "d"], "target_action", ""),
    Case(
        "target_action-long", "target_action", [0, 0, 0, 2, 1], "target_action", "has 5 rounds", R
    ),
    # clip
    Case("clip-zero", "clip", 0.0, "clip", "positive weight cap"),
    Case("clip-negative", "clip", -1.0, "clip", "positive weight cap"),
    Case("clip-nan", "clip", NAN, "clip", "positive weight cap"),
    Case("clip-text", "clip", "5", "clip", "must be a number"),
    # level
    Case("level-zero", "level", 0.0, "level", "strictly between 0 and 1"),
    Case("level-one", "level", 1.0, "level", "strictly between 0 and 1"),
    Case("level-percent", "level", 95, "level", "strictly between 0 and 1"),
    Case("level-nan", "level", NAN, "level", "strictly between 0 and 1"),
    Case("level-text", "level", "0.95", "level", "must be a number"),
]


def parameters(estimator: Callable[..., Estimate]) -> set[str]:
    return set(inspect.signature(estimator).parameters)


def call(estimator: Callable[..., Estimate], **overrides: Any) -> Estimate:
    names = parameters(estimator)
    arguments = {name: value for name, value in (VALID | overrides).items() if name in names}
    return estimator(**arguments)


APPLICABLE = [
    pytest.param(name, case, id=f"{name}:{case.id}")
    for name, estimator in ESTIMATORS.items()
    for case in CASES
    if case.argument in parameters(estimator) and case.needs <= parameters(estimator)
]


@pytest.mark.parametrize(("name", "case"), APPLICABLE)
def test_bad_input_raises_naming_the_argument(name: str, case: Case) -> None:
    with pytest.raises(ValidationError) as caught:
        call(ESTIMATORS[name], **{case.argument: case.value})
    assert caught.value.field == case.field
    assert case.fragment in caught.value.message


@pytest.mark.parametrize("name", ESTIMATORS)
def test_valid_table_input_is_accepted(name: str) -> None:
    estimate = call(ESTIMATORS[name])
    assert estimate.name == name
    assert estimate.level == 0.9


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_argument_of_every_estimator_has_a_bad_case(name: str) -> None:
    applicable = {case.argument for n, case in (p.values for p in APPLICABLE) if n == name}
    assert applicable == parameters(ESTIMATORS[name])


def test_snips_refuses_a_target_that_never_takes_a_logged_action() -> None:
    with pytest.raises(ValidationError) as caught:
        snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])
    assert caught.value.field == "target_pscore"
    assert "undefined" in caught.value.message


def test_replay_refuses_logs_where_the_target_never_matches() -> None:
    with pytest.raises(ValidationError) as caught:
        replay([1.0, 0.0], [0, 1], [1, 0])
    assert caught.value.field == "target_action"
    assert "none of the 2 rounds" in caught.value.message


def test_dr_weight_overflow_names_pscore() -> None:
    with pytest.raises(ValidationError) as caught:
        dr([1.0], [5e-324], [[1.0]], [[0.0]], [0])
    assert caught.value.field == "pscore[0]"


def test_sample_actions_checks_its_distribution() -> None:
    with pytest.raises(ValidationError) as caught:
        sample_actions([[0.5, 0.6]], seed=0)
    assert caught.value.field == "target_dist[0]"


@pytest.mark.parametrize(
    ("n_resamples", "fragment"), [(1, "≥ 2"), (0, "≥ 2"), (10.0, "integer"), (True, "integer")]
)
def test_bootstrap_checks_its_resample_count(n_resamples: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        bootstrap(ips, [1.0], [0.5], [0.5], seed=0, n_resamples=n_resamples)
    assert caught.value.field == "n_resamples"
    assert fragment in caught.value.message


def test_bootstrap_validates_through_the_estimator() -> None:
    with pytest.raises(ValidationError) as caught:
        bootstrap(ips, [1.0, 0.0], [0.5, 0.0], [0.5, 0.5], seed=0)
    assert caught.value.field == "pscore[1]"
