"""The simulation loop: rank → judge → feedback → reward → update, step after step.

Decisions and feedback go through the serving :class:`~oo_ml.engine.Engine` — in-process over a
memory store, or over HTTP against a running service — or, in this process with the rule judge
and for a policy without a population prior, through the simulator's own
:class:`~oo_ml.sim.direct.DirectDecisions`: the policy's decide and learn and the reward rule
that the engine calls, without its per-request records, making the very same events (ADR 0012).
Runs and their per-step events are stored in ``sim_runs``/``sim_events``.

Policies are compared on *common random numbers*: for a given seed, simulated user ``u`` sees
the same task stream, the same clock and the same judge randomness at step ``t`` under every
policy (until the policies' different choices change the pool), so differences between policies
are not noise in the world they met.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any, Protocol, TypeVar

import httpx
import numpy as np

from oo_ml.engine import Engine, EngineConfig, policy_seed_key
from oo_ml.errors import ConfigurationError
from oo_ml.policies import get_policy
from oo_ml.policies.pcg import first_after, pcg64_words
from oo_ml.rewards import RewardRule, get_reward_rule
from oo_ml.sim.direct import DirectDecisions, takes
from oo_ml.sim.judges import Judge, Judgement, JudgeRequest, RuleJudge
from oo_ml.sim.llm_judge import JudgeStats
from oo_ml.sim.persona import (
    Persona,
    definitions_of,
    load_personas,
    pools_oracle,
    pools_utilities,
    shipped_personas,
)
from oo_ml.sim.summary import SummaryBuilder
from oo_ml.sim.tasks import Pools
from oo_ml.store.base import RunRecord, SimEvent, Store
from oo_ml.store.memory import MemoryStore
from oo_ml.types import Action, Candidate, Context, Outcome

__all__ = [
    "DEFAULT_STEPS",
    "DEFAULT_USERS",
    "MAX_PERSONA_DEFINITIONS",
    "Cohort",
    "DecisionClient",
    "HttpClient",
    "InProcessClient",
    "Member",
    "SimConfig",
    "SimRunner",
    "new_run_id",
    "stream_seed",
    "warm_up",
]

T = TypeVar("T")

DEFAULT_USERS = 12
"""Simulated users per policy when a run does not say (command line, console, API)."""
DEFAULT_STEPS = 150
"""Tips per simulated user when a run does not say: the learning-quality runs' length."""

MAX_PERSONA_DEFINITIONS = 64
"""The most personas a run may define for itself (beside the shipped ones)."""

EVENT_BATCH = 2000
"""Events are written to the run store in batches of at least this many (one transaction
each), at the end of the step that reached it. A commit costs about as much as a few hundred
events' inserts on SQLite (its WAL is synced): 4.4 µs an event in batches of 500, 3.4 in
batches of 2000 (measured 2026-11-28); a 119-user run still reports its progress every 17
steps."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate. ``users`` is the number of simulated users per policy; personas are
    assigned to users round-robin. ``personas`` are names: shipped personas, those defined in
    ``persona_definitions`` (persona files' data, :func:`~oo_ml.sim.persona.persona_data`, so
    that a run's stored settings say everything it simulated) or, until a run is stored,
    ``.toml`` files (:meth:`with_files_defined` turns them into definitions)."""

    policies: tuple[str, ...]
    personas: tuple[str, ...]
    users: int
    steps: int
    judge: str = "rule"
    seed: int = 0
    reward_rule: str = "dwell-v1"
    pool_size: int = 10
    persona_definitions: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigurationError("a simulation needs at least one policy")
        if len(set(self.policies)) != len(self.policies):
            raise ConfigurationError("policies must be distinct")
        for name in self.policies:
            get_policy(name)
        if not self.personas:
            raise ConfigurationError("a simulation needs at least one persona")
        if not 1 <= self.users <= 100_000:
            raise ConfigurationError("users must be between 1 and 100000")
        if not 1 <= self.steps <= 100_000:
            raise ConfigurationError("steps must be between 1 and 100000")
        if not 2 <= self.pool_size <= 200:
            raise ConfigurationError("pool_size must be between 2 and 200")
        get_reward_rule(self.reward_rule)
        if len(self.persona_definitions) > MAX_PERSONA_DEFINITIONS:
            raise ConfigurationError(
                f"at most {MAX_PERSONA_DEFINITIONS} persona definitions, got"
                f" {len(self.persona_definitions)}"
            )

    def load_personas(self) -> list[Persona]:
        """The run's personas, in order (refused with the reason if any is not well made)."""
        return load_personas(self.personas, self.persona_definitions)

    def with_files_defined(self) -> SimConfig:
        """These settings with every persona named by name, files read into definitions (with
        any persona they drift to): what a run stores, whatever becomes of the files."""
        personas = self.load_personas()
        defined = dataclasses.replace(
            self,
            personas=tuple(p.name for p in personas),
            persona_definitions=tuple(definitions_of(personas)),
        )
        defined.load_personas()  # a file may not take a shipped persona's name, say
        return defined

    @property
    def total_steps(self) -> int:
        return len(self.policies) * self.users * self.steps

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["policies"] = list(self.policies)
        data["personas"] = list(self.personas)
        data["persona_definitions"] = [dict(d) for d in self.persona_definitions]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ConfigurationError(f"unknown simulation settings: {sorted(unknown)}")
        values = dict(data)
        values["policies"] = tuple(values.get("policies", ()))
        values["personas"] = tuple(values.get("personas", ()))
        values["persona_definitions"] = tuple(values.get("persona_definitions", ()))
        return cls(**values)


