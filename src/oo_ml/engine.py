"""The engine: rank → log → feedback → reward → update, over a :class:`~oo_ml.store.base.Store`.

This is the one place where a decision is made and logged and where feedback becomes a model
update; the HTTP API, the simulator and the command line all call it. Every state change is one
store job, so it is atomic, serialised per (user, policy), and durable before it returns.

Feedback never carries features: the engine learns from the features it logged when it
decided, so training and serving cannot disagree.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np

from oo_ml.errors import (
    ConflictError,
    NotFoundError,
    PromotionRefusedError,
    UnknownPolicyError,
    ValidationError,
)
from oo_ml.ope.evaluation import GateEstimator, PromotionCheck, check_promotion
from oo_ml.policies import POLICIES, Policy, get_policy
from oo_ml.policies.base import seeded_generator
from oo_ml.policies.model import RidgeState
from oo_ml.policies.population import PopulationModel, refit_after, user_data
from oo_ml.rewards import get_reward_rule
from oo_ml.store.base import (
    DecisionRecord,
    FeedbackRecord,
    ShadowRecord,
    StateRow,
    Store,
    Txn,
)
from oo_ml.types import (
    MAX_ID_LENGTH,
    Candidate,
    Context,
    Outcome,
    check_candidates,
)

__all__ = [
    "Engine",
    "EngineConfig",
    "FeedbackResult",
    "UserStats",
    "check_shadow_policies",
    "new_event_id",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

ACTIVE_POLICY_KEY = "active_policy"
SHADOW_POLICIES_KEY = "shadow_policies"
MAX_SHADOW_POLICIES = 4
"""Each shadow costs every decision a state load and a scoring, and every feedback an update."""
SETTLED_UNTIL_KEY = "settled_until_ms"
MAX_EVENT_ID_LENGTH = 64
_EVENT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def new_event_id(now_ms: int) -> str:
    """32 hex characters: 12 of milliseconds (ids sort by time) and 20 random."""
    return f"{now_ms:012x}{secrets.token_hex(10)}"


def check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= MAX_ID_LENGTH:
        raise ValidationError("user_id", f"must be a string of 1 to {MAX_ID_LENGTH} characters")
    if "\x00" in user_id:  # PostgreSQL text cannot hold NUL; refused on every database alike
        raise ValidationError("user_id", "must not contain the NUL character")
    return user_id


def check_event_id(event_id: object) -> str:
    if (
        not isinstance(event_id, str)
        or not 1 <= len(event_id) <= MAX_EVENT_ID_LENGTH
        or not set(event_id) <= _EVENT_ID_CHARS
    ):
        raise ValidationError(
            "event_id",
            f"must be 1 to {MAX_EVENT_ID_LENGTH} characters of letters, digits and -_.:",
        )
    return event_id


def check_shadow_policies(names: object, field: str = "shadow_policies") -> tuple[str, ...]:
    """``names`` as a tuple of distinct registered policy names, at most
    :data:`MAX_SHADOW_POLICIES`; a :class:`ValidationError` at ``field`` otherwise."""
    if not isinstance(names, list | tuple):
        raise ValidationError(field, "must be a list of policy names")
    if len(names) > MAX_SHADOW_POLICIES:
        raise ValidationError(field, f"at most {MAX_SHADOW_POLICIES} shadow policies")
    seen: set[str] = set()
    for i, name in enumerate(names):
        where = f"{field}[{i}]"
        if not isinstance(name, str):
            raise ValidationError(where, "must be a policy name")
        try:
            get_policy(name)
        except NotFoundError as exc:
            raise ValidationError(where, str(exc)) from None
        if name in seen:
            raise ValidationError(where, f"{name!r} is listed twice")
        seen.add(name)
    return tuple(names)


def policy_seed_key(policy: str) -> int:
    """A 64-bit number for a policy's name, to key its random streams by the name rather than
    by its place in a list."""
    return int.from_bytes(hashlib.blake2b(policy.encode(), digest_size=8).digest(), "big")


def _shadow_seed(seed: int, policy: str) -> np.random.SeedSequence:
    """A shadow's generator for one decision: from the decision's seed and the shadow's name
    (not its place in the list), so the logged record alone reproduces its draw."""
    return np.random.SeedSequence([seed, policy_seed_key(policy)])


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine needs from the settings (see :class:`oo_ml.settings.Settings`)."""

    default_policy: str = "egreedy-v1"
    reward_rule: str = "dwell-v1"
    max_candidates: int = 200
    store_content: bool = False
    default_reward: float = 0.0
    reward_wait_ms: int = 3_600_000
    active_policy_ttl_s: float = 1.0
    population_refresh_every: int = 100
    """Refit a population model after this many updates, or after as many updates as it has
    users if that is more: a fit costs O(users), so refits cost O(1) per update however many
    users there are, and each user's data changes a little between two fits."""
    population_refresh_s: float = 300.0
    promotion_gate: str | None = None
    """Estimator of the promotion gate (``ips``, ``snips``, ``dm``, ``dr``); ``None``: no gate."""
    promotion_window_ms: int = 14 * 86_400_000
    promotion_min_rounds: int = 200
    promotion_max_rounds: int = 50_000
    population_users: int = 2000
    """The population model is fitted to this many most recently active users at most: the
    refit runs in the writer thread and costs O(users × clusters × d²)."""
    population_refit_background: bool = False
    """Refit population models in a background thread (the server does): the writer never waits
    for a refit, decisions use the previous model until the new one is ready, and a refit starts
    no sooner than ten times the previous one's duration after it ended, so refits take at most
    about a tenth of a core. Off, refits run inline; with ``population_refresh_s`` infinite as
    well, they depend on the updates alone and a run is reproducible (the simulator)."""
    shadow_policies: tuple[str, ...] = ()
    """Challengers scored beside the served policy on every decision (until overridden in the
    database, see :meth:`Engine.set_shadow_policies`)."""

    def __post_init__(self) -> None:
        get_policy(self.default_policy)
        get_reward_rule(self.reward_rule)
        check_shadow_policies(self.shadow_policies)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """A scored outcome, ready to be applied to a decision."""

    action: str | None
    dwell_ms: int | None
    reward_milli: int
    rule: str
    origin: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    feedback: FeedbackRecord
    duplicate: bool


