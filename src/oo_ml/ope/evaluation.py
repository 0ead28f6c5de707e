"""Off-policy evaluation on the service's own decision log, and the promotion gate built on it.

How a policy's probabilities are obtained for each logged round, in order of preference:

1. **logged** — the round was served by the evaluated policy itself: its logged probabilities
   are exactly what it did.
2. **shadow** — the evaluated policy ran as a shadow beside the one that served (see
   ``OO_ML_SHADOW_POLICIES``): its probabilities were logged at decision time, exactly.
3. **replayed** — otherwise the policy is replayed over the log in time order: each user's model
   starts empty (re-centred on a population model refitted from the replayed users, for policies
   that have one, as the engine does — though no more often than once per as many updates as
   there are users, to keep long replays affordable), the policy's probabilities are computed
   from the logged context and candidates with that model and the decision's own seed, and then
   the model learns the logged action's reward. The approximation: a replayed model learns from
   the logging policy's choices, not its own, so its state differs from what it would have had
   live; it is the state a shadow would have had. User resets are honoured through the feedback's
   ``applied`` flag only.

The reward model for DM and DR is the evaluated policy's per-user posterior mean θ·x *before*
the round's reward (progressive validation: no round's reward is used to predict itself),
clipped to the reward range [-1, 1]. Where the evaluated policy decided the round (logged) or
shadowed it, that mean was logged with the decision (``means``, since migration 0004): the model
as it really was, so nothing is learned again. Otherwise it is the replayed model's.

**The replay runs only when a round needs it** — probabilities to replay, or a round logged
before its means were kept. Until then the log's updates are only queued; the first round that
needs the replay teaches it everything before it in log order, so its numbers are exactly those
of a replay from the start. A challenger that ran as a shadow over the whole window is evaluated
without any replay: a read of the log, not a re-run of its learning (for a population policy,
also of its population refits).

Only ranked decisions with feedback (from the client, the legacy endpoint or the default
reward) and logged probabilities are used; the others are counted by reason in ``skipped``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from oo_ml.errors import ValidationError
from oo_ml.ope import Estimate, dm, dr, ips, replay, sample_actions, snips
from oo_ml.ope.estimate import around, standard_error
from oo_ml.ope.log import END_OF_TIME_MS, Round, iter_rounds
from oo_ml.ope.resampling import bootstrap as resample
from oo_ml.policies import get_policy
from oo_ml.policies.base import Policy, seeded_generator
from oo_ml.policies.model import RidgeState
from oo_ml.policies.population import PopulationModel, refit_after, user_data
from oo_ml.rewards import RewardRule
from oo_ml.store.base import DecisionRecord, ShadowRecord, Store, Txn
from oo_ml.types import Outcome

__all__ = [
    "ESTIMATORS",
    "Evaluation",
    "LogData",
    "PromotionCheck",
    "check_promotion",
    "collect",
    "evaluate",
    "evaluate_many",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ESTIMATORS = ("ips", "snips", "dm", "dr")
REPLAY_SEED = 20261126
"""Seed of the draws of the evaluated policy's actions for the replay estimator."""
GateEstimator = Literal["ips", "snips", "dm", "dr"]
Source = Literal["logged", "shadow", "replayed"]

ShadowLookup = Callable[[Sequence[str]], Mapping[str, ShadowRecord]]
"""Given event ids, the evaluated policy's shadow records of those that have one."""


@dataclass(frozen=True, slots=True)
class LogData:
    """The usable rounds as aligned arrays; ``target_dist`` and ``q_hat`` are padded with zeros
    to the largest number of candidates ``K``."""

    policy: str
    event_ids: tuple[str, ...]
    logged_policies: tuple[str, ...]
    reward: FloatArray
    pscore: FloatArray
    action: IntArray
    target_dist: FloatArray
    q_hat: FloatArray
    sources: Counter[str]
    skipped: Counter[str]
    q_sources: Counter[str] = field(default_factory=Counter)
    """Where each round's reward model came from: ``logged`` means or the ``replayed`` model."""

    @property
    def n(self) -> int:
        return len(self.event_ids)

    @property
    def target_pscore(self) -> FloatArray:
        return self.target_dist[np.arange(self.n), self.action]


