"""What the ADRs say of published policies holds in the registry."""

from __future__ import annotations

import dataclasses

from oo_ml.policies import get_policy


def test_ucb_pop4_is_ucb_pop3_with_a_stronger_user_prior() -> None:
    """ADR 0008: the users' prior precision λ goes from 32 to 80; the encoder, the exploration,
    the discount and the population fit (clusters, noise, restarts, the clusters' own λ) stay."""
    old, new = get_policy("ucb-pop3"), get_policy("ucb-pop4")
    assert (old.model.lam, new.model.lam) == (32.0, 80.0)
    assert new.model == dataclasses.replace(old.model, lam=80.0)
    assert new.encoder is old.encoder
    assert new.exploration == old.exploration
    assert new.population == old.population
    params = {k: v for k, v in new.params().items() if k != "lambda"}
    assert params == {k: v for k, v in old.params().items() if k != "lambda"}


def test_ucb_pop5_is_ucb_pop4_choosing_its_number_of_clusters() -> None:
    """ADR 0009: refits choose 4 to 12 clusters; everything else is ucb-pop4's."""
    old, new = get_policy("ucb-pop4"), get_policy("ucb-pop5")
    assert new.population is not None
    assert old.population is not None
    assert (new.population.min_clusters, new.population.clusters) == (4, 12)
    assert new.population == dataclasses.replace(old.population, clusters=12, min_clusters=4)
    assert (new.encoder, new.exploration, new.model) == (old.encoder, old.exploration, old.model)


def test_ucb_pop6_is_ucb_pop5_counting_effective_parameters() -> None:
    """ADR 0011: the criterion counts each cluster's effective degrees of freedom; everything
    else is ucb-pop5's."""
    old, new = get_policy("ucb-pop5"), get_policy("ucb-pop6")
    assert new.population is not None
    assert old.population is not None
    assert (old.population.effective_parameters, new.population.effective_parameters) == (
        False,
        True,
    )
    assert new.population == dataclasses.replace(old.population, effective_parameters=True)
    assert (new.encoder, new.exploration, new.model) == (old.encoder, old.exploration, old.model)
    assert new.params()["population_effective_parameters"] is True
