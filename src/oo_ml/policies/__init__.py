"""Bandit policies: features × ridge model × exploration, and the registry of named ones."""

from oo_ml.policies.base import Bandit, Policy
from oo_ml.policies.exploration import (
    UCB,
    EpsilonGreedy,
    Exploration,
    Greedy,
    Softmax,
    SquareCB,
    Thompson,
)
from oo_ml.policies.model import RidgeModel, RidgeState
from oo_ml.policies.registry import POLICIES, get_policy, register_policy

__all__ = [
    "POLICIES",
    "UCB",
    "Bandit",
    "EpsilonGreedy",
    "Exploration",
    "Greedy",
    "Policy",
    "RidgeModel",
    "RidgeState",
    "Softmax",
    "SquareCB",
    "Thompson",
    "get_policy",
    "register_policy",
]