@dataclass
class _Replay:
    """Per-user models of the evaluated policy, learned along the log."""

    policy: Policy
    refresh_every: int
    population_users: int
    states: dict[str, RidgeState] = field(default_factory=dict)
    touched: dict[str, int] = field(default_factory=dict)
    population: PopulationModel | None = None
    since_refit: int = 0
    clock: int = 0

    def state(self, user_id: str) -> RidgeState:
        state = self.states.get(user_id)
        if state is None:
            state = self.states[user_id] = self.policy.new_state()
            self._recenter(state)
        return state

    def learn(self, user_id: str, state: RidgeState, x: FloatArray, reward: float) -> None:
        self.policy.learn(state, x, reward)
        self.clock += 1
        self.touched[user_id] = self.clock
        if self.policy.population is not None:
            self.since_refit += 1
            due = refit_after(self.refresh_every, len(self.states))  # as the engine does
            if self.population is None or self.since_refit >= due:
                self._refit()
            self._recenter(state)

    def _refit(self) -> None:
        assert self.policy.population is not None
        lam = self.policy.model.lam
        recent = sorted(self.touched, key=self.touched.__getitem__)[-self.population_users :]
        users = [user_data(self.states[u], lam) for u in recent]
        self.population = PopulationModel.fit(users, lam, self.policy.population)
        self.since_refit = 0

    def _recenter(self, state: RidgeState) -> None:
        if self.population is None:
            return
        self.population.center(state)


def _reward(round_: Round, rule: RewardRule | None) -> float:
    feedback = round_[1]
    assert feedback is not None
    if rule is not None and feedback.action is not None:
        return rule.score(Outcome(feedback.action, feedback.dwell_ms)).value  # type: ignore[arg-type]
    return feedback.reward


@dataclass
class _Columns:
    """The usable rounds collected so far, one list per :class:`LogData` field."""

    event_ids: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    pscores: list[float] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    dists: list[FloatArray] = field(default_factory=list)
    q_hats: list[FloatArray] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    q_sources: Counter[str] = field(default_factory=Counter)

    def data(self, policy: str) -> LogData:
        n = len(self.event_ids)
        k = max((len(d) for d in self.dists), default=1)
        target_dist = np.zeros((n, k))
        q_hat = np.zeros((n, k))
        for i, (dist, q) in enumerate(zip(self.dists, self.q_hats, strict=True)):
            target_dist[i, : len(dist)] = dist
            q_hat[i, : len(q)] = q
        return LogData(
            policy=policy,
            event_ids=tuple(self.event_ids),
            logged_policies=tuple(self.logged),
            reward=np.asarray(self.rewards, dtype=np.float64),
            pscore=np.asarray(self.pscores, dtype=np.float64),
            action=np.asarray(self.actions, dtype=np.int64),
            target_dist=target_dist,
            q_hat=q_hat,
            sources=self.sources,
            skipped=self.skipped,
            q_sources=self.q_sources,
        )


def _unusable(round_: Round) -> str | None:
    """Why a round cannot be used for evaluation, or ``None``."""
    decision, feedback = round_
    if feedback is None:
        return "no feedback yet"
    if decision.origin != "rank" or decision.probabilities is None:
        return "legacy record, no probabilities"
    if not decision.probabilities[decision.chosen] > 0.0:
        return "logged probability 0"
    return None


def collect(
    rounds: Iterable[Round],
    policy: Policy,
    *,
    reward_rule: RewardRule | None = None,
    shadows: ShadowLookup | None = None,
    page: int = 1000,
    population_refresh_every: int = 100,
    population_users: int = 2000,
) -> LogData:
    """Turn logged rounds (oldest first) into estimator inputs for ``policy``.

    ``reward_rule`` re-scores each outcome from its raw action and dwell (default: the reward
    logged with the feedback; default rewards keep their logged value either way).
    """
    collector = _Collector(policy, reward_rule, population_refresh_every, population_users)
    for batch in _pages(rounds, page):
        exact = shadows([d.event_id for d, _ in batch]) if shadows is not None else {}
        for round_ in batch:
            collector.add(round_, exact.get(round_[0].event_id))
    return collector.data()


