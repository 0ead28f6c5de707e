"""Population priors: pooled and clustered, and re-centring a user's prior keeps their data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oo_ml import ConfigurationError, RidgeModel
from oo_ml.policies.population import (
    Population,
    PopulationModel,
    UserData,
    _Batch,
    _effective_parameters,
    _misfit,
    _misfits,
    information_criterion,
    recenter,
    user_data,
)

D = 4
THETA_A = np.array([1.0, -1.0, 0.5, 0.0])
THETA_B = np.array([-1.0, 1.0, 0.0, 0.5])


def simulated_user(theta: np.ndarray, n: int, seed: int, lam: float = 1.0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    model = RidgeModel(lam=lam)
    state = model.new_state("t", D)
    for _ in range(n):
        x = rng.normal(size=D)
        model.update(state, x, float(x @ theta + rng.normal(0, 0.3)))
    return state


def test_one_cluster_is_the_pooled_ridge_fit() -> None:
    states = [simulated_user(THETA_A, 30, s) for s in range(5)]
    data = [user_data(s, 1.0) for s in states]
    model = PopulationModel.fit(data, 1.0, Population(clusters=1))
    assert model is not None
    expected = np.linalg.solve(np.eye(D) + sum(u.D for u in data), sum(u.c for u in data))
    np.testing.assert_allclose(model.means[0], expected)


def test_user_data_is_the_statistics_without_the_prior() -> None:
    state = simulated_user(THETA_A, 10, 0, lam=3.0)
    data = user_data(state, 3.0)
    np.testing.assert_allclose(data.D, state.A - 3.0 * np.eye(D))
    assert data.n == 10


def test_nobody_with_data_means_no_model() -> None:
    empty = user_data(RidgeModel().new_state("t", D), 1.0)
    assert PopulationModel.fit([empty], 1.0, Population(clusters=3)) is None


def test_clusters_find_the_two_kinds_of_user_and_pick_the_right_one() -> None:
    states = [simulated_user(THETA_A if s % 2 else THETA_B, 40, s) for s in range(12)]
    model = PopulationModel.fit([user_data(s, 1.0) for s in states], 1.0, Population(clusters=2))
    assert model is not None
    assert model.means.shape == (2, D)
    distances = sorted(
        min(np.linalg.norm(mu - t) for mu in model.means) for t in (THETA_A, THETA_B)
    )
    assert distances[-1] < 0.2
    np.testing.assert_allclose(model.shares, [0.5, 0.5])
    newcomer = simulated_user(THETA_B, 6, 99)
    data = user_data(newcomer, 1.0)
    prior = model.prior_for(data.D, data.c, newcomer.A_inv)
    assert np.linalg.norm(prior - THETA_B) < 0.3


def test_a_user_without_data_gets_the_share_weighted_average() -> None:
    states = [simulated_user(THETA_A if s % 3 else THETA_B, 40, s) for s in range(9)]
    model = PopulationModel.fit([user_data(s, 1.0) for s in states], 1.0, Population(clusters=2))
    assert model is not None
    blank = RidgeModel().new_state("t", D)
    data = user_data(blank, 1.0)
    np.testing.assert_allclose(
        model.prior_for(data.D, data.c, blank.A_inv), model.shares @ model.means
    )


def test_fitting_is_deterministic() -> None:
    states = [simulated_user(THETA_A if s % 2 else THETA_B, 20, s) for s in range(10)]
    data = [user_data(s, 1.0) for s in states]
    first = PopulationModel.fit(data, 1.0, Population(clusters=3))
    second = PopulationModel.fit(data, 1.0, Population(clusters=3))
    assert first is not None
    assert second is not None
    np.testing.assert_array_equal(first.means, second.means)


def test_recentering_moves_the_prior_and_keeps_the_data() -> None:
    lam = 2.0
    state = simulated_user(THETA_A, 15, 3, lam=lam)
    before = user_data(state, lam)
    mu = np.array([0.3, 0.3, -0.3, 0.1])
    recenter(state, mu, lam)
    after = user_data(state, lam)
    np.testing.assert_allclose(after.D, before.D)
    np.testing.assert_allclose(after.c, before.c, atol=1e-12)
    np.testing.assert_allclose(state.theta, np.linalg.solve(state.A, lam * mu + before.c))


THETA_C = np.array([0.0, 0.5, -1.0, 1.0])


def total_misfit(model: PopulationModel, data: list, lam: float = 1.0) -> float:  # type: ignore[type-arg]
    """Σ over users of min_k Q(μ_k), written out from the module docstring."""
    total = 0.0
    for u in data:
        a_inv = np.linalg.inv(lam * np.eye(D) + u.D)
        costs = []
        for mu in model.means:
            g = u.c - u.D @ mu
            costs.append(mu @ u.D @ mu - 2 * mu @ u.c - g @ a_inv @ g)
        total += min(costs)
    return total


def test_batched_misfits_differ_from_the_formula_by_one_constant_per_user() -> None:
    """The fit's Q for all users and centres at once drops −cᵀA⁻¹c, a term of the user only:
    every user's costs are the formula's shifted by the same amount, whatever the centre."""
    data = three_kinds(12)
    lam = 1.0
    centres = np.array([THETA_A, THETA_B, THETA_C, THETA_A * 0.5])
    inverses = np.array([np.linalg.inv(lam * np.eye(D) + u.D) for u in data])
    batched = _misfits(centres, np.array([u.c for u in data]), inverses, lam)
    for n, u in enumerate(data):
        formula = np.array([_misfit(mu, u.D, u.c, inverses[n]) for mu in centres])
        shift = batched[n] - formula
        np.testing.assert_allclose(shift, np.full(len(centres), u.c @ inverses[n] @ u.c))


def three_kinds(n: int = 30) -> list:  # type: ignore[type-arg]
    thetas = (THETA_A, THETA_B, THETA_C)
    return [user_data(simulated_user(thetas[s % 3], 15, s), 1.0) for s in range(n)]


def test_restarts_keep_the_fit_that_explains_the_data_best() -> None:
    data = three_kinds()
    single = PopulationModel.fit(data, 1.0, Population(clusters=3))
    for seed in range(4):
        restarted = PopulationModel.fit(data, 1.0, Population(clusters=3, restarts=6), seed=seed)
        one = PopulationModel.fit(data, 1.0, Population(clusters=3), seed=seed)
        assert single is not None
        assert restarted is not None
        assert one is not None
        assert total_misfit(restarted, data) <= total_misfit(one, data) + 1e-9
    # The first start of a restarted fit is the single-start fit.
    first = PopulationModel.fit(data, 1.0, Population(clusters=3, restarts=1))
    assert first is not None
    np.testing.assert_array_equal(first.means, single.means)


BAD_SETTINGS = [
    ({"clusters": 0}, "clusters"),
    ({"noise": 0.0}, "noise"),
    ({"restarts": 0}, "restarts"),
    ({"cluster_lam": 0.0}, "cluster_lam"),
    ({"cluster_lam": math.inf}, "cluster_lam"),
    ({"clusters": 4, "min_clusters": 0}, "min_clusters"),
    ({"clusters": 4, "min_clusters": 5}, "min_clusters"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_SETTINGS)
def test_bad_population_settings_are_refused(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigurationError, match=message):
        Population(**kwargs)


def test_user_data_decomposition_holds_with_a_discount() -> None:
    lam, mu = 2.0, np.array([0.5, -0.5, 0.0, 0.25])
    model = RidgeModel(lam=lam, discount=0.9)
    state = model.new_state("t", D, prior_mean=mu)
    rng = np.random.default_rng(4)
    D_expected, c_expected = np.zeros((D, D)), np.zeros(D)
    for _ in range(30):
        x, r = rng.normal(size=D), float(rng.normal())
        model.update(state, x, r)
        D_expected = 0.9 * D_expected + np.outer(x, x)
        c_expected = 0.9 * c_expected + r * x
    data = user_data(state, lam)
    np.testing.assert_allclose(data.D, D_expected, atol=1e-10)
    np.testing.assert_allclose(data.c, c_expected, atol=1e-10)


def test_cluster_lam_is_the_ridge_of_each_clusters_pooled_fit() -> None:
    states = [simulated_user(THETA_A, 30, s, lam=8.0) for s in range(5)]
    data = [user_data(s, 8.0) for s in states]
    model = PopulationModel.fit(data, 8.0, Population(clusters=1, cluster_lam=0.5))
    assert model is not None
    expected = np.linalg.solve(0.5 * np.eye(D) + sum(u.D for u in data), sum(u.c for u in data))
    np.testing.assert_allclose(model.means[0], expected)
    # The users' own λ still decides which cluster explains a user best.
    assert model.lam == 8.0


def test_cluster_lam_pulls_cluster_means_less_towards_zero_than_the_users_lam() -> None:
    data = [user_data(simulated_user(THETA_A if s % 2 else THETA_B, 8, s, 16.0), 16.0)
            for s in range(8)]  # fmt: skip
    held = PopulationModel.fit(data, 16.0, Population(clusters=2, restarts=2))
    loose = PopulationModel.fit(data, 16.0, Population(clusters=2, restarts=2, cluster_lam=1.0))
    assert held is not None
    assert loose is not None
    for theta in (THETA_A, THETA_B):
        assert min(np.linalg.norm(mu - theta) for mu in loose.means) < min(
            np.linalg.norm(mu - theta) for mu in held.means
        )


def test_without_cluster_lam_the_fit_is_the_one_with_the_users_lam() -> None:
    """``cluster_lam=None`` keeps the fits of policies published before it, bit for bit."""
    data = three_kinds()
    default = PopulationModel.fit(data, 1.0, Population(clusters=3, restarts=3), seed=5)
    explicit = Population(clusters=3, restarts=3, cluster_lam=1.0)
    same = PopulationModel.fit(data, 1.0, explicit, seed=5)
    assert default is not None
    assert same is not None
    np.testing.assert_array_equal(default.means, same.means)
    np.testing.assert_array_equal(default.shares, same.shares)


THETA_C = np.array([0.0, 0.5, -1.0, 1.0])


@pytest.mark.parametrize("kinds", [1, 2, 3])
def test_a_chosen_cluster_count_is_the_number_of_kinds_of_user(kinds: int) -> None:
    """With ``min_clusters`` the fit tries 1 to 5 clusters and keeps the lowest AIC: as many
    as there are kinds of user, each found, not one per restart's whim."""
    thetas = (THETA_A, THETA_B, THETA_C)[:kinds]
    states = [simulated_user(thetas[s % kinds], 60, s) for s in range(8 * kinds)]
    data = [user_data(s, 1.0) for s in states]
    model = PopulationModel.fit(
        data, 1.0, Population(clusters=5, min_clusters=1, noise=0.09, restarts=3)
    )
    assert model is not None
    assert model.means.shape == (kinds, D)
    for theta in thetas:
        assert min(np.linalg.norm(mu - theta) for mu in model.means) < 0.2


