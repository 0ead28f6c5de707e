"""The simulator-speed benchmark's core side learns what the simulated users would teach."""

from __future__ import annotations

import statistics

import pytest

from benchmarks import simulation
from oo_ml import Action, get_policy, get_reward_rule
from oo_ml.sim.runner import SimConfig, stream_seed
from oo_ml.sim.tasks import TaskStream

pytestmark = pytest.mark.bench

PERSONAS = ("morning-focused", "quick-wins", "deadline-driven")


def _config(users: int = 3, steps: int = 12, seed: int = 5) -> SimConfig:
    return SimConfig(("egreedy-v1",), PERSONAS, users, steps, seed=seed)


def test_rounds_follow_each_users_own_stream_in_the_simulators_order() -> None:
    config = _config()
    rounds = simulation._speed_rounds(config)
    assert len(rounds) == config.total_steps
    streams = [
        TaskStream(stream_seed(config.seed, u), f"u{u}", config.pool_size)
        for u in range(config.users)
    ]
    for i, (context, candidates, rewards, outcomes) in enumerate(rounds):
        stream = streams[i % config.users]  # step-major, users in turn, as the runner plays
        assert context == stream.context
        assert candidates == stream.candidates()
        assert len(rewards) == len(outcomes) == len(candidates)
        stream.advance()


def test_each_reward_is_the_rules_score_of_the_outcome_the_engine_is_fed() -> None:
    config = _config(users=3, steps=20)
    rule = get_reward_rule(config.reward_rule)
    for _, _, rewards, outcomes in simulation._speed_rounds(config):
        assert rewards == [rule.score(outcome).value for outcome in outcomes]


def test_rewards_are_the_rules_and_differ_between_personas() -> None:
    config = _config(users=3, steps=60)
    rounds = simulation._speed_rounds(config)
    rule = get_reward_rule(config.reward_rule)
    possible = {band.milli / 1000.0 for action in Action for band in rule.actions[action].bands} | {
        rule.actions[action].unmeasured_milli / 1000.0 for action in (Action.SNOOZE, Action.DISMISS)
    }
    values = [r for _, _, rewards, _ in rounds for r in rewards]
    assert set(values) <= possible
    assert len(set(values)) >= 3  # done, snooze and dismiss all happen
    means = [
        statistics.fmean(r for _, _, rewards, _ in rounds[u :: config.users] for r in rewards)
        for u in range(config.users)
    ]
    assert len({round(m, 3) for m in means}) == config.users  # three people, three teachers


def test_rounds_are_reproducible_and_the_core_learns_from_them() -> None:
    config = _config()
    assert simulation._speed_rounds(config) == simulation._speed_rounds(config)
    assert simulation._speed_rounds(config) != simulation._speed_rounds(_config(seed=6))
    rounds = simulation._speed_rounds(config)
    policy = get_policy("ucb-pop3")
    assert simulation._core_rounds(policy, rounds, config.users, 1, prior=True) > 0
    engine_config = SimConfig(("ucb-pop3",), PERSONAS, config.users, config.steps, seed=5)
    assert simulation._engine_rounds(engine_config, rounds) > 0


def test_the_speed_table_has_a_row_per_policy_with_the_engines_ratio_and_the_budget() -> None:
    text = simulation.speed(["egreedy-v1"], ["small"], repeats=1, seed=1)
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    (row,) = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    cells = dict(zip(header, row, strict=True))
    assert row[:3] == ["small", "egreedy-v1", "simulator"]
    core = float(cells["core rounds/s"].replace(",", ""))
    simulated = float(cells["simulated steps/s"].replace(",", ""))
    assert float(cells["ratio (target ≥ 0.5)"]) == pytest.approx(simulated / core, abs=0.01)
    assert float(cells["a step µs"].replace(",", "")) == pytest.approx(1e6 / simulated, abs=1)
    assert float(cells["a step's budget µs"].replace(",", "")) == pytest.approx(2e6 / core, abs=1)
    through, ratio = cells["through the engine: steps/s (ratio)"].split()
    assert float(ratio.strip("()")) == pytest.approx(
        float(through.replace(",", "")) / core, abs=0.01
    )
    assert cells["core without its prior (ratio)"] == "—"  # no population prior