def _pages(rounds: Iterable[Round], size: int) -> Iterator[list[Round]]:
    batch: list[Round] = []
    for round_ in rounds:
        batch.append(round_)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Collector:
    """One policy's estimator inputs, gathered round after round (see :func:`collect`)."""

    def __init__(
        self,
        policy: Policy,
        reward_rule: RewardRule | None,
        population_refresh_every: int = 100,
        population_users: int = 2000,
    ) -> None:
        self.policy = policy
        self.reward_rule = reward_rule
        self.replay = _LazyReplay(_Replay(policy, population_refresh_every, population_users))
        self.out = _Columns()

    def add(self, round_: Round, shadow: ShadowRecord | None) -> None:
        """One logged round, with the policy's shadow record of it if it has one."""
        out = self.out
        why = _unusable(round_)
        if why is not None:
            out.skipped[why] += 1
            return
        decision, feedback = round_
        assert feedback is not None
        assert decision.probabilities is not None
        dist, q_hat, source, q_source = _target(decision, self.policy, shadow, self.replay)
        out.q_hats.append(np.clip(q_hat, -1.0, 1.0))
        out.q_sources[q_source] += 1
        reward = _reward(round_, self.reward_rule)
        if feedback.applied:
            self.replay.learn(decision, reward)
        out.event_ids.append(decision.event_id)
        out.logged.append(decision.policy)
        out.rewards.append(reward)
        out.pscores.append(float(decision.probabilities[decision.chosen]))
        out.actions.append(decision.chosen)
        out.dists.append(np.asarray(dist, dtype=np.float64))
        out.sources[source] += 1

    def data(self) -> LogData:
        return self.out.data(self.policy.name)


def _target(
    decision: DecisionRecord,
    policy: Policy,
    shadow: ShadowRecord | None,
    replay: _LazyReplay,
) -> tuple[FloatArray, FloatArray, Source, Source]:
    """``policy``'s probabilities and expected rewards for ``decision``'s candidates, and where
    each came from: logged with the decision or its shadow when they were, else replayed."""
    assert decision.probabilities is not None
    source: Source
    means: FloatArray | None
    dist: FloatArray | None
    if decision.policy == policy.name:
        dist, means, source = decision.probabilities, decision.means, "logged"
    elif shadow is not None:
        dist, means, source = shadow.probabilities, shadow.means, "shadow"
    else:
        dist, means, source = None, None, "replayed"
    if dist is not None and means is not None:
        replay.touch(decision.user_id)
        return dist, means, source, "logged"
    x = _features(decision, policy)
    state = replay.state(decision.user_id)
    if dist is None:
        rng = seeded_generator(decision.seed)
        ids = tuple(c.id for c in decision.candidates)
        dist = policy.decide(state, x, ids, rng).probabilities
    q_hat: FloatArray = x @ state.theta
    return dist, q_hat, source, "replayed"


def _features(decision: DecisionRecord, policy: Policy) -> FloatArray:
    """The (k, d) features ``policy`` sees for ``decision``'s candidates."""
    if _logged_features_fit(decision, policy):
        return decision.features
    return policy.encoder.encode(decision.context, decision.candidates)


def _logged_features_fit(decision: DecisionRecord, policy: Policy) -> bool:
    """Whether ``decision``'s logged features are the ones ``policy``'s encoder makes."""
    return decision.features.shape[1] == policy.dim and _same_encoder(decision.policy, policy)


class _LazyReplay:
    """A :class:`_Replay` told the log's updates only once a round needs it.

    Until then, each round's first reference to its user (which makes a new user's state,
    re-centred on the population of that moment) and each update are queued, in log order,
    with just the chosen row of features; :meth:`state` plays the queue first, so the state it
    returns is exactly the one an eager replay would have at that round.
    """

    def __init__(self, replay: _Replay) -> None:
        self._replay = replay
        self._queue: list[tuple[str, FloatArray | None, float]] = []

    def touch(self, user_id: str) -> None:
        """A round of ``user_id``'s that needs no model (what an eager replay would load)."""
        self._queue.append((user_id, None, 0.0))

    def learn(self, decision: DecisionRecord, reward: float) -> None:
        """The round's update: its chosen candidate's features, as the policy encodes them."""
        policy = self._replay.policy
        if _logged_features_fit(decision, policy):
            x = decision.features[decision.chosen].copy()
        else:
            chosen = decision.candidates[decision.chosen : decision.chosen + 1]
            x = policy.encoder.encode(decision.context, chosen)[0]
        self._queue.append((decision.user_id, x, reward))

    def state(self, user_id: str) -> RidgeState:
        """``user_id``'s model before this round's update, every earlier one taught."""
        replay = self._replay
        for queued_user, x, reward in self._queue:
            state = replay.state(queued_user)
            if x is not None:
                replay.learn(queued_user, state, x, reward)
        self._queue.clear()
        return replay.state(user_id)