def test_the_criterion_is_the_misfit_over_the_noise_plus_two_per_parameter() -> None:
    assert information_criterion(30.0, 3 * 4, 0.5) == 30.0 / 0.5 + 2 * 3 * 4
    # One more cluster of d = 4 must buy more than 2·d of misfit / σ² to be kept.
    assert information_criterion(10.0, 2 * 4, 1.0) < information_criterion(3.0, 3 * 4, 1.0)


def _batch(data: list[UserData], lam: float, cluster_lam: float) -> _Batch:
    datas = np.array([u.D for u in data])
    inverses = np.linalg.inv(np.eye(D) * lam + datas)
    cs = np.array([u.c for u in data])
    estimates = np.einsum("nij,nj->ni", inverses, cs)
    weights = np.array([float(u.n) for u in data])
    return _Batch(np.eye(D) * cluster_lam, lam, datas, cs, inverses, estimates, weights, {})


def test_effective_parameters_are_each_ridge_fits_degrees_of_freedom() -> None:
    data = [user_data(simulated_user(THETA_A if s < 3 else THETA_B, 20, s), 1.0) for s in range(6)]
    assignment = np.array([0, 0, 0, 1, 1, 1])
    found = _effective_parameters(_batch(data, 1.0, 4.0), assignment, 2)
    # tr(S (λ_c I + S)⁻¹) per cluster, written out.
    expected = 0.0
    for members in ([0, 1, 2], [3, 4, 5]):
        pooled = sum(data[i].D for i in members)
        expected += np.trace(pooled @ np.linalg.inv(np.eye(D) * 4.0 + pooled))
    assert found == pytest.approx(expected, rel=1e-12)
    assert 0 < found < 2 * D
    # Little data and a strong ridge spend little; lots of data spends nearly all d per cluster.
    assert _effective_parameters(_batch(data, 1.0, 1e6), assignment, 2) < 0.01
    many = [user_data(simulated_user(THETA_A, 2000, s), 1.0) for s in range(2)]
    assert _effective_parameters(_batch(many, 1.0, 1e-3), np.array([0, 1]), 2) == pytest.approx(
        2 * D, rel=1e-4
    )


