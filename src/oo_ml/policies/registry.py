"""The named policies. A published name is frozen: a different behaviour gets a new name.

``linucb-v1`` and ``egreedy-v1`` reproduce the existing service: given the same A, b and
candidates they choose what it chooses (ties aside, which it broke by position and we break at
random). The ``-ix1`` policies run on the ``v3`` interaction encoder, where the hour and day of
week can change which tip wins.
"""

from __future__ import annotations

from oo_ml.errors import RegistryError, UnknownPolicyError
from oo_ml.features import get_encoder
from oo_ml.policies.base import Policy
from oo_ml.policies.exploration import UCB, EpsilonGreedy, SquareCB, Thompson
from oo_ml.policies.model import RidgeModel
from oo_ml.policies.population import Population

__all__ = ["POLICIES", "get_policy", "register_policy"]

POLICIES: dict[str, Policy] = {}
"""Every published policy by name, in publication order."""


def register_policy(policy: Policy) -> Policy:
    """Publish ``policy``; refuses a name that is taken."""
    if policy.name in POLICIES:
        raise RegistryError(f"policy {policy.name!r} is already registered")
    if not policy.description:
        raise RegistryError(f"policy {policy.name!r} needs a description")
    POLICIES[policy.name] = policy
    return policy


def get_policy(name: str) -> Policy:
    """The policy published as ``name``."""
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(POLICIES)
        raise UnknownPolicyError(f"unknown policy {name!r}; known: {known}") from None


register_policy(
    Policy(
        "linucb-v1",
        get_encoder("v1"),
        UCB(alpha=1.0),
        RidgeModel(lam=1.0),
        description="The existing service's LinUCB: d=5 features, α=1, λ=1.",
    )
)
register_policy(
    Policy(
        "egreedy-v1",
        get_encoder("v2"),
        EpsilonGreedy(epsilon=0.1),
        RidgeModel(lam=1.0),
        description="The existing service's ε-greedy: d=7 features, ε=0.1, exploits argmax θ·x.",
    )
)
register_policy(
    Policy(
        "ucb-ix1",
        get_encoder("v3"),
        UCB(alpha=0.5),
        RidgeModel(lam=1.0),
        description="LinUCB on context × candidate interactions (v3, d=44), α=0.5, λ=1.",
    )
)
register_policy(
    Policy(
        "squarecb-ix1",
        get_encoder("v3"),
        SquareCB(gamma_scale=10.0, gamma_exponent=0.5),
        RidgeModel(lam=1.0),
        description="SquareCB inverse-gap weighting on v3 interactions, γ = 10·√(n+1), λ=1.",
    )
)
register_policy(
    Policy(
        "ts-ix1",
        get_encoder("v3"),
        Thompson(v=0.3, draws=256),
        RidgeModel(lam=1.0),
        description="Linear Thompson sampling on v3 interactions, v=0.3, 256 draws, λ=1.",
    )
)
register_policy(
    Policy(
        "ucb-ix2",
        get_encoder("v4"),
        UCB(alpha=0.5),
        RidgeModel(lam=1.0),
        description="LinUCB on v4 interactions (source × time too, d=64), α=0.5, λ=1.",
    )
)
register_policy(
    Policy(
        "ucb-pop1",
        get_encoder("v4"),
        UCB(alpha=0.5),
        RidgeModel(lam=32.0, discount=0.98),
        description="LinUCB on v4 with a 6-cluster population prior (λ=32, σ²=0.25) and "
        "discount γ=0.98: the simulator's best (ADR 0003).",
        population=Population(clusters=6, noise=0.25),
    )
)
register_policy(
    Policy(
        "ucb-pop1-steady",
        get_encoder("v4"),
        UCB(alpha=0.5),
        RidgeModel(lam=32.0),
        description="ucb-pop1 without the discount (for the drift comparison).",
        population=Population(clusters=6, noise=0.25),
    )
)
register_policy(
    Policy(
        "ucb-pop2",
        get_encoder("v4"),
        UCB(alpha=0.5),
        RidgeModel(lam=32.0, discount=0.98),
        description="ucb-pop1 whose population refit keeps the best of 4 hard-EM starts "
        "(lowest total misfit), so two habits are less often merged into one cluster.",
        population=Population(clusters=6, noise=0.25, restarts=4),
    )
)
register_policy(
    Policy(
        "ucb-pop3",
        get_encoder("v4"),
        UCB(alpha=0.5),
        RidgeModel(lam=32.0, discount=0.98),
        description="ucb-pop2 whose clusters' pooled fits use ridge λ=4, not the users' λ=32: "
        "a mean pooled from many users needs little pull towards zero (ADR 0005).",
        population=Population(clusters=6, noise=0.25, restarts=4, cluster_lam=4.0),
    )
)
register_policy(
    # ucb-pop3 but for the users' prior precision: the derivation ADR 0008 describes.
    get_policy("ucb-pop3").clone(
        name="ucb-pop4",
        model=RidgeModel(lam=80.0, discount=0.98),
        description="ucb-pop3 with a stronger user prior, λ=80 (not 32): a user's few, noisy, "
        "discounted rewards move them less far from their cluster (ADR 0008).",
    )
)
register_policy(
    # ucb-pop4 but for the number of clusters, which each refit chooses (ADR 0009).
    get_policy("ucb-pop4").clone(
        name="ucb-pop5",
        population=Population(clusters=12, min_clusters=4, noise=0.25, restarts=4, cluster_lam=4.0),
        description="ucb-pop4 whose population refits choose 4 to 12 clusters by AIC, so "
        "that more habits get more clusters (ADR 0009).",
    )
)
register_policy(
    # ucb-pop5 but for what AIC counts as a cluster's parameters (ADR 0011).
    get_policy("ucb-pop5").clone(
        name="ucb-pop6",
        population=Population(
            clusters=12,
            min_clusters=4,
            noise=0.25,
            restarts=4,
            cluster_lam=4.0,
            effective_parameters=True,
        ),
        description="ucb-pop5 whose AIC counts each cluster's effective degrees of freedom, "
        "not d=64: with few users it keeps more clusters (ADR 0011).",
    )
)
