"""oo_ml: the contextual-bandit decision service behind oO's tips.

The public API is what ``__all__`` lists; everything else may change without notice.
"""

from oo_ml.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OOMLError,
    RegistryError,
    StateError,
    StoreError,
    UnknownPolicyError,
    UnknownRewardRuleError,
    ValidationError,
)
from oo_ml.features import ENCODERS, Encoder, get_encoder
from oo_ml.policies import (
    POLICIES,
    Bandit,
    Policy,
    RidgeModel,
    RidgeState,
    get_policy,
    register_policy,
)
from oo_ml.rewards import REWARD_RULES, RewardRule, get_reward_rule
from oo_ml.types import Action, Candidate, Context, Decision, Outcome, Reward

__version__ = "0.1.0"

__all__ = [
    "ENCODERS",
    "POLICIES",
    "REWARD_RULES",
    "Action",
    "Bandit",
    "Candidate",
    "ConfigurationError",
    "ConflictError",
    "Context",
    "Decision",
    "Encoder",
    "NotFoundError",
    "OOMLError",
    "Outcome",
    "Policy",
    "RegistryError",
    "Reward",
    "RewardRule",
    "RidgeModel",
    "RidgeState",
    "StateError",
    "StoreError",
    "UnknownPolicyError",
    "UnknownRewardRuleError",
    "ValidationError",
    "__version__",
    "get_encoder",
    "get_policy",
    "get_reward_rule",
    "register_policy",
]
