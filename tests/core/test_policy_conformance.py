"""One suite for every policy (River's check_estimator, OBP's all-estimator tables): a policy is
covered the moment it is registered."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml import Candidate, Context, Policy, RidgeState, StateError, ValidationError
from oo_ml.policies import POLICIES
from tests.core.policy_cases import ALL_POLICIES

policies = pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
undiscounted = pytest.mark.parametrize(
    "policy", [p for p in ALL_POLICIES if p.model.discount == 1.0], ids=lambda p: p.name
)

SOURCES = ("todoist", "calendar", "email", "Slack")


def make_candidates(rng: np.random.Generator, k: int) -> list[Candidate]:
    return [
        Candidate(
            id=f"task-{i}",
            is_overdue=bool(rng.random() < 0.3),
            task_age_days=float(rng.uniform(-10, 45)),
            priority=int(rng.integers(1, 5)),
            source=SOURCES[int(rng.integers(len(SOURCES)))],
        )
        for i in range(k)
    ]


def make_context(rng: np.random.Generator) -> Context:
    return Context(int(rng.integers(0, 24)), int(rng.integers(0, 7)))


def trained_state(policy: Policy, steps: int = 40, seed: int = 0) -> RidgeState:
    """A state after ``steps`` rounds of rank + learn on a fixed synthetic problem."""
    rng = np.random.default_rng(seed)
    state = policy.new_state()
    for _ in range(steps):
        decision = policy.rank(state, make_context(rng), make_candidates(rng, 6), rng)
        reward = float(np.tanh(decision.chosen_features.sum() * 0.3 + rng.normal(0, 0.2)))
        policy.learn(state, decision.chosen_features, reward)
    return state


def run_episode(policy: Policy, state: RidgeState, seed: int, steps: int = 25) -> list[str]:
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(steps):
        decision = policy.rank(state, make_context(rng), make_candidates(rng, 8), rng)
        chosen.append(decision.chosen_id)
        policy.learn(state, decision.chosen_features, float(rng.uniform(-1, 1)))
    return chosen


def assert_same_state(a: RidgeState, b: RidgeState) -> None:
    assert a.encoder == b.encoder
    assert (a.n_updates, a.since_refactor) == (b.n_updates, b.since_refactor)
    for name in ("A", "b", "A_inv", "theta", "prior_mean"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@policies
def test_policy_has_a_description(policy: Policy) -> None:
    assert policy.description.strip()


@policies
def test_params_are_json_safe_and_name_the_encoder(policy: Policy) -> None:
    params = json.loads(json.dumps(policy.params()))
    assert params["encoder"] == policy.encoder.name
    assert params["dim"] == policy.encoder.dim


@policies
def test_clone_decides_exactly_like_the_original(policy: Policy) -> None:
    clone = policy.clone()
    assert clone == policy
    assert clone is not policy
    state = trained_state(policy)
    assert run_episode(policy, state.copy(), seed=3) == run_episode(clone, state.copy(), seed=3)


@policies
def test_state_round_trips_through_json_exactly(policy: Policy) -> None:
    state = trained_state(policy)
    restored = RidgeState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert_same_state(state, restored)
    assert run_episode(policy, state, seed=5) == run_episode(policy, restored, seed=5)
    assert_same_state(state, restored)


@policies
def test_state_copy_is_independent(policy: Policy) -> None:
    state = trained_state(policy, steps=5)
    snapshot = state.copy()
    run_episode(policy, state, seed=1, steps=3)
    assert snapshot.n_updates == 5
    assert not np.array_equal(snapshot.A, state.A)


@policies
def test_same_seed_gives_same_decisions_and_state(policy: Policy) -> None:
    first, second = policy.new_state(), policy.new_state()
    assert run_episode(policy, first, seed=11) == run_episode(policy, second, seed=11)
    assert_same_state(first, second)


@policies
def test_probabilities_are_a_distribution_with_the_choice_inside(policy: Policy) -> None:
    rng = np.random.default_rng(2)
    state = trained_state(policy)
    for k in (1, 2, 7, 30):
        decision = policy.rank(state, make_context(rng), make_candidates(rng, k), rng)
        probs = decision.probabilities
        assert probs.shape == (k,)
        assert decision.scores.shape == (k,)
        assert decision.features.shape == (k, policy.dim)
        assert np.all(probs >= 0)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        assert decision.probability > 0
        assert np.isfinite(decision.scores).all()
        if policy.exploration.name == "thompson":
            assert decision.draws == policy.exploration.draws  # type: ignore[attr-defined]
        else:
            assert decision.draws is None


@policies
def test_choices_follow_the_stated_probabilities(policy: Policy) -> None:
    """Over many seeds, how often each candidate is chosen matches its logged probability."""
    rng = np.random.default_rng(4)
    state = trained_state(policy, steps=20)
    context, candidates = make_context(rng), make_candidates(rng, 5)
    n = 4000
    counts = np.zeros(5)
    expected = np.zeros(5)
    for seed in range(n):
        decision = policy.rank(state, context, candidates, np.random.default_rng(seed))
        counts[decision.chosen] += 1
        expected += decision.probabilities
    # Binomial standard error of a frequency is at most 0.5/√n ≈ 0.008; allow 5 of them.
    np.testing.assert_allclose(counts / n, expected / n, atol=0.04)


@policies
def test_identical_candidates_are_tied_and_broken_at_random(policy: Policy) -> None:
    state = trained_state(policy)
    context = Context(10, 3)
    twin = {"is_overdue": True, "task_age_days": 3.0, "priority": 4, "source": "todoist"}
    candidates = [Candidate("first", **twin), Candidate("second", **twin)]  # type: ignore[arg-type]
    chosen = set()
    for seed in range(40):
        decision = policy.rank(state, context, candidates, np.random.default_rng(seed))
        assert decision.probabilities[0] == pytest.approx(decision.probabilities[1], abs=1e-12)
        chosen.add(decision.chosen_id)
    assert chosen == {"first", "second"}


@policies
def test_inputs_are_not_mutated(policy: Policy) -> None:
    rng = np.random.default_rng(6)
    state = trained_state(policy)
    context, candidates = make_context(rng), make_candidates(rng, 6)
    originals = copy.deepcopy(candidates)
    order = [id(c) for c in candidates]
    decision = policy.rank(state, context, candidates, rng)
    assert candidates == originals
    assert [id(c) for c in candidates] == order
    features = policy.encoder.encode(context, candidates)
    before = features.copy()
    policy.decide(state, features, tuple(c.id for c in candidates), rng)
    np.testing.assert_array_equal(features, before)
    row = decision.chosen_features.copy()
    policy.learn(state, row, 0.5)
    np.testing.assert_array_equal(row, decision.chosen_features)


@policies
def test_decision_arrays_are_read_only(policy: Policy) -> None:
    rng = np.random.default_rng(7)
    decision = policy.rank(policy.new_state(), make_context(rng), make_candidates(rng, 3), rng)
    for array in (decision.scores, decision.probabilities, decision.features):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0


@policies
def test_refused_update_changes_nothing(policy: Policy) -> None:
    state = trained_state(policy, steps=10)
    before = state.copy()
    good = np.full(policy.dim, 0.1)
    bad_inputs = [
        (np.full(policy.dim, np.nan), 1.0, "x"),
        (np.full(policy.dim, np.inf), 1.0, "x"),
        (np.full(policy.dim + 1, 0.1), 1.0, "x"),
        (good, float("nan"), "reward"),
        (good, float("-inf"), "reward"),
        (good, 1e300, "reward"),
    ]
    for x, reward, field in bad_inputs:
        with pytest.raises(ValidationError) as info:
            policy.learn(state, x, reward)
        assert info.value.field == field
    assert_same_state(before, state)


@policies
def test_state_of_another_layout_is_refused(policy: Policy) -> None:
    other = next(p for p in ALL_POLICIES if p.encoder.name != policy.encoder.name)
    rng = np.random.default_rng(8)
    with pytest.raises(StateError):
        policy.rank(other.new_state(), make_context(rng), make_candidates(rng, 3), rng)
    with pytest.raises(StateError):
        policy.learn(other.new_state(), np.zeros(other.dim), 1.0)


@policies
def test_bad_candidate_lists_are_refused(policy: Policy) -> None:
    rng = np.random.default_rng(9)
    state = policy.new_state()
    with pytest.raises(ValidationError, match="must not be empty"):
        policy.rank(state, Context(9), [], rng)
    with pytest.raises(ValidationError) as info:
        policy.rank(state, Context(9), [Candidate("a"), Candidate("b"), Candidate("a")], rng)
    assert info.value.field == "candidates[2].id"


@policies
def test_new_candidates_every_call_are_a_normal_event(policy: Policy) -> None:
    """Arms come and go: a linear model scores any candidate from its features alone."""
    rng = np.random.default_rng(10)
    state = policy.new_state()
    for step in range(15):
        fresh = [Candidate(f"step{step}-{i}", priority=int(rng.integers(1, 5))) for i in range(4)]
        decision = policy.rank(state, make_context(rng), fresh, rng)
        assert decision.chosen_id.startswith(f"step{step}-")
        policy.learn(state, decision.chosen_features, 1.0)
    assert state.n_updates == 15


@undiscounted
def test_updates_in_any_order_give_the_same_statistics(policy: Policy) -> None:
    rng = np.random.default_rng(12)
    rows = [policy.encoder.encode(make_context(rng), make_candidates(rng, 1))[0] for _ in range(60)]
    rewards = rng.uniform(-1, 1, size=60)
    forward, shuffled = policy.new_state(), policy.new_state()
    for x, r in zip(rows, rewards, strict=True):
        policy.learn(forward, x, float(r))
    for i in rng.permutation(60):
        policy.learn(shuffled, rows[i], float(rewards[i]))
    np.testing.assert_allclose(forward.A, shuffled.A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forward.b, shuffled.b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forward.theta, shuffled.theta, rtol=1e-8, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy",
    [p for p in ALL_POLICIES if p.name in POLICIES or p.name == "t-ucb-discounted"],
    ids=lambda p: p.name,
)
@settings(max_examples=3)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_maintained_inverse_matches_numpy_after_10000_updates(
    policy: Policy, seed: int, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    state = policy.new_state()
    xs = rng.normal(0, scale, size=(10_000, policy.dim))
    rewards = rng.uniform(-1, 1, size=10_000)
    for x, r in zip(xs, rewards, strict=True):
        policy.learn(state, x, float(r))
    np.testing.assert_allclose(state.A_inv, np.linalg.inv(state.A), rtol=0, atol=1e-8)
    np.testing.assert_allclose(state.theta, np.linalg.solve(state.A, state.b), atol=1e-8)


@policies
def test_choose_is_decides_choice_and_probability(policy: Policy) -> None:
    """``Policy.choose`` (the simulator's own decisions) chooses what ``decide`` chooses,
    with its probability and the same numbers drawn, for a learned state and ties alike."""
    state = trained_state(policy, seed=3)
    rng = np.random.default_rng(9)
    for k in (1, 2, 7):
        features = policy.encoder.encode(make_context(rng), make_candidates(rng, k))
        for tied in (False, True):
            x = np.repeat(features[:1], k, axis=0) if tied else features
            seed = int(rng.integers(2**62))
            decided = policy.decide(
                state, x, tuple(f"t{i}" for i in range(k)), np.random.default_rng(seed)
            )
            chosen_rng = np.random.default_rng(seed)
            assert policy.choose(state, x, chosen_rng) == (
                decided.chosen,
                float(decided.probabilities[decided.chosen]),
            )
            after = np.random.default_rng(seed)
            policy.decide(state, x, tuple(f"t{i}" for i in range(k)), after)
            assert chosen_rng.random() == after.random()
