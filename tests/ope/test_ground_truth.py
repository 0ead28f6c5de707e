"""Against ground truth: many seeded logs from a world whose target value is known exactly.

Each estimator's 95 % interval must cover the truth in a share of the ``REPS`` logs that a
Binomial(REPS, 0.95) draw lands in with probability ≈ 0.999 ([0.91, 0.99] for 300), and its
mean over the logs must be within ``Z_BIAS`` standard errors of the truth. Every draw is
seeded, so the outcome is fixed: the test cannot flake, only catch a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from oo_ml.ope import Estimate, bootstrap, dm, dr, ips, replay, sample_actions, snips
from tests.ope.synthetic import PAD_JUNK, Logs, make_environment

REPS = 300
N = 2000
COVERAGE_BAND = (0.91, 0.99)
Z_BIAS = 4.0

pytestmark = pytest.mark.slow  # about 6 s: 300 logs × 10 scenarios, plus a bootstrap run

WORLD = make_environment(seed=1)
UNIFORM_WORLD = make_environment(seed=2, uniform_logging=True)


def biased_model(logs: Logs) -> np.ndarray:
    """A reward model shrunk towards 0.4: wrong for every candidate, by up to ±0.28."""
    return np.where(logs.q_true == PAD_JUNK, PAD_JUNK, 0.5 * logs.q_true + 0.2)


def wrong_pscore(logs: Logs) -> np.ndarray:
    """Propensities from the wrong policy: a logger that recorded the target's probabilities.

    IPS then returns the logging policy's own mean reward; DR with a true model is unmoved.
    """
    return logs.target_pscore


@dataclass(frozen=True)
class Scenario:
    estimate: Callable[[Logs, int], Estimate]
    uniform_world: bool = False
    valid: bool = True  # False: known to be biased here, kept to show the checks can fail

    @property
    def truth(self) -> float:
        return (UNIFORM_WORLD if self.uniform_world else WORLD).true_value


SCENARIOS: dict[str, Scenario] = {
    "ips": Scenario(lambda g, _: ips(g.reward, g.pscore, g.target_pscore)),
    "snips": Scenario(lambda g, _: snips(g.reward, g.pscore, g.target_pscore)),
    "dm, true model": Scenario(lambda g, _: dm(g.target_dist, g.q_true)),
    "dr, true model": Scenario(
        lambda g, _: dr(g.reward, g.pscore, g.target_dist, g.q_true, g.action)
    ),
    "dr, biased model": Scenario(
        lambda g, _: dr(g.reward, g.pscore, g.target_dist, biased_model(g), g.action)
    ),
    "dr, true model, wrong pscore": Scenario(
        lambda g, _: dr(g.reward, wrong_pscore(g), g.target_dist, g.q_true, g.action)
    ),
    "replay, uniform logging": Scenario(
        lambda g, seed: replay(g.reward, g.action, sample_actions(g.target_dist, seed=seed)),
        uniform_world=True,
    ),
    "dm, biased model": Scenario(lambda g, _: dm(g.target_dist, biased_model(g)), valid=False),
    "ips, clip=2": Scenario(
        lambda g, _: ips(g.reward, g.pscore, g.target_pscore, clip=2.0), valid=False
    ),
    "ips, wrong pscore": Scenario(
        lambda g, _: ips(g.reward, wrong_pscore(g), g.target_pscore), valid=False
    ),
}
UNBIASED = [name for name, scenario in SCENARIOS.items() if scenario.valid]


@dataclass(frozen=True)
class Outcome:
    values: np.ndarray
    covered: np.ndarray

    @property
    def coverage(self) -> float:
        return float(self.covered.mean())

    def bias_in_std_errs(self, truth: float) -> float:
        std_err = self.values.std(ddof=1) / np.sqrt(self.values.shape[0])
        return float((self.values.mean() - truth) / std_err)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    collected: dict[str, list[Estimate]] = {name: [] for name in SCENARIOS}
    for rep in range(REPS):
        logs = WORLD.log(N, seed=rep)
        uniform_logs = UNIFORM_WORLD.log(N, seed=rep)
        for name, scenario in SCENARIOS.items():
            data = uniform_logs if scenario.uniform_world else logs
            collected[name].append(scenario.estimate(data, 10_000 + rep))
    return {
        name: Outcome(
            values=np.array([e.value for e in estimates]),
            covered=np.array([e.covers(SCENARIOS[name].truth) for e in estimates]),
        )
        for name, estimates in collected.items()
    }


def test_the_world_is_the_one_described() -> None:
    """Guards the scenario: distinct policies, padding present, weights moderate but real."""
    logs = WORLD.log(N, seed=0)
    weights = logs.target_pscore / logs.pscore
    assert 3.0 < weights.max() < 15.0
    assert (logs.q_true == PAD_JUNK).any()
    assert (
        abs(
            WORLD.true_value
            - float(WORLD.context_prob @ (WORLD.logging * WORLD.mean_reward).sum(axis=1))
        )
        > 0.05
    )
    assert np.allclose(UNIFORM_WORLD.logging, 1 / UNIFORM_WORLD.logging.shape[1])


@pytest.mark.parametrize("name", UNBIASED)
def test_interval_covers_the_truth_at_the_nominal_rate(
    name: str, outcomes: dict[str, Outcome]
) -> None:
    low, high = COVERAGE_BAND
    assert low <= outcomes[name].coverage <= high


@pytest.mark.parametrize("name", UNBIASED)
def test_mean_estimate_is_the_truth(name: str, outcomes: dict[str, Outcome]) -> None:
    assert abs(outcomes[name].bias_in_std_errs(SCENARIOS[name].truth)) < Z_BIAS


def test_dm_with_a_biased_model_misses_and_its_interval_does_not_say_so(
    outcomes: dict[str, Outcome],
) -> None:
    outcome = outcomes["dm, biased model"]
    assert outcome.coverage < 0.05
    assert abs(outcome.bias_in_std_errs(WORLD.true_value)) > 20


def test_clipping_biases_ips_downwards_for_non_negative_rewards(
    outcomes: dict[str, Outcome],
) -> None:
    assert outcomes["ips, clip=2"].bias_in_std_errs(WORLD.true_value) < -10


def test_ips_with_wrong_propensities_is_biased_where_dr_with_a_true_model_is_not(
    outcomes: dict[str, Outcome],
) -> None:
    assert abs(outcomes["ips, wrong pscore"].bias_in_std_errs(WORLD.true_value)) > 10
    assert abs(outcomes["dr, true model, wrong pscore"].bias_in_std_errs(WORLD.true_value)) < Z_BIAS


def test_dr_has_less_spread_than_ips_when_the_model_is_right(outcomes: dict[str, Outcome]) -> None:
    assert outcomes["dr, true model"].values.std() < 0.8 * outcomes["ips"].values.std()


def test_bootstrap_interval_covers_the_truth() -> None:
    """Fewer, smaller logs: 100 resamples × 200 bootstrap draws keep this to a second or two."""
    covered = [
        bootstrap(
            snips, logs.reward, logs.pscore, logs.target_pscore, seed=rep, n_resamples=200
        ).covers(WORLD.true_value)
        for rep in range(100)
        for logs in [WORLD.log(500, seed=50_000 + rep)]
    ]
    # Binomial(100, 0.95) falls in [88, 100] with probability ≈ 0.999.
    assert np.mean(covered) >= 0.88
