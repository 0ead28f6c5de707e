"""A seeded synthetic bandit world whose target-policy value is known exactly.

Contexts are drawn from a finite set with known probabilities, so the target's value is a
finite sum rather than an integral. Rewards are Bernoulli with a known mean per (context,
candidate). Some contexts offer fewer candidates than K; their rows are zero-padded, and
``q_hat`` padding holds a large junk value so that any estimator reading it would show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["PAD_JUNK", "Environment", "Logs", "make_environment"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: What ``q_hat`` holds in padded slots: never to be read, because the target gives them 0.
PAD_JUNK = 1e6


@dataclass(frozen=True)
class Logs:
    """One simulated log of n rounds, in the shapes the estimators take."""

    reward: FloatArray
    action: IntArray
    pscore: FloatArray
    target_pscore: FloatArray
    target_dist: FloatArray
    q_true: FloatArray  # the true mean reward of every candidate (padding: PAD_JUNK)


@dataclass(frozen=True)
class Environment:
    """Contexts × candidates: mean rewards, a logging policy and a different target policy."""

    context_prob: FloatArray  # (C,)
    mean_reward: FloatArray  # (C, K), padding 0
    offered: npt.NDArray[np.bool_]  # (C, K), False for padding
    logging: FloatArray  # (C, K), rows sum to 1, 0 on padding
    target: FloatArray  # (C, K), rows sum to 1, 0 on padding

    @property
    def true_value(self) -> float:
        """V(π) = Σ_c p(c) Σ_k π(k|c) q(c, k), exactly."""
        return float(self.context_prob @ (self.target * self.mean_reward).sum(axis=1))

    def log(self, n: int, seed: int) -> Logs:
        """n rounds: context ~ p, action ~ logging, reward ~ Bernoulli(mean)."""
        rng = np.random.default_rng(seed)
        context = rng.choice(self.context_prob.shape[0], size=n, p=self.context_prob)
        cdf = np.cumsum(self.logging[context], axis=1)
        cdf /= cdf[:, -1:]
        action = (rng.random((n, 1)) < cdf).argmax(axis=1).astype(np.int64)
        reward = (rng.random(n) < self.mean_reward[context, action]).astype(np.float64)
        q_true = np.where(self.offered[context], self.mean_reward[context], PAD_JUNK)
        return Logs(
            reward=reward,
            action=action,
            pscore=self.logging[context, action],
            target_pscore=self.target[context, action],
            target_dist=self.target[context],
            q_true=q_true,
        )


def _softmax(scores: FloatArray, offered: npt.NDArray[np.bool_]) -> FloatArray:
    exp = np.where(offered, np.exp(scores - scores.max(axis=1, keepdims=True)), 0.0)
    result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
    return result


def make_environment(
    seed: int, *, n_contexts: int = 20, k: int = 5, uniform_logging: bool = False
) -> Environment:
    """A random world; ``uniform_logging`` gives every context all K candidates, logged uniformly.

    The target is a softmax that favours high-reward candidates, the logging policy an unrelated
    softmax mixed with a uniform floor, so importance weights stay below about 10.
    """
    rng = np.random.default_rng(seed)
    if uniform_logging:
        offered = np.ones((n_contexts, k), dtype=bool)
    else:
        n_offered = rng.integers(2, k + 1, size=n_contexts)
        offered = np.arange(k)[None, :] < n_offered[:, None]
    mean_reward = np.where(offered, rng.uniform(0.05, 0.95, size=(n_contexts, k)), 0.0)
    if uniform_logging:
        logging = offered / offered.sum(axis=1, keepdims=True)
    else:
        spread = _softmax(rng.normal(0.0, 1.0, size=(n_contexts, k)), offered)
        logging = 0.7 * spread + 0.3 * offered / offered.sum(axis=1, keepdims=True)
    target = _softmax(4.0 * mean_reward, offered)
    return Environment(
        context_prob=rng.dirichlet(np.full(n_contexts, 2.0)),
        mean_reward=mean_reward,
        offered=offered,
        logging=logging,
        target=target,
    )