class DecisionClient(Protocol):
    """The two calls a simulated app makes. A client with a ``close()`` method is closed when
    the run that :attr:`SimRunner.client_factory` made it for ends."""

    def rank(
        self, user_id: str, context: Context, candidates: Sequence[Candidate], policy: str
    ) -> tuple[str, int, float]:
        """(event id, chosen index, its probability)."""

    def feedback(self, event_id: str, outcome: Outcome) -> int:
        """The reward the service inferred, in thousandths."""


RankRequest = tuple[str, Context, Sequence[Candidate], str]
"""(user id, context, candidates, policy): what :meth:`DecisionClient.rank` takes."""


def _rank_all(
    client: DecisionClient, requests: Sequence[RankRequest]
) -> list[tuple[str, int, float]]:
    """Every request ranked: at once by a client that can (``rank_many``), else in turn."""
    many = getattr(client, "rank_many", None)
    if many is not None:
        ranked: list[tuple[str, int, float]] = many(requests)
        return ranked
    return [client.rank(*request) for request in requests]


def _feedback_all(client: DecisionClient, answers: Sequence[tuple[str, Outcome]]) -> list[int]:
    """Every (event id, outcome) given as feedback, as :func:`_rank_all` ranks."""
    many = getattr(client, "feedback_many", None)
    if many is not None:
        rewards: list[int] = many(answers)
        return rewards
    return [client.feedback(*answer) for answer in answers]