def _same_encoder(logged_policy: str, policy: Policy) -> bool:
    try:
        return get_policy(logged_policy).encoder.name == policy.encoder.name
    except KeyError:
        return False


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Estimates of ``policy``'s mean reward per decision on the log, beside what the logging
    policies actually earned there (``logged``: the mean reward, normal 95% interval)."""

    policy: str
    n: int
    logged: Estimate | None
    logged_by_policy: dict[str, tuple[int, float]]
    estimates: dict[str, Estimate]
    sources: dict[str, int]
    skipped: dict[str, int]
    reward_model: dict[str, int] = field(default_factory=dict)
    """Rounds whose DM/DR reward model was the ``logged`` means or the ``replayed`` model."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "rounds": self.n,
            "logged": _estimate_json(self.logged),
            "logged_by_policy": {
                p: {"rounds": n, "mean_reward": m} for p, (n, m) in self.logged_by_policy.items()
            },
            "estimates": {name: _estimate_json(e) for name, e in self.estimates.items()},
            "probabilities": self.sources,
            "reward_model": self.reward_model,
            "skipped": self.skipped,
        }


def _estimate_json(e: Estimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "value": e.value,
        "lower": e.lower,
        "upper": e.upper,
        "std_err": e.std_err,
        "n": e.n,
        "ess": e.ess,
        "max_weight": e.max_weight,
        "method": e.method,
    }


def estimate_all(
    data: LogData, clip: float | None = None, *, bootstrap: int = 0, seed: int = 0
) -> dict[str, Estimate]:
    """Every estimator on ``data``; empty when there are no usable rounds.

    ``replay`` draws the evaluated policy's action in each round (seeded) and averages the
    rounds where it matches the logged one; it is only unbiased when the logging policy's
    probabilities were uniform, so it is shown for comparison and the gate never uses it.

    With ``bootstrap`` (a number of resamples, at least 2) each interval is a percentile
    bootstrap one over the rounds (:func:`~oo_ml.ope.resampling.bootstrap`, seeded with
    ``seed``) instead of the normal approximation, which under-covers when a few rounds carry
    large importance weights. A replay whose resample can match no round keeps its normal
    interval.
    """
    if data.n == 0:
        return {}
    if bootstrap and (isinstance(bootstrap, bool) or bootstrap < 2):
        raise ValidationError("bootstrap", f"is {bootstrap!r}; it must be 0 (off) or at least 2")

    def run(estimator: Callable[..., Estimate], *arrays: Any, **options: Any) -> Estimate:
        if not bootstrap:
            return estimator(*arrays, **options)
        return resample(estimator, *arrays, seed=seed, n_resamples=bootstrap, **options)

    target_pscore = data.target_pscore
    found = {"ips": run(ips, data.reward, data.pscore, target_pscore, clip=clip)}
    if target_pscore.any():  # otherwise SNIPS is 0/0: the policy never takes a logged action
        found["snips"] = run(snips, data.reward, data.pscore, target_pscore)
    found["dm"] = run(dm, data.target_dist, data.q_hat)
    found["dr"] = run(
        dr, data.reward, data.pscore, data.target_dist, data.q_hat, data.action, clip=clip
    )
    drawn = sample_actions(data.target_dist, seed=REPLAY_SEED)
    if np.any(drawn == data.action):
        try:
            found["replay"] = run(replay, data.reward, data.action, drawn)
        except ValidationError:  # a resample matched no round
            found["replay"] = replay(data.reward, data.action, drawn)
    return found


def _logged_mean(reward: FloatArray) -> Estimate | None:
    if reward.size == 0:
        return None
    return around(
        "logged",
        float(reward.mean()),
        std_err=standard_error(reward),
        n=int(reward.size),
        level=0.95,
        method="normal",
    )


def evaluate(store: Store, policy: str, **options: Any) -> Evaluation:
    """Evaluate the registered ``policy`` on the log: :func:`evaluate_many` of one policy,
    with the same keyword options."""
    (result,) = evaluate_many(store, [policy], **options)
    return result


