"""The ridge model: posterior algebra, prior mean, discount, weights, refactorisation, export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oo_ml import RidgeModel, RidgeState, StateError, ValidationError
from oo_ml.policies.model import STATE_SCHEMA


def feed(model: RidgeModel, state: RidgeState, rows: np.ndarray, rewards: np.ndarray) -> None:
    for x, r in zip(rows, rewards, strict=True):
        model.update(state, x, float(r))


def test_fresh_state_is_the_prior() -> None:
    state = RidgeModel(lam=2.0).new_state("v1", 5)
    np.testing.assert_array_equal(state.A, 2.0 * np.eye(5))
    np.testing.assert_array_equal(state.A_inv, 0.5 * np.eye(5))
    np.testing.assert_array_equal(state.theta, np.zeros(5))
    assert state.n_updates == 0


def test_posterior_mean_is_the_ridge_solution() -> None:
    rng = np.random.default_rng(0)
    rows, rewards = rng.normal(size=(200, 6)), rng.normal(size=200)
    model = RidgeModel(lam=3.0)
    state = model.new_state("t", 6)
    feed(model, state, rows, rewards)
    expected = np.linalg.solve(rows.T @ rows + 3.0 * np.eye(6), rows.T @ rewards)
    np.testing.assert_allclose(state.theta, expected, atol=1e-10)


def test_prior_mean_is_where_a_new_user_starts_and_shrinks_towards() -> None:
    mu = np.array([0.5, -0.2, 0.0, 1.0])
    model = RidgeModel(lam=10.0)
    state = model.new_state("t", 4, prior_mean=mu)
    np.testing.assert_allclose(state.theta, mu)
    rng = np.random.default_rng(1)
    rows, rewards = rng.normal(size=(30, 4)), rng.normal(size=30)
    feed(model, state, rows, rewards)
    # MAP estimate with prior N(mu, (λI)⁻¹): (XᵀX + λI)⁻¹(Xᵀr + λμ).
    expected = np.linalg.solve(rows.T @ rows + 10 * np.eye(4), rows.T @ rewards + 10 * mu)
    np.testing.assert_allclose(state.theta, expected, atol=1e-10)


def test_prior_mean_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        RidgeModel().new_state("t", 4, prior_mean=np.zeros(3))
    assert info.value.field == "prior_mean"
    with pytest.raises(ValidationError):
        RidgeModel().new_state("t", 2, prior_mean=np.array([0.0, np.nan]))


def test_discount_forgets_old_evidence_and_keeps_the_prior() -> None:
    model = RidgeModel(lam=1.0, discount=0.9)
    state = model.new_state("t", 2)
    x = np.array([1.0, 0.0])
    for _ in range(200):
        model.update(state, x, 1.0)
    for _ in range(40):
        model.update(state, x, -1.0)
    # After 40 discounted steps the recent rewards dominate: the estimate has flipped sign.
    assert state.theta[0] < -0.8
    # Scalar recursion of the documented update: a ← γa + (1−γ)λ + 1, b ← γb + r.
    a, b = 1.0, 0.0
    for r in [1.0] * 200 + [-1.0] * 40:
        a, b = 0.9 * a + 0.1 + 1.0, 0.9 * b + r
    assert state.theta[0] == pytest.approx(b / a, rel=1e-12)
    # The unobserved direction keeps exactly its prior precision λ.
    assert state.A[1, 1] == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(state.A_inv, np.linalg.inv(state.A), atol=1e-12)


def test_without_discount_old_evidence_is_never_forgotten() -> None:
    model = RidgeModel(lam=1.0)
    state = model.new_state("t", 1)
    for _ in range(200):
        model.update(state, np.ones(1), 1.0)
    for _ in range(40):
        model.update(state, np.ones(1), -1.0)
    assert state.theta[0] > 0.5


def test_weighted_update_equals_repeating_the_observation() -> None:
    model = RidgeModel()
    once, twice = model.new_state("t", 3), model.new_state("t", 3)
    x = np.array([0.2, -1.0, 0.5])
    model.update(once, x, 0.7, weight=2.0)
    model.update(twice, x, 0.7)
    model.update(twice, x, 0.7)
    np.testing.assert_allclose(once.A, twice.A)
    np.testing.assert_allclose(once.b, twice.b)
    np.testing.assert_allclose(once.A_inv, twice.A_inv, atol=1e-14)


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_weight_is_refused(weight: float) -> None:
    model = RidgeModel()
    state = model.new_state("t", 2)
    with pytest.raises(ValidationError) as info:
        model.update(state, np.ones(2), 1.0, weight=weight)
    assert info.value.field == "weight"
    assert state.n_updates == 0


def test_refactorisation_happens_on_schedule() -> None:
    model = RidgeModel(refactor_every=5)
    state = model.new_state("t", 3)
    rng = np.random.default_rng(2)
    for i in range(1, 12):
        model.update(state, rng.normal(size=3), 0.1)
        assert state.since_refactor == i % 5
    assert state.n_updates == 11


def test_sherman_morrison_alone_stays_accurate_without_refactoring() -> None:
    model = RidgeModel(refactor_every=0)
    state = model.new_state("t", 12)
    rng = np.random.default_rng(3)
    feed(model, state, rng.normal(size=(10_000, 12)), rng.uniform(-1, 1, size=10_000))
    assert state.since_refactor == 10_000
    np.testing.assert_allclose(state.A_inv, np.linalg.inv(state.A), rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lam": 0.0}, "lam"),
        ({"lam": float("nan")}, "lam"),
        ({"discount": 0.0}, "discount"),
        ({"discount": 1.5}, "discount"),
        ({"refactor_every": -1}, "refactor_every"),
    ],
)
def test_bad_hyper_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RidgeModel(**kwargs)  # type: ignore[arg-type]


def test_export_is_plain_json_with_a_schema_tag() -> None:
    state = RidgeModel().new_state("v2", 7)
    data = state.to_dict()
    assert data["schema"] == STATE_SCHEMA
    assert json.loads(json.dumps(data)) == data


def _exported() -> dict[str, object]:
    model = RidgeModel()
    state = model.new_state("v1", 2)
    model.update(state, np.array([1.0, 2.0]), 0.5)
    return state.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "oo-ml.ridge/0"}, "schema"),
        ({"A": [[1.0, 0.0]]}, "shape"),
        ({"b": [1.0, float("nan")]}, "not finite"),
        ({"dim": "two"}, "malformed"),
        ({"n_updates": -1}, "non-negative"),
    ],
)
def test_malformed_exports_are_refused(change: dict[str, object], message: str) -> None:
    data = {**_exported(), **change}
    with pytest.raises(StateError, match=message):
        RidgeState.from_dict(data)


def test_export_missing_a_key_is_refused() -> None:
    data = _exported()
    del data["A_inv"]
    with pytest.raises(StateError, match="malformed"):
        RidgeState.from_dict(data)


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_an_update_leaves_read_only_arrays_alone_and_learns_the_same(discount: float) -> None:
    """A store may hand out its own arrays read-only: the update copies them first and gives
    exactly the state it gives from writable copies."""
    model = RidgeModel(lam=2.0, discount=discount)
    rng = np.random.default_rng(5)
    shared = model.new_state("t", 4)
    for _ in range(3):
        model.update(shared, rng.uniform(-1, 1, 4), float(rng.uniform(-1, 1)))
    frozen = RidgeState(
        "t", shared.A, shared.b, shared.A_inv, shared.theta, shared.prior_mean,
        shared.n_updates, shared.since_refactor,
    ).freeze()  # fmt: skip
    assert not any(a.flags.writeable for a in (shared.A, shared.b, shared.A_inv, shared.theta))
    before = {name: getattr(frozen, name).copy() for name in ("A", "b", "A_inv", "theta")}
    writable = frozen.copy()
    x = rng.uniform(-1, 1, 4)
    model.update(frozen, x, 0.5)
    model.update(writable, x, 0.5)
    for name, array in before.items():
        np.testing.assert_array_equal(getattr(shared, name), array)  # the store's, untouched
        np.testing.assert_array_equal(getattr(frozen, name), getattr(writable, name))