class _TickClock:
    """A clock that moves on by one millisecond each time it is read.

    The engine stamps decisions and model updates with its clock, and the population prior is
    fitted to the most recently updated users in that order; on the wall clock, users updated
    within the same millisecond tie and the order (hence the fit) changed from run to run.
    """

    def __init__(self, start_s: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._ms = int(start_s * 1000)

    def __call__(self) -> float:
        self._ms += 1
        return self._ms / 1000.0


class _Seeds:
    """One policy's decision seeds: ``int(rng.integers(0, 2**63 - 1))`` one after another,
    drawn 1024 at a time (64-bit bounded draws keep no buffer between calls, so these are the
    numbers one call at a time would give). The stream is keyed by the run's seed and the
    policy's name, so a policy's decisions do not depend on which others run beside it."""

    def __init__(self, seed: int, policy: str) -> None:
        self._rng = np.random.default_rng([seed, 0x5EED, policy_seed_key(policy)])
        self._pending: list[int] = []

    def __call__(self) -> int:
        if not self._pending:
            self._pending = self._rng.integers(0, 2**63 - 1, size=1024).tolist()
            self._pending.reverse()
        return self._pending.pop()


def _seed_streams(seed: int) -> Callable[[str], int]:
    """A policy's next decision seed, from its :class:`_Seeds` stream in a run seeded
    ``seed``: the seeds :class:`InProcessClient` gives the engine."""
    streams: dict[str, _Seeds] = {}

    def next_seed(policy: str) -> int:
        stream = streams.get(policy)
        if stream is None:
            stream = streams[policy] = _Seeds(seed, policy)
        return stream()

    return next_seed


@dataclass
class InProcessClient:
    """The serving engine in this process, over a memory store, with seeded decisions: each
    policy's seeds come from its own stream (see :class:`_Seeds`)."""

    reward_rule: str
    seed: int
    decision_limit: int | None = 1000
    """Decisions the engine's memory store keeps (see :class:`MemoryStore`): a step's decision
    is read once, by its feedback, right after it is made; ``None`` keeps them all."""
    engine: Engine = field(init=False)
    _streams: dict[str, _Seeds] = field(init=False, default_factory=dict)
    _stream: _Seeds | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.engine = Engine(
            MemoryStore(self.decision_limit),
            # Population refits follow the updates, never the wall clock: a run's numbers
            # must not depend on how fast the machine plays it.
            EngineConfig(
                reward_rule=self.reward_rule,
                max_candidates=10_000,
                population_refresh_s=math.inf,
            ),
            clock=_TickClock(),
            seed_source=self._next_seed,
        )

    def _next_seed(self) -> int:
        assert self._stream is not None, "seeds are drawn inside rank()"
        return self._stream()

    def rank(
        self, user_id: str, context: Context, candidates: Sequence[Candidate], policy: str
    ) -> tuple[str, int, float]:
        stream = self._streams.get(policy)
        if stream is None:
            stream = self._streams[policy] = _Seeds(self.seed, policy)
        self._stream = stream
        record = self.engine.rank(user_id, context, candidates, policy=policy)
        assert record.probabilities is not None
        return record.event_id, record.chosen, float(record.probabilities[record.chosen])

    def feedback(self, event_id: str, outcome: Outcome) -> int:
        return self.engine.feedback(event_id, outcome).feedback.reward_milli


class HttpClient:
    """A running service's decision API (``/v1/rank``, ``/v1/feedback``).

    ``trust_env=False``: a proxy configured in the environment must never capture requests to
    the service (the old simulator's localhost calls went through a proxy).
    """

    def __init__(
        self,
        base_url: str,
        api_token: str | None = None,
        timeout_s: float = 30.0,
        concurrency: int = 8,
    ):
        if not 1 <= concurrency <= 64:
            raise ConfigurationError(f"concurrency must be between 1 and 64, got {concurrency}")
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_s,
            trust_env=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None

    def rank(
        self, user_id: str, context: Context, candidates: Sequence[Candidate], policy: str
    ) -> tuple[str, int, float]:
        body = {
            "user_id": user_id,
            "policy": policy,
            "context": {"hour_of_day": context.hour_of_day, "day_of_week": context.day_of_week},
            "candidates": [
                {
                    "id": c.id,
                    "content": "",
                    "source": c.source,
                    "features": {
                        "hour_of_day": context.hour_of_day,
                        "is_overdue": c.is_overdue,
                        "task_age_days": c.task_age_days,
                        "priority": c.priority,
                    },
                }
                for c in candidates
            ],
        }
        response = self._client.post("/v1/rank", json=body)
        response.raise_for_status()
        data = response.json()
        chosen = [c.id for c in candidates].index(data["tip_id"])
        return str(data["event_id"]), chosen, float(data["probability"])

    def feedback(self, event_id: str, outcome: Outcome) -> int:
        response = self._client.post(
            "/v1/feedback",
            json={
                "event_id": event_id,
                "action": outcome.action.value,
                "dwell_ms": outcome.dwell_ms,
            },
        )
        response.raise_for_status()
        return int(response.json()["reward_milli"])

    def rank_many(self, requests: Sequence[RankRequest]) -> list[tuple[str, int, float]]:
        """:meth:`rank` of each request, up to ``concurrency`` in flight at once (a step's users
        ask the service together, as an app's users do); results in the requests' order."""
        return self._map(lambda request: self.rank(*request), requests)

    def feedback_many(self, answers: Sequence[tuple[str, Outcome]]) -> list[int]:
        """:meth:`feedback` of each (event id, outcome), as :meth:`rank_many` sends them."""
        return self._map(lambda answer: self.feedback(*answer), answers)

    def _map(self, call: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        if self._concurrency == 1 or len(items) < 2:
            return [call(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._concurrency, "oo-ml-sim-http")
        return list(self._pool.map(call, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        self._client.close()


class _StepRandom:
    """The judge's randomness for each step of one simulated user: the same at step t under
    every policy, however many numbers earlier steps used (common random numbers). Cheaper
    than seeding a new generator per step: one PCG64 stream, jumped to 2³² draws per step."""

    def __init__(self, seed: int, user: int) -> None:
        self._bits = np.random.PCG64(np.random.SeedSequence([seed, user, 0x7A]))
        self._start = self._bits.state
        self._rng = np.random.Generator(self._bits)

    def at(self, step: int, drawn: int = 0) -> np.random.Generator:
        """Step ``step``'s generator, after its first ``drawn`` numbers."""
        self._bits.state = self._start
        self._bits.advance((step << 32) + drawn)
        return self._rng

    def words(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The stream's start, as :func:`~oo_ml.policies.pcg.first_after` takes it."""
        return pcg64_words(self._start)


def stream_seed(seed: int, index: int) -> int:
    """The task stream's seed of user number ``index`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass(frozen=True, slots=True)
class Member:
    """One simulated person under one policy: who they are to the service (``user_id``) and
    in the world (user number ``index``: the same tasks, clock and judge randomness under
    every policy)."""

    policy: str
    user_id: str
    index: int
    persona: Persona


@dataclass(frozen=True, slots=True)
class Asked:
    """A step ranked and shown, waiting for the judge (:meth:`Cohort.ask`)."""

    event_id: str
    index: int
    probability: float
    request: JudgeRequest


class Cohort:
    """Simulated people played together, step by step: each their own task pool, clock and
    judge randomness (:class:`~oo_ml.sim.tasks.Pools`), ranked and answered one after
    another in the members' order at every step, as a service's users live through the same
    days.

    With the rule judge (:meth:`play`), a step is rank, verdict and feedback for each member
    in turn; the judge's first number of every member's step is computed for all at once,
    and the oracle's expected rewards of every pool as well. A judge without a persona model
    answers in two halves, :meth:`ask` and :meth:`answer`, so that a runner can ask it about
    every member at once.
    """

    def __init__(
        self, members: Sequence[Member], seed: int, pool_size: int = 10, run_id: str = "-"
    ) -> None:
        self.members = tuple(members)
        self.run_id = run_id
        self.pools = Pools(
            [stream_seed(seed, m.index) for m in self.members],
            [f"u{m.index}" for m in self.members],
            pool_size,
            awake=[m.persona.awake for m in self.members],
        )
        self._wakings: dict[int, list[tuple[int, tuple[int, int]]]] = {}
        """By step: the members whose waking hours change then (a drift), and to what."""
        for m, member in enumerate(self.members):
            persona, at = member.persona, member.persona.drift_at
            if at is not None and persona.at_step(at).awake != persona.awake:
                self._wakings.setdefault(at, []).append((m, persona.at_step(at).awake))
        self._randomness = [_StepRandom(seed, m.index) for m in self.members]
        self._heads = [((run_id, m.policy, f"u{m.index}"), m.persona.name) for m in self.members]
        """What each member's events begin with (the run, the policy and the user's label),
        and its persona's name."""
        words = [r.words() for r in self._randomness]
        self._words = tuple(
            np.array([w[part][half] for w in words], dtype=np.int64)
            for part in (0, 1)
            for half in (0, 1)
        )

    def _wake_for(self, step: int) -> None:
        """Members whose waking hours change at ``step`` get them now, before the clocks move
        on to it at the end of the step before."""
        for m, awake in self._wakings.get(step, ()):
            self.pools.set_awake(m, awake)

    def _firsts(self, step: int) -> list[float]:
        """Every member's first number at ``step``, as :meth:`_StepRandom.at` would draw it."""
        out = np.empty(len(self.members))
        if self.members:
            state_high, state_low, inc_high, inc_low = self._words
            first_after(state_high, state_low, inc_high, inc_low, step << 32, out)
        return out.tolist()

    def play(
        self,
        client: DecisionClient,
        rule: RewardRule,
        step: int,
        direct: DirectDecisions | None = None,
    ) -> list[SimEvent]:
        """Step ``step`` of every member, judged by each persona's own response model (the
        rule judge), with the oracle's numbers; then the world moves on. Members that
        ``direct`` decides for are decided there, the others by ``client``."""
        pools = self.pools
        firsts = self._firsts(step)
        rows = direct.see(pools) if direct is not None else [None] * len(self.members)
        moments = [
            (member.persona.at_step(step), context)
            for member, context in zip(self.members, pools.contexts(), strict=True)
        ]
        # Every task's utility for the step, at once: the judge's and the oracle's.
        seen = pools_utilities(pools, moments, rule)
        self._wake_for(step + 1)
        ranked = direct.rank_all() if direct is not None else [None] * len(self.members)
        played = []
        chosen = []
        for m, (member, x, (persona, context), first) in enumerate(
            zip(self.members, rows, moments, firsts, strict=True)
        ):
            decided = ranked[m]
            if decided is not None:
                index, probability = decided
            else:
                event_id, index, probability = client.rank(
                    member.user_id, context, pools.candidates(m), member.policy
                )
            # The rule judge's verdict (RuleJudge.answer) on the task's utility.
            verdict = RuleJudge.verdict(
                persona,
                persona.done_of(seen.of(m, index)),
                first,
                partial(self._randomness[m].at, step, 1),
            )
            if x is not None:
                assert direct is not None
                milli = direct.feedback(m, x[index], verdict.action, verdict.dwell_ms)
            else:
                milli = client.feedback(
                    event_id,
                    _UNTIMED[verdict.action]
                    if verdict.dwell_ms is None
                    else Outcome(verdict.action, verdict.dwell_ms),
                )
            task = pools.task_id(m, index)
            played.append(self._fields(m, step, context, task, probability, verdict, milli))
            chosen.append(index)
        if direct is not None:
            direct.learned()
        return self._close(played, chosen, seen.oracle(chosen))

    def play_at_once(self, client: DecisionClient, rule: RewardRule, step: int) -> list[SimEvent]:
        """:meth:`play` for a client that takes a whole step's requests at once (a running
        service, over HTTP): every member's tip is ranked, then judged by the rule judge,
        then answered. Which users the service hears from first then differs from
        :meth:`play`'s order, as it does between an app's users."""
        asked = self.ask(client, step)
        firsts = self._firsts(step)
        verdicts = [
            self._rule_verdict(m, question.request, first)
            for m, (question, first) in enumerate(zip(asked, firsts, strict=True))
        ]
        return self.answer(client, asked, verdicts, rule)

    def _rule_verdict(self, m: int, request: JudgeRequest, first: float) -> Judgement:
        """The rule judge's verdict on member ``m``'s step from the step's ``first`` number
        (the generator just after it drawn only for a done task's dwell)."""
        return RuleJudge.answer(request, first, partial(self._randomness[m].at, request.step, 1))

    def ask(self, client: DecisionClient, step: int) -> list[Asked]:
        """The first half of every member's step: the tip is ranked and shown; what the judge
        is to answer."""
        pools = self.pools
        self._wake_for(step + 1)
        ranked = _rank_all(
            client,
            [
                (member.user_id, pools.context(m), pools.candidates(m), member.policy)
                for m, member in enumerate(self.members)
            ],
        )
        return [
            Asked(
                event_id,
                index,
                probability,
                JudgeRequest(
                    member.persona.at_step(step), pools.context(m), pools.task_at(m, index), step
                ),
            )
            for m, (member, (event_id, index, probability)) in enumerate(
                zip(self.members, ranked, strict=True)
            )
        ]

    def judge(self, judge: Judge, m: int, asked: Asked) -> Judgement:
        """Member ``m``'s verdict from ``judge``, with its randomness for the step."""
        return judge.judge(asked.request, self._randomness[m].at(asked.request.step))

    def answer(
        self,
        client: DecisionClient,
        asked: Sequence[Asked],
        verdicts: Iterable[Judgement],
        rule: RewardRule | None = None,
    ) -> list[SimEvent]:
        """The second half: every verdict goes back as feedback; the world moves on. The
        events carry the oracle's numbers under ``rule`` if given (the judge is the persona's
        own model), none otherwise."""
        judged = list(verdicts)
        rewards = _feedback_all(
            client,
            [
                (question.event_id, Outcome(verdict.action, verdict.dwell_ms))
                for question, verdict in zip(asked, judged, strict=True)
            ],
        )
        played = [
            self._fields(
                m, question.request.step, question.request.context,
                question.request.task.id, question.probability, verdict, milli,
            )
            for m, (question, verdict, milli) in enumerate(
                zip(asked, judged, rewards, strict=True)
            )
        ]  # fmt: skip
        shown = [question.index for question in asked]
        moments = [(question.request.persona, question.request.context) for question in asked]
        oracle: Sequence[tuple[Any, ...]] = (
            [_NO_ORACLE] * len(played)
            if rule is None
            else pools_oracle(self.pools, moments, shown, rule)
        )
        return self._close(played, shown, oracle)

    def _close(
        self,
        played: Sequence[tuple[Any, ...]],
        shown: Sequence[int],
        oracle: Sequence[tuple[Any, ...]],
    ) -> list[SimEvent]:
        """The step's events, with the oracle's numbers (from every pool as it was shown);
        then tasks done leave their pools and every clock moves on to the next tip
        request."""
        pools = self.pools
        done = [m for m, fields in enumerate(played) if fields[9] == _DONE]
        pools.complete_each(done, [shown[m] for m in done])
        pools.advance()
        return [_event(fields + numbers) for fields, numbers in zip(played, oracle, strict=True)]

    def _fields(  # noqa: PLR0917 (an event's fields)
        self,
        m: int,
        step: int,
        context: Context,
        task_id: str,
        probability: float,
        verdict: Judgement,
        milli: int,
    ) -> tuple[Any, ...]:
        """Member ``m``'s event at ``step`` but for the oracle's numbers."""
        head, persona = self._heads[m]
        return (
            *head, step, persona, context.hour_of_day, context.day_of_week, task_id,
            probability, verdict.action.value, verdict.dwell_ms, milli,
        )  # fmt: skip


_DONE = Action.DONE.value
_UNTIMED = {action: Outcome(action) for action in Action}
"""An outcome without a dwell time, by action (outcomes are values)."""
_NO_ORACLE = (None, None, None)
_event = SimEvent._make


def _judge_counts(judge: Judge) -> dict[str, int] | None:
    """The judge's counters (:class:`~oo_ml.sim.llm_judge.JudgeStats`: calls, cache hits,
    retries, invalid replies, failures answered as a dismissal); ``None`` for a judge that
    keeps none (the rule judge cannot fail)."""
    stats = getattr(judge, "stats", None)
    return dataclasses.asdict(stats) if isinstance(stats, JudgeStats) else None


@cache
def warm_up() -> None:
    """Compile (or load from numba's cache) the simulated world's kernels: the task pools'
    arrivals, clocks and candidate columns, the column encoders, the step's utilities, the
    judge's jump-ahead and the simulator's own decisions. A fresh install otherwise compiles them
    in its first simulation (about 3.5 s on two cores); the console starts this in the
    background at the service's start. Once per process."""
    persona = next(iter(shipped_personas().values()))
    members = [
        Member(name, f"warm-up/{name}", 0, persona)
        for name in ("linucb-v1", "egreedy-v1", "ucb-ix1", "ucb-ix2")  # every encoder
    ]
    cohort = Cohort(members, seed=0, pool_size=1)
    rule = get_reward_rule("dwell-v1")
    direct = DirectDecisions([m.policy for m in members], rule, _seed_streams(0))
    cohort.play(InProcessClient(rule.name, 0), rule, 0, direct)  # a whole step
    if cohort.pools.count[0]:  # a done task leaves (whatever the step's verdicts were)
        cohort.pools.complete(0, 0)


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


class CancelledError(Exception):
    """The run was cancelled from outside."""


@dataclass
class SimRunner:
    """Runs a :class:`SimConfig`, storing the run and its events in ``store``.

    ``progress`` is called with (steps done, total steps) after every batch of events;
    ``cancel`` is checked at the same points.

    A judge without a persona model (``llm``, ``command``) may take seconds to answer. Each
    step then ranks every user's tip first, asks the judge about all of them at once, up to
    ``judge_concurrency`` at a time, and gives the feedback in the users' order; its events
    are written (and progress reported) before the next step, and a cancel is seen between
    any two judgements. How many run at once changes how long a run takes, not its numbers.
    The rule judge answers in microseconds: in this process its steps are played one user
    after another, rank, judge, feedback (:meth:`Cohort.play`); against a running service
    (a client with ``rank_many``), a step's users are ranked together, judged, then answered
    together (:meth:`Cohort.play_at_once`).
    """

    store: Store
    judge: Judge = field(default_factory=RuleJudge)
    client_factory: Callable[[SimConfig], DecisionClient] | None = None
    progress: Callable[[int, int], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    judge_concurrency: int = 4
    direct: bool = True
    """In this process (no ``client_factory``) with the rule judge, decide for policies
    without a population prior by :class:`~oo_ml.sim.direct.DirectDecisions`: the same
    events as through the serving engine, without its per-request records. ``False``: every
    decision through the engine."""
    live_every_s: float = 2.0
    """How often, at most, a running run's summary so far is stored with its progress (the
    console draws its curve while it runs); ``math.inf``: only when it is done."""

    def __post_init__(self) -> None:
        if not self.live_every_s >= 0:
            raise ConfigurationError(f"live_every_s must be ≥ 0, got {self.live_every_s}")
        if not 1 <= self.judge_concurrency <= 64:
            raise ConfigurationError(
                f"judge_concurrency must be between 1 and 64, got {self.judge_concurrency}"
            )

    def create(self, config: SimConfig, run_id: str | None = None) -> RunRecord:
        """Record a queued run (its personas' files read into definitions)."""
        return self._record(config.with_files_defined(), run_id, "queued")

    def _record(self, config: SimConfig, run_id: str | None, status: str) -> RunRecord:
        now = int(time.time() * 1000)
        run = RunRecord(
            run_id=run_id or new_run_id(),
            created_ms=now,
            updated_ms=now,
            status=status,
            config={**config.to_dict(), "judge": self.judge.name},
            total_steps=config.total_steps,
        )
        self.store.write(lambda txn: txn.insert_run(run))
        return run

    def run(self, config: SimConfig, run_id: str | None = None) -> RunRecord:
        """Create and execute a run; returns it finished (done, failed or cancelled). Persona
        files are read once, into the settings the run stores (refused before anything is
        stored if one is not well made)."""
        config = config.with_files_defined()
        # Recorded as running from the start: nobody could have seen it queued in between.
        return self._execute(self._record(config, run_id, "running").run_id, config)

    def execute(self, run_id: str, config: SimConfig) -> RunRecord:
        """Execute a queued run to the end, recording its status and summary."""
        self._update(run_id, status="running")
        return self._execute(run_id, config)

    def _execute(self, run_id: str, config: SimConfig) -> RunRecord:
        try:
            personas = config.load_personas()
            client = (
                self.client_factory(config)
                if self.client_factory is not None
                else InProcessClient(config.reward_rule, config.seed)
            )
            summary = SummaryBuilder(config.policies, config.steps)
            counted = _judge_counts(self.judge)
            try:
                done, tail = self._loop(
                    run_id,
                    config,
                    personas,
                    client,
                    get_reward_rule(config.reward_rule),
                    summary=summary,
                )
            finally:
                close = getattr(client, "close", None)
                if close is not None:  # the factory's client is the run's (HTTP connections)
                    close()
            result = summary.result()
            if counted is not None:
                # This run's share of the judge's counters (a judge may serve several runs).
                now = _judge_counts(self.judge) or {}
                result["judge"] = {key: now[key] - counted[key] for key in counted}
            finished = self._finish(run_id, tail, done, result)
        except CancelledError:
            self._update(run_id, status="cancelled")
        except Exception as exc:
            self._update(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        else:
            return finished
        run = self.store.read(lambda txn: txn.get_run(run_id))
        assert run is not None
        return run

    def _update(self, run_id: str, **changes: Any) -> None:
        now = int(time.time() * 1000)
        self.store.write(lambda txn: txn.update_run(run_id, now, **changes))

    def _loop(
        self,
        run_id: str,
        config: SimConfig,
        personas: list[Persona],
        client: DecisionClient,
        rule: RewardRule,
        *,
        summary: SummaryBuilder,
    ) -> tuple[int, list[SimEvent]]:
        """Play every step, adding each event to ``summary`` (none is kept: a run's memory
        does not grow with its length); returns how many were played and the last ones, not
        yet written."""
        done = 0
        # Every (policy, user) has its own world; user u's is the same under every policy.
        cohort = Cohort(
            [
                Member(policy, f"{run_id}/{policy}/u{u}", u, personas[u % len(personas)])
                for policy in config.policies
                for u in range(config.users)
            ],
            config.seed,
            config.pool_size,
            run_id,
        )
        judge = self.judge
        at_once = hasattr(client, "rank_many")  # a service over HTTP: a step's users together
        direct = (
            DirectDecisions([m.policy for m in cohort.members], rule, _seed_streams(config.seed))
            if self.direct
            and self.client_factory is None
            and isinstance(judge, RuleJudge)
            and any(takes(get_policy(name)) for name in config.policies)
            else None
        )
        shown = time.monotonic()
        batch: list[SimEvent] = []

        def flush() -> None:
            nonlocal shown, batch
            so_far = None
            if time.monotonic() - shown >= self.live_every_s:
                so_far, shown = summary.result(), time.monotonic()
            # Written before the next step is played, not while: a writer thread binding 500
            # rows holds the GIL for milliseconds at a time, and a 119-user run then took
            # 237 µs a step instead of 164 (ucb-ix1).
            self._write(run_id, batch, done, so_far)
            batch = []
            if self.progress is not None:
                self.progress(done, config.total_steps)
            if self.cancel.is_set():
                raise CancelledError

        # All users live through the same days: step by step, as a service's users do, so a
        # population prior learns from everyone's past, never from anyone's future.
        pool = (
            None
            if isinstance(judge, RuleJudge)
            else ThreadPoolExecutor(self.judge_concurrency, "oo-ml-judge")
        )
        try:
            for step in range(config.steps):
                if pool is None and at_once:
                    events = cohort.play_at_once(client, rule, step)
                elif pool is None:
                    events = cohort.play(client, rule, step, direct)
                else:
                    events = self._step_at_once(pool, client, cohort, step)
                summary.add(events)
                done += len(events)
                batch += events
                if len(batch) >= EVENT_BATCH or (pool is not None and step < config.steps - 1):
                    flush()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        # As after every batch: report progress, and stop if asked to (keeping the events).
        if self.progress is not None:
            self.progress(done, config.total_steps)
        if self.cancel.is_set():
            self._write(run_id, batch, done)
            raise CancelledError
        return done, batch

    def _step_at_once(
        self, pool: ThreadPoolExecutor, client: DecisionClient, cohort: Cohort, step: int
    ) -> list[SimEvent]:
        """One step of every member with the judge asked about all of them at once. A cancel
        stops it between two judgements: the step's events are dropped, the earlier steps'
        are kept (its decisions stay unanswered, as a person's tip may)."""
        judge, cancel = self.judge, self.cancel
        asked = cohort.ask(client, step)

        def verdict(m: int, question: Asked) -> Judgement:
            if cancel.is_set():
                raise CancelledError
            return cohort.judge(judge, m, question)

        return cohort.answer(client, asked, pool.map(verdict, range(len(asked)), asked))

    def _write(
        self,
        run_id: str,
        batch: list[SimEvent],
        done: int,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Store ``batch`` and the run's progress (and its summary so far, if given)."""
        now = int(time.time() * 1000)

        def job(txn: Any) -> None:
            txn.insert_sim_events(batch)
            txn.update_run(run_id, now, done_steps=done, summary=summary)

        self.store.write(job)

    def _finish(
        self, run_id: str, tail: list[SimEvent], done: int, summary: dict[str, Any]
    ) -> RunRecord:
        """Write the last events and the summary, mark the run done: one job."""
        now = int(time.time() * 1000)

        def job(txn: Any) -> RunRecord:
            txn.insert_sim_events(tail)
            txn.update_run(run_id, now, status="done", done_steps=done, summary=summary)
            run: RunRecord | None = txn.get_run(run_id)
            assert run is not None
            return run

        return self.store.write(job)
