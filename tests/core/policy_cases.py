"""Policies the conformance suite runs over: every registered one, plus unregistered combinations
so that every exploration strategy and model option is covered even before it is published."""

from __future__ import annotations

from oo_ml.features import get_encoder
from oo_ml.policies import (
    POLICIES,
    UCB,
    EpsilonGreedy,
    Greedy,
    Policy,
    RidgeModel,
    Softmax,
    SquareCB,
    Thompson,
)

EXTRA_POLICIES = [
    Policy("t-greedy", get_encoder("v2"), Greedy(), description="test: greedy"),
    Policy("t-softmax", get_encoder("v3"), Softmax(0.2), description="test: softmax"),
    Policy("t-ts-v2", get_encoder("v2"), Thompson(0.5, draws=64), description="test: TS, k > d"),
    Policy(
        "t-ucb-discounted",
        get_encoder("v2"),
        UCB(0.5),
        RidgeModel(lam=2.0, discount=0.95),
        description="test: discounted UCB",
    ),
    Policy(
        "t-egreedy-refactor",
        get_encoder("v1"),
        EpsilonGreedy(0.3),
        RidgeModel(lam=0.5, refactor_every=7),
        description="test: frequent refactorisation",
    ),
    Policy(
        "t-squarecb-flat",
        get_encoder("v1"),
        SquareCB(gamma_scale=50.0, gamma_exponent=0.0),
        description="test: constant-γ SquareCB",
    ),
]

ALL_POLICIES = [*POLICIES.values(), *EXTRA_POLICIES]
