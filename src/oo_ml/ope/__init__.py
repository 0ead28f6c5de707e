"""Off-policy evaluation: what would another policy have earned on rounds we already logged?

Plain array functions with no I/O, usable on any logged bandit data, ours or not. Each takes
one row per logged round and returns an :class:`Estimate` — value, 95 % interval, standard
error and diagnostics. :mod:`oo_ml.ope.estimators` defines every formula and interval method.

A logging policy chose action 0 with probability 0.8 and action 1 with 0.2; the target would
choose each with 0.5. Four rounds were logged:

>>> import numpy as np
>>> from oo_ml.ope import dm, dr, ips, replay, snips
>>> reward = [1.0, 0.0, 1.0, 0.0]
>>> action = [0, 0, 1, 0]
>>> pscore = [0.8, 0.8, 0.2, 0.8]                # μ(logged action)
>>> target_dist = np.full((4, 2), 0.5)           # π(k | round), rows sum to 1
>>> target_pscore = target_dist[np.arange(4), action]
>>> est = ips(reward, pscore, target_pscore)
>>> round(est.value, 4), est.n, est.method
(0.7812, 4, 'normal')
>>> est.lower < est.value < est.upper
True
>>> round(snips(reward, pscore, target_pscore).value, 4)
0.7143

With a reward model's predictions for every candidate, the direct method and doubly robust:

>>> q_hat = np.array([[0.4, 0.9]] * 4)
>>> round(dm(target_dist, q_hat).value, 4)
0.65
>>> round(dr(reward, pscore, target_dist, q_hat, action).value, 4)
0.6812

Replay keeps the rounds where the target's own choice equals the logged one (valid under
uniform logging; see :func:`replay`). Clipping, another level, or a bootstrap interval:

>>> replay(reward, action, target_action=[1, 0, 1, 1]).n_matched
2
>>> ips(reward, pscore, target_pscore, clip=2.0).n_clipped
1
>>> ips(reward, pscore, target_pscore, level=0.9).level
0.9
>>> bootstrap(ips, reward, pscore, target_pscore, seed=7).method
'bootstrap'

Bad input raises :class:`~oo_ml.errors.ValidationError` naming the argument and row:

>>> from oo_ml.errors import ValidationError
>>> try:
...     ips(reward, [0.8, 0.0, 0.2, 0.8], target_pscore)
... except ValidationError as error:
...     print(error.field)
...     print(error.message)
pscore[1]
is 0.0, outside (0, 1]; a logged action must have had a positive chance of being logged
"""

from oo_ml.ope.estimate import Estimate, normal_quantile
from oo_ml.ope.estimators import dm, dr, ips, replay, sample_actions, snips
from oo_ml.ope.resampling import bootstrap

__all__ = [
    "Estimate",
    "bootstrap",
    "dm",
    "dr",
    "ips",
    "normal_quantile",
    "replay",
    "sample_actions",
    "snips",
]