@dataclass(frozen=True, slots=True)
class UserStats:
    """A user's model under one policy, for the stats endpoints and the console."""

    user_id: str
    policy: str
    pulls: int
    explored: int
    reward_count: int
    reward_sum: float
    theta: list[float]
    labels: list[str]
    last_updated_ms: int | None
    model_updates: int

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.reward_count if self.reward_count else 0.0


@dataclass
class _Population:
    model: PopulationModel | None = None
    computed_at: float | None = None
    updates: int = 0
    users: int = 0
    """How many users the model was fitted to."""
    refitting: bool = False
    fit_seconds: float = 0.0


@dataclass
class _ActiveCache:
    name: str | None = None
    expires: float = 0.0
    shadows: tuple[str, ...] | None = None
    shadows_expires: float = 0.0


class _LoopWaker:
    """Hands the store's results to one event loop with one wake-up per batch.

    ``asyncio.wrap_future`` wakes the loop once per result (a write to its self-pipe, from the
    writer thread); a group commit resolves many results at once, and each wake-up costs the
    writer a GIL hand-off to a busy loop. Here the first result of a batch schedules one drain
    and the others join it. Cancelling a waiter does not cancel the job: it was queued and
    runs anyway, as before; its result is dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[Future[Any], asyncio.Future[Any]]] = []

    def wait(self, source: Future[T]) -> asyncio.Future[T]:
        target: asyncio.Future[T] = self._loop.create_future()
        source.add_done_callback(partial(self._done, target=target))
        return target

    def _done(self, source: Future[Any], target: asyncio.Future[Any]) -> None:
        with self._lock:
            self._ready.append((source, target))
            if len(self._ready) > 1:
                return  # a drain is already scheduled
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for source, target in ready:
            if target.cancelled():
                continue
            error = source.exception()
            if error is None:
                target.set_result(source.result())
            else:
                target.set_exception(error)


@dataclass
class Engine:
    """Decisions and feedback over ``store``. ``clock`` returns seconds since the epoch;
    ``seed_source`` gives each decision's random seed (a seeded one makes runs reproducible)."""

    store: Store
    config: EngineConfig = field(default_factory=EngineConfig)
    clock: Callable[[], float] = time.time
    seed_source: Callable[[], int] = field(default=lambda: secrets.randbits(63))
    _active: _ActiveCache = field(default_factory=_ActiveCache, repr=False)
    _wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )
    _population: dict[str, _Population] = field(default_factory=dict, repr=False)
    _population_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _refits: set[threading.Thread] = field(default_factory=set, repr=False)
    _fresh_states: dict[str, tuple[Policy, RidgeState]] = field(default_factory=dict, repr=False)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- policies -------------------------------------------------------------------------

    def active_policy(self) -> Policy:
        """The policy that serves requests that name none (cached for a second per process)."""
        now = time.monotonic()
        if self._active.name is None or now >= self._active.expires:
            self.store.read(self._refresh_policies)
        assert self._active.name is not None
        return get_policy(self._active.name)

    def _refresh_policies(self, txn: Txn) -> None:
        """Read the active and the shadow policies together: one read a second at most."""
        now = time.monotonic()
        stored = txn.get_setting(ACTIVE_POLICY_KEY)
        self._active.name = stored or self.config.default_policy
        self._active.expires = now + self.config.active_policy_ttl_s
        self._active.shadows = self._stored_shadows(txn.get_setting(SHADOW_POLICIES_KEY))
        self._active.shadows_expires = self._active.expires

    def _stored_shadows(self, stored: str | None) -> tuple[str, ...]:
        if stored is None:
            return self.config.shadow_policies
        names = tuple(json.loads(stored))
        known = tuple(name for name in names if name in POLICIES)
        if known != names:  # a policy removed from the code must not fail every request
            log.warning("ignoring unregistered shadow policies %s", sorted(set(names) - set(known)))
        return known

    def _shadow_names(self, txn: Txn | None = None) -> tuple[str, ...]:
        """The configured shadows, cached like the active policy; inside a job pass its ``txn``
        so that a refresh reads through it rather than through another connection."""
        cached = self._active.shadows
        if cached is not None and time.monotonic() < self._active.shadows_expires:
            return cached
        if txn is None:
            self.store.read(self._refresh_policies)
        else:
            self._refresh_policies(txn)
        assert self._active.shadows is not None
        return self._active.shadows

    def shadow_policies(self) -> tuple[Policy, ...]:
        """The challengers scored beside the served policy (cached for a second per process):
        set with :meth:`set_shadow_policies`, else ``config.shadow_policies``."""
        return tuple(get_policy(name) for name in self._shadow_names())

    def set_shadow_policies(self, names: Sequence[str]) -> tuple[Policy, ...]:
        """Score ``names`` beside the served policy from now on (an empty list: none).
        Raises :class:`ValidationError` at ``policies`` for a bad list, changing nothing."""
        checked = check_shadow_policies(names, "policies")
        value = json.dumps(list(checked))
        self.store.write(lambda txn: txn.set_setting(SHADOW_POLICIES_KEY, value))
        self._active.shadows = checked
        self._active.shadows_expires = time.monotonic() + self.config.active_policy_ttl_s
        return tuple(get_policy(name) for name in checked)

    def set_active_policy(self, name: str) -> Policy:
        policy = get_policy(name)
        self.store.write(lambda txn: txn.set_setting(ACTIVE_POLICY_KEY, policy.name))
        self._active.name = policy.name
        self._active.expires = time.monotonic() + self.config.active_policy_ttl_s
        return policy

    def check_promotion(self, name: str, *, preview: bool = False) -> PromotionCheck | None:
        """The promotion gate's verdict on making ``name`` active; ``None`` without a gate,
        unless ``preview``: then the verdict the gate would give with DR (or its estimator)."""
        challenger = get_policy(name)
        estimator = self.config.promotion_gate or ("dr" if preview else None)
        if estimator is None:
            return None
        now = self.now_ms()
        return check_promotion(
            self.store,
            challenger.name,
            self.active_policy().name,
            estimator=cast(GateEstimator, estimator),
            since_ms=max(0, now - self.config.promotion_window_ms),
            until_ms=now + 1,
            min_rounds=self.config.promotion_min_rounds,
            max_rounds=self.config.promotion_max_rounds,
        )

    def promote(self, name: str) -> tuple[Policy, PromotionCheck | None]:
        """Make ``name`` the active policy if the promotion gate (when configured) lets it.

        Raises :class:`~oo_ml.errors.PromotionRefusedError` with the gate's numbers otherwise.
        """
        verdict = self.check_promotion(name)
        if verdict is not None and not verdict.allowed:
            raise PromotionRefusedError(
                f"promotion of {verdict.challenger} refused: {verdict.reason}", verdict.to_dict()
            )
        return self.set_active_policy(name), verdict

    # -- ranking --------------------------------------------------------------------------

    def rank_job(
        self,
        user_id: str,
        context: Context,
        candidates: Sequence[Candidate],
        *,
        policy: str | None = None,
        source_ids: Sequence[str | None] | None = None,
        content: Sequence[str] | None = None,
        event_id: str | None = None,
        shadows_out: list[ShadowRecord] | None = None,
    ) -> Callable[[Txn], DecisionRecord]:
        """Validate and prepare a decision; the returned job decides and logs it.

        The job also logs what each shadow policy would have done (other than the one that
        serves), after the served decision and without touching it: the user sees exactly
        what they would see without shadows. ``shadows_out``, if given, receives the shadow
        records the job logged (replaced on each run, so a retried batch does not add twice).
        """
        check_user_id(user_id)
        if not isinstance(context, Context):
            raise ValidationError("context", "must be a Context")
        check_candidates(candidates, self.config.max_candidates)
        chosen_policy = self.active_policy() if policy is None else get_policy(policy)
        if event_id is not None:
            check_event_id(event_id)
        created_ms = self.now_ms()
        record_id = event_id or new_event_id(created_ms)
        features = chosen_policy.encoder.encode(context, candidates)
        ids = tuple([c.id for c in candidates])
        sources = tuple(source_ids) if source_ids is not None else (None,) * len(ids)
        texts = tuple(content) if content is not None and self.config.store_content else None
        seed = self.seed_source()
        shadows = [p for p in self.shadow_policies() if p.name != chosen_policy.name]
        shadow_features = [p.encoder.encode(context, candidates) for p in shadows]

        def job(txn: Txn) -> DecisionRecord:
            if event_id is not None and txn.get_decision(event_id) is not None:
                raise ConflictError(f"event id {event_id!r} already exists")
            row = txn.load_state(user_id, chosen_policy.name)
            if row is not None:
                state = row.state
            elif chosen_policy.population is None:
                # A new user's prior is the same for everyone: built once, only read here.
                fresh = self._fresh_states.get(chosen_policy.name)
                state = (
                    fresh[1]
                    if fresh and fresh[0] is chosen_policy
                    else self._fresh_state(chosen_policy)
                )
            else:
                state = chosen_policy.new_state()
                self._recenter(txn, chosen_policy, state)
            rng = seeded_generator(seed)
            decision = chosen_policy.decide(state, features, ids, rng)
            record = DecisionRecord(
                event_id=record_id,
                user_id=user_id,
                policy=chosen_policy.name,
                created_ms=created_ms,
                context=context,
                candidates=tuple(candidates),
                source_ids=sources,
                features=features,
                scores=decision.scores,
                probabilities=decision.probabilities,
                chosen=decision.chosen,
                seed=seed,
                model_updates=state.n_updates,
                content=texts,
                means=decision.means,
            )
            txn.insert_decision(record)
            if shadows:
                logged = self._shadow_decide(txn, record, shadows, shadow_features, ids)
                if shadows_out is not None:
                    shadows_out[:] = logged
            return record

        return job

    def _fresh_state(self, policy: Policy) -> RidgeState:
        """``policy.new_state()`` with read-only arrays, kept for the next new user: a policy
        without a population prior starts everyone from the same state, and a decision only
        reads it (a write would raise)."""
        state = policy.new_state().freeze()
        self._fresh_states[policy.name] = (policy, state)
        return state

    def _shadow_decide(
        self,
        txn: Txn,
        record: DecisionRecord,
        shadows: Sequence[Policy],
        features: Sequence[Any],
        ids: tuple[str, ...],
    ) -> list[ShadowRecord]:
        """Let each shadow decide on ``record``'s candidates with its own model and log it."""
        logged = []
        for policy, x in zip(shadows, features, strict=True):
            row = txn.load_state(record.user_id, policy.name)
            if row is not None:
                state = row.state
            else:
                state = policy.new_state()
                self._recenter(txn, policy, state)
            rng = seeded_generator(_shadow_seed(record.seed, policy.name))
            decision = policy.decide(state, x, ids, rng)
            logged.append(
                ShadowRecord(
                    event_id=record.event_id,
                    policy=policy.name,
                    scores=decision.scores,
                    probabilities=decision.probabilities,
                    chosen=decision.chosen,
                    model_updates=state.n_updates,
                    means=decision.means,
                )
            )
        txn.insert_shadows(logged)
        return logged

    def rank(
        self, user_id: str, context: Context, candidates: Sequence[Candidate], **kw: Any
    ) -> DecisionRecord:
        return self.store.write(self.rank_job(user_id, context, candidates, **kw))

    # -- feedback -------------------------------------------------------------------------

    def feedback_job(self, event_id: str, outcome: Outcome) -> Callable[[Txn], FeedbackResult]:
        """Score ``outcome`` with the active reward rule; the job applies it once."""
        check_event_id(event_id)
        rule = get_reward_rule(self.config.reward_rule)
        verdict = _Verdict(
            outcome.action.value,
            outcome.dwell_ms,
            rule.score(outcome).milli,
            rule.name,
            "client",
            self.now_ms(),
        )

        def job(txn: Txn) -> FeedbackResult:
            decision = txn.get_decision(event_id)
            if decision is None:
                raise NotFoundError(f"no decision with event id {event_id!r}")
            return self._apply(txn, decision, verdict)

        return job

    def feedback(self, event_id: str, outcome: Outcome) -> FeedbackResult:
        return self.store.write(self.feedback_job(event_id, outcome))

    async def run_async(self, job: Callable[[Txn], T]) -> T:
        """Run a write job from async code; returns once it is durable. A store that offers
        ``submit_async`` (the SQL store) gets the job from the event loop itself."""
        submit_async = getattr(self.store, "submit_async", None)
        if submit_async is not None:
            return cast(T, await submit_async(job))
        loop = asyncio.get_running_loop()
        waker = self._wakers.get(loop)
        if waker is None:
            waker = self._wakers[loop] = _LoopWaker(loop)
        return await waker.wait(self.store.submit(job))

    def _apply(self, txn: Txn, decision: DecisionRecord, verdict: _Verdict) -> FeedbackResult:
        """Record feedback on ``decision`` and update its model, unless it already has some."""
        policy = get_policy(decision.policy)
        # With no shadows configured this costs no query. Shadow records never change once
        # logged, so they can be read before the lock.
        shadows = self._shadows_of(txn, decision) if self._shadow_names(txn) else []
        # Lock the model first: whoever holds it sees any feedback committed before.
        row = txn.load_state(decision.user_id, policy.name, for_update=True)
        existing = txn.get_feedback(decision.event_id)
        if existing is not None:
            return FeedbackResult(existing, duplicate=True)
        user = txn.get_user(decision.user_id)
        # A decision in the same millisecond as the reset counts as after it.
        applied = user is None or user.reset_ms is None or decision.created_ms >= user.reset_ms
        if applied:
            if row is None:
                row = StateRow(policy.new_state())
            reward = verdict.reward_milli / 1000.0
            policy.learn(row.state, decision.features[decision.chosen], reward)
            # Stored re-centred: the next decision starts from the prior this data points to.
            self._recenter(txn, policy, row.state)
            row.reward_count += 1
            row.reward_sum_milli += verdict.reward_milli
            row.updated_ms = verdict.now_ms
            txn.save_state(decision.user_id, policy.name, row)
            if policy.population is not None:
                self._population.setdefault(policy.name, _Population()).updates += 1
            for shadow in shadows:
                self._learn_shadow(txn, decision, shadow, reward, verdict.now_ms)
        record = FeedbackRecord(
            event_id=decision.event_id,
            user_id=decision.user_id,
            policy=policy.name,
            created_ms=verdict.now_ms,
            action=verdict.action,
            dwell_ms=verdict.dwell_ms,
            reward_milli=verdict.reward_milli,
            reward_rule=verdict.rule,
            origin=verdict.origin,
            applied=applied,
        )
        txn.insert_feedback(record)
        return FeedbackResult(record, duplicate=False)

    def _shadows_of(self, txn: Txn, decision: DecisionRecord) -> list[ShadowRecord]:
        return txn.shadows_for([decision.event_id]).get(decision.event_id, [])

    def _learn_shadow(
        self,
        txn: Txn,
        decision: DecisionRecord,
        shadow: ShadowRecord,
        reward: float,
        now_ms: int,
    ) -> None:
        """Teach a shadow the logged action's reward (off-policy: it learns from what was
        shown, whatever it would have chosen), with the features its own encoder gives that
        action. Its reward counters stay as they are: they count what it earned serving."""
        try:
            policy = get_policy(shadow.policy)
        except UnknownPolicyError:
            return  # removed from the code since it shadowed this decision
        x = policy.encoder.encode(decision.context, decision.candidates)[decision.chosen]
        row = txn.load_state(decision.user_id, policy.name, for_update=True)
        if row is None:
            row = StateRow(policy.new_state())
        policy.learn(row.state, x, reward)
        self._recenter(txn, policy, row.state)
        row.updated_ms = now_ms
        txn.save_state(decision.user_id, policy.name, row)
        if policy.population is not None:
            self._population.setdefault(policy.name, _Population()).updates += 1

    def legacy_reward_job(
        self,
        user_id: str,
        policy: str,
        tip_id: str,
        reward: float,
        *,
        client_candidate: Candidate,
        client_context: Context,
    ) -> Callable[[Txn], FeedbackResult]:
        """The old ``/reward``: a numeric reward for the tip a user was shown.

        The model learns from the features logged with the newest decision that showed
        ``tip_id``; only when there is none (the tip was never ranked here) does it fall back to
        the features the client sent, as the old service always did. Every call counts, as
        before: a tip rewarded twice gets a second, single-candidate log record.
        """
        check_user_id(user_id)
        chosen_policy = get_policy(policy)
        if not (isinstance(reward, float | int) and math.isfinite(reward) and abs(reward) <= 1):
            raise ValidationError("reward", "must be a finite number between -1 and 1")
        now = self.now_ms()
        verdict = _Verdict(None, None, round(reward * 1000), "client", "legacy", now)
        client_features = chosen_policy.encoder.encode(client_context, [client_candidate])
        new_id = new_event_id(now)

        def job(txn: Txn) -> FeedbackResult:
            # Lock the model before looking for the shown tip's feedback: otherwise two rewards
            # for one tip on two workers both see it unanswered and the second is dropped as a
            # duplicate of the first.
            txn.load_state(user_id, chosen_policy.name, for_update=True)
            shown = txn.latest_decision_for_tip(user_id, chosen_policy.name, tip_id)
            if shown is None or txn.get_feedback(shown.event_id) is not None:
                if shown is None:
                    context, candidate = client_context, client_candidate
                    features, source_id = client_features, None
                else:
                    context, candidate = shown.context, shown.candidates[shown.chosen]
                    features = shown.features[shown.chosen : shown.chosen + 1]
                    source_id = shown.source_ids[shown.chosen]
                row = txn.load_state(user_id, chosen_policy.name)
                state = row.state if row is not None else chosen_policy.new_state()
                shown = DecisionRecord(
                    event_id=new_id,
                    user_id=user_id,
                    policy=chosen_policy.name,
                    created_ms=now,
                    context=context,
                    candidates=(candidate,),
                    source_ids=(source_id,),
                    features=features,
                    scores=features @ state.theta,
                    probabilities=None,
                    chosen=0,
                    seed=0,
                    model_updates=state.n_updates,
                    origin="legacy",
                )
                txn.insert_decision(shown)
            return self._apply(txn, shown, verdict)

        return job

    # -- population prior -----------------------------------------------------------------

    def _recenter(self, txn: Txn, policy: Policy, state: RidgeState) -> None:
        """Centre the user's prior on what the population model expects of them (on a new
        user's state at ranking, and after each update before it is stored)."""
        if policy.population is None:
            return
        model = self.population_model(txn, policy)
        if model is not None:
            model.center(state)

    def population_model(self, txn: Txn, policy: Policy) -> PopulationModel | None:
        """The policy's population model, fitted to every user's data under it; ``None`` when
        the policy has none or nobody has taught it anything yet.

        Cached, and refitted after ``population_refresh_every`` updates in this process (or
        one per user it was fitted to, if more) or ``population_refresh_s`` seconds, whichever
        comes first.
        """
        if policy.population is None:
            return None
        cached = self._population.setdefault(policy.name, _Population())
        now = time.monotonic()
        stale = (
            cached.computed_at is None
            or cached.updates >= refit_after(self.config.population_refresh_every, cached.users)
            or now - cached.computed_at >= self.config.population_refresh_s
        )
        if stale and self.config.population_refit_background:
            self._refit_in_background(policy, cached, now)
        elif stale:
            rows = txn.states_of_policy(policy.name, self.config.population_users)
            cached.model = _fit_population(policy, rows)
            cached.users = len(rows)
            cached.computed_at = now
            cached.updates = 0
        return cached.model

    def _refit_in_background(self, policy: Policy, cached: _Population, now: float) -> None:
        with self._population_lock:
            if cached.refitting:
                return
            last = cached.computed_at
            if last is not None and now - last < 10 * cached.fit_seconds:
                return
            cached.refitting = True
            cached.updates = 0
            thread = threading.Thread(
                target=self._refit, args=(policy, cached), name="oo-ml-population", daemon=True
            )
            self._refits.add(thread)
        thread.start()

    def _refit(self, policy: Policy, cached: _Population) -> None:
        started = time.monotonic()
        try:
            limit = self.config.population_users
            rows = self.store.read(lambda txn: txn.states_of_policy(policy.name, limit))
            cached.model = _fit_population(policy, rows)
            cached.users = len(rows)
            cached.fit_seconds = time.monotonic() - started
            log.info(
                "population model refitted",
                extra={"policy": policy.name, "users": len(rows), "seconds": cached.fit_seconds},
            )
        except Exception:
            log.exception("refitting the population model of %s failed", policy.name)
        finally:
            cached.computed_at = time.monotonic()
            cached.refitting = False
            with self._population_lock:
                self._refits.discard(threading.current_thread())

    def wait_for_refits(self) -> None:
        """Wait until no population refit runs in the background: call it before the store
        closes, so that no refit reads a closed store or outlives its server."""
        with self._population_lock:
            running = list(self._refits)
        for thread in running:
            thread.join()

    # -- default rewards ------------------------------------------------------------------

    def settle(self, limit: int = 500) -> int:
        """Give the default reward to every decision that waited too long for feedback.

        Returns how many were settled. Safe to run from several processes at once: each
        decision is settled inside the same locked job as real feedback, so it counts once.
        """
        cutoff = self.now_ms() - self.config.reward_wait_ms
        milli = round(self.config.default_reward * 1000)
        settled = 0
        while True:
            since = int(self.store.read(lambda txn: txn.get_setting(SETTLED_UNTIL_KEY)) or 0)
            waiting = self.store.read(partial(_unanswered, since=since, before=cutoff, limit=limit))
            for decision in waiting:
                verdict = _Verdict(None, None, milli, "default", "default", self.now_ms())
                result = self.store.write(partial(self._apply, decision=decision, verdict=verdict))
                settled += not result.duplicate
            done = len(waiting) < limit
            mark = cutoff if done else waiting[-1].created_ms
            self.store.write(partial(_advance, mark=mark))
            if done:
                return settled

    # -- users ----------------------------------------------------------------------------

    def user_stats(self, user_id: str, policy: str) -> UserStats:
        check_user_id(user_id)
        chosen = get_policy(policy)

        def job(txn: Txn) -> UserStats:
            user = txn.get_user(user_id)
            since = None if user is None else user.reset_ms
            pulls, explored, newest = txn.count_decisions(user_id, chosen.name, since)
            row = txn.load_state(user_id, chosen.name)
            state: RidgeState = row.state if row is not None else chosen.new_state()
            updated = None if row is None else row.updated_ms
            stamps = [t for t in (newest, updated) if t is not None]
            return UserStats(
                user_id=user_id,
                policy=chosen.name,
                pulls=pulls,
                explored=explored,
                reward_count=0 if row is None else row.reward_count,
                reward_sum=0.0 if row is None else row.reward_sum_milli / 1000.0,
                theta=state.theta.tolist(),
                labels=list(chosen.encoder.labels),
                last_updated_ms=max(stamps) if stamps else None,
                model_updates=state.n_updates,
            )

        return self.store.read(job)

    def history(self, user_id: str, limit: int = 100) -> list[DecisionRecord]:
        """The user's ranked decisions since their last reset, oldest first."""
        check_user_id(user_id)

        def job(txn: Txn) -> list[DecisionRecord]:
            user = txn.get_user(user_id)
            since = None if user is None else user.reset_ms
            return list(txn.recent_decisions(user_id, limit, since_ms=since, origin="rank"))

        return list(reversed(self.store.read(job)))

    def recent(
        self, user_id: str, limit: int = 50
    ) -> list[tuple[DecisionRecord, FeedbackRecord | None, list[ShadowRecord]]]:
        """The user's newest decisions (any origin) with their feedback and what each shadow
        policy would have done, newest first."""
        check_user_id(user_id)

        def job(txn: Txn) -> list[tuple[DecisionRecord, FeedbackRecord | None, list[ShadowRecord]]]:
            decisions = txn.recent_decisions(user_id, limit)
            shadows = txn.shadows_for([d.event_id for d in decisions])  # one query for all
            return [(d, txn.get_feedback(d.event_id), shadows[d.event_id]) for d in decisions]

        return self.store.read(job)

    def reset_user(self, user_id: str) -> None:
        """Forget the user's models under every policy; their log stays but stops teaching."""
        check_user_id(user_id)
        now = self.now_ms()
        self.store.write(lambda txn: txn.mark_reset(user_id, now))

    def forget_user(self, user_id: str) -> int:
        """Erase the user: models, decisions and feedback. Returns the rows removed."""
        check_user_id(user_id)
        return self.store.write(lambda txn: txn.delete_user(user_id))

    def decision_detail(
        self, event_id: str
    ) -> tuple[DecisionRecord, FeedbackRecord | None, list[ShadowRecord]]:
        """The decision with its feedback and what each shadow policy would have done."""
        check_event_id(event_id)

        def job(txn: Txn) -> tuple[DecisionRecord, FeedbackRecord | None, list[ShadowRecord]]:
            record = txn.get_decision(event_id)
            if record is None:
                raise NotFoundError(f"no decision with event id {event_id!r}")
            shadows = txn.shadows_for([event_id]).get(event_id, [])
            return record, txn.get_feedback(event_id), shadows

        return self.store.read(job)

    def decision(self, event_id: str) -> tuple[DecisionRecord, FeedbackRecord | None]:
        check_event_id(event_id)

        def job(txn: Txn) -> tuple[DecisionRecord, FeedbackRecord | None]:
            record = txn.get_decision(event_id)
            if record is None:
                raise NotFoundError(f"no decision with event id {event_id!r}")
            return record, txn.get_feedback(event_id)

        return self.store.read(job)


def _fit_population(policy: Policy, rows: Sequence[StateRow]) -> PopulationModel | None:
    assert policy.population is not None
    lam = policy.model.lam
    users = [user_data(row.state, lam) for row in rows]
    return PopulationModel.fit(users, lam, policy.population)


def _unanswered(txn: Txn, since: int, before: int, limit: int) -> Sequence[DecisionRecord]:
    return txn.unanswered_decisions(since, before, limit)


def _advance(txn: Txn, mark: int) -> None:
    current = int(txn.get_setting(SETTLED_UNTIL_KEY) or 0)
    if mark > current:
        txn.set_setting(SETTLED_UNTIL_KEY, str(mark))