def test_effective_parameters_let_fewer_users_keep_more_clusters() -> None:
    """Four kinds of user, two of each with three rewards apiece, and a strong cluster ridge:
    counting d per cluster merges them all; counting what each regularised fit spends keeps
    two clusters."""
    thetas = [THETA_A, THETA_B, -THETA_A, -THETA_B]
    data = [user_data(simulated_user(thetas[s % 4], 3, s), 1.0) for s in range(8)]
    settings = {"clusters": 4, "min_clusters": 1, "noise": 0.3, "restarts": 3, "cluster_lam": 40.0}
    plain = PopulationModel.fit(data, 1.0, Population(**settings))
    effective = PopulationModel.fit(data, 1.0, Population(**settings, effective_parameters=True))
    assert plain is not None
    assert effective is not None
    assert plain.means.shape[0] == 1
    assert effective.means.shape[0] == 2


def test_without_min_clusters_the_fit_keeps_the_cluster_count_it_is_given() -> None:
    states = [simulated_user(THETA_A, 40, s) for s in range(10)]
    data = [user_data(s, 1.0) for s in states]
    fixed = PopulationModel.fit(data, 1.0, Population(clusters=3, restarts=2))
    chosen = PopulationModel.fit(data, 1.0, Population(clusters=3, min_clusters=1, restarts=2))
    assert fixed is not None
    assert chosen is not None
    assert fixed.means.shape[0] == 3  # one kind of user, split three ways as asked
    assert chosen.means.shape[0] == 1