def evaluate_many(
    store: Store,
    policies: Sequence[str],
    *,
    since_ms: int = 0,
    until_ms: int = END_OF_TIME_MS,
    logged_policies: Sequence[str] | None = None,
    reward_rule: RewardRule | None = None,
    clip: float | None = None,
    max_rounds: int | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> list[Evaluation]:
    """Evaluate each of the registered ``policies``, in order, on decisions made in
    ``[since_ms, until_ms)`` (optionally only those served by ``logged_policies``; at most the
    first ``max_rounds``); ``bootstrap`` and ``seed``: see :func:`estimate_all`. The log is read
    once for all: each page of rounds, and their shadow records, is given to every policy."""
    targets = [get_policy(name) for name in policies]
    if max_rounds is not None and max_rounds < 1:
        raise ValidationError("max_rounds", "must be at least 1")
    rounds: Iterable[Round] = iter_rounds(
        store, since_ms=since_ms, until_ms=until_ms, policies=logged_policies
    )
    if max_rounds is not None:
        rounds = _take(rounds, max_rounds)
    collectors = [_Collector(target, reward_rule) for target in targets]
    for batch in _pages(rounds, 1000):
        found = _shadows_of(store, [d.event_id for d, _ in batch])
        for round_ in batch:
            records = found.get(round_[0].event_id, ())
            for collector in collectors:
                name = collector.policy.name
                shadow = next((r for r in records if r.policy == name), None)
                collector.add(round_, shadow)
    return [
        _evaluation(collector.data(), clip, bootstrap=bootstrap, seed=seed)
        for collector in collectors
    ]


def _shadows_of(store: Store, event_ids: Sequence[str]) -> Mapping[str, Sequence[ShadowRecord]]:
    def job(txn: Txn) -> Mapping[str, Sequence[ShadowRecord]]:
        return txn.shadows_for(event_ids)

    return store.read(job)


def _evaluation(data: LogData, clip: float | None, *, bootstrap: int, seed: int) -> Evaluation:
    by_policy: dict[str, tuple[int, float]] = {}
    for name in sorted(set(data.logged_policies)):
        mask = np.fromiter((p == name for p in data.logged_policies), bool, data.n)
        by_policy[name] = (int(mask.sum()), float(data.reward[mask].mean()))
    return Evaluation(
        policy=data.policy,
        n=data.n,
        logged=_logged_mean(data.reward),
        logged_by_policy=by_policy,
        estimates=estimate_all(data, clip, bootstrap=bootstrap, seed=seed),
        sources=dict(data.sources),
        skipped=dict(data.skipped),
        reward_model=dict(data.q_sources),
    )


def _take(rounds: Iterable[Round], limit: int) -> Iterable[Round]:
    for i, round_ in enumerate(rounds):
        if i >= limit:
            return
        yield round_


# -- the promotion gate --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromotionCheck:
    """The gate's verdict: ``allowed`` when the challenger's lower bound beats the active
    policy's estimate on the same rounds with the same estimator."""

    allowed: bool
    reason: str
    estimator: str
    challenger: str
    active: str
    rounds: int
    challenger_estimate: Estimate | None
    active_estimate: Estimate | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "estimator": self.estimator,
            "rounds": self.rounds,
            "challenger": {
                "policy": self.challenger,
                **(_estimate_json(self.challenger_estimate) or {}),
            },
            "active": {"policy": self.active, **(_estimate_json(self.active_estimate) or {})},
        }


def check_promotion(
    store: Store,
    challenger: str,
    active: str,
    *,
    estimator: GateEstimator,
    since_ms: int,
    until_ms: int = END_OF_TIME_MS,
    min_rounds: int = 200,
    max_rounds: int | None = None,
) -> PromotionCheck:
    """May ``challenger`` replace ``active``? Both are evaluated with ``estimator`` on the same
    logged rounds; the challenger's lower 95% bound must exceed the active policy's estimate,
    and there must be at least ``min_rounds`` usable rounds."""
    if estimator not in ESTIMATORS:
        raise ValidationError("estimator", f"must be one of {', '.join(ESTIMATORS)}")
    if challenger == active:
        return PromotionCheck(True, "already active", estimator, challenger, active, 0, None, None)
    evaluated = evaluate_many(
        store, [challenger, active], since_ms=since_ms, until_ms=until_ms, max_rounds=max_rounds
    )
    results = {result.policy: result for result in evaluated}
    rounds = results[challenger].n
    new = results[challenger].estimates.get(estimator)
    old = results[active].estimates.get(estimator)
    if new is None or old is None or rounds < min_rounds:
        reason = f"only {rounds} usable logged rounds; the gate needs at least {min_rounds}"
        return PromotionCheck(False, reason, estimator, challenger, active, rounds, new, old)
    if not math.isfinite(new.lower) or new.lower <= old.value:
        reason = (
            f"{challenger}'s {estimator} lower bound {new.lower:+.4f} does not beat "
            f"{active}'s {estimator} estimate {old.value:+.4f} ({rounds} rounds)"
        )
        return PromotionCheck(False, reason, estimator, challenger, active, rounds, new, old)
    reason = (
        f"{challenger}'s {estimator} lower bound {new.lower:+.4f} beats "
        f"{active}'s estimate {old.value:+.4f} ({rounds} rounds)"
    )
    return PromotionCheck(True, reason, estimator, challenger, active, rounds, new, old)
