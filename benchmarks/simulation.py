"""Simulation experiments: learning quality, cold start, drift and simulator speed.

Each experiment prints a table and rewrites its own section of docs/benchmarks.md (with the
command that produced it); ``quality`` also writes docs/img/sim-quality.svg.

    python benchmarks/simulation.py quality      # shipped personas, 150 steps per user
    python benchmarks/simulation.py seeds        # the last quarter under several seeds
    python benchmarks/simulation.py holdout      # the same on personas nobody tuned for
    python benchmarks/simulation.py users        # the same with 6 to 48 users, not 119
    python benchmarks/simulation.py cold-start   # population prior vs none, new users' first 10
    python benchmarks/simulation.py drift        # discounted vs undiscounted after a flip
    python benchmarks/simulation.py speed        # simulator steps/s vs the core's rounds/s
    python benchmarks/simulation.py all

All runs are in-process with the rule judge and seeded: the same command prints the same
numbers (``speed`` aside, which measures time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._docs import DOCS, command_line, markdown_table, write_section
from oo_ml import Bandit, Candidate, Context, Outcome, get_policy, get_reward_rule
from oo_ml.engine import EngineConfig
from oo_ml.policies.base import Policy
from oo_ml.policies.population import PopulationModel, refit_after, user_data
from oo_ml.runtime import freeze_startup_heap
from oo_ml.sim.direct import takes
from oo_ml.sim.judges import JudgeRequest, RuleJudge
from oo_ml.sim.persona import load_personas, shipped_personas
from oo_ml.sim.report import curve_svg
from oo_ml.sim.runner import (
    DEFAULT_USERS,
    Cohort,
    DecisionClient,
    InProcessClient,
    Member,
    SimConfig,
    SimRunner,
    stream_seed,
)
from oo_ml.sim.tasks import Pools
from oo_ml.store.base import SimEvent
from oo_ml.store.memory import MemoryStore
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore

console = Console()

QUALITY_POLICIES = (
    "egreedy-v1", "linucb-v1", "ucb-ix1", "ucb-ix2", "ucb-pop1", "ucb-pop2", "ucb-pop3",
    "ucb-pop4", "ucb-pop5", "ucb-pop6",
)  # fmt: skip
"""The learning-quality table's policies: the existing service's two, then ours."""


def _normalized(events: Sequence[SimEvent]) -> float:
    chosen = sum(e.chosen_expected or 0.0 for e in events)
    rand = sum(e.random_reward or 0.0 for e in events)
    best = sum(e.oracle_reward or 0.0 for e in events)
    return (chosen - rand) / (best - rand) if best > rand else float("nan")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def quality(
    policies: Sequence[str], users: int, steps: int, seed: int, write_chart: bool = True
) -> str:
    """The learning-quality table; with ``write_chart`` also docs/img/sim-quality.svg."""
    personas = tuple(shipped_personas())
    config = SimConfig(tuple(policies), personas, users, steps, seed=seed)
    started = time.perf_counter()
    run = SimRunner(MemoryStore()).run(config)
    elapsed = time.perf_counter() - started
    assert run.status == "done", run.error
    summary = run.summary or {}
    rows = []
    for name, row in summary["policies"].items():
        low, high = row["ci95"]
        rows.append(
            (
                name,
                f"{row['mean_reward']:+.3f} [{low:+.3f}, {high:+.3f}]",
                _fmt(row["normalized"]),
                _fmt(row["normalized_last_quarter"]),
                _fmt(row["regret_per_step"]),
                _fmt(row["lift_pct"], "+.1f") + "%",
            )
        )
    header = ("policy", "mean reward [95% CI]", "normalized", "last quarter", "regret/step", "lift")
    persona_header = ("persona", *summary["policies"])
    persona_rows = [
        (persona, *(_fmt(cells[p]["normalized"], ".2f") for p in summary["policies"]))
        for persona, cells in summary["personas"].items()
    ]
    _show("Learning quality", header, rows)
    _show("Normalized score by persona", persona_header, persona_rows)
    if write_chart:
        img = DOCS.parent / "img" / "sim-quality.svg"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_text(curve_svg(run))
    return (
        f"### Learning quality\n\n`{command_line()}` — {users} users per policy "
        f"({len(personas)} shipped personas, round-robin), {steps} steps each, rule judge, "
        f"seed {seed}, common random numbers; {elapsed:.0f} s.\n\n"
        "Normalized score: 0 = choosing at random, 1 = always the persona's best tip "
        "(expected reward under its own model); last quarter = the last 25% of the steps.\n\n"
        + markdown_table(header, rows)
        + "\n"
        + markdown_table(persona_header, persona_rows)
        + "\n![reward curves](img/sim-quality.svg)\n"
    )


def _last_quarters(
    policies: Sequence[str], personas: Sequence[str], users: int, steps: int, seeds: Sequence[int]
) -> dict[str, list[float]]:
    """Each policy's last-quarter normalized score in one run per seed, in ``seeds``' order."""
    scores: dict[str, list[float]] = {name: [] for name in policies}
    for seed in seeds:
        run = SimRunner(MemoryStore()).run(
            SimConfig(tuple(policies), tuple(personas), users, steps, seed=seed)
        )
        assert run.status == "done", run.error
        for name, row in (run.summary or {})["policies"].items():
            scores[name].append(row["normalized_last_quarter"])
    return scores


def _score_cells(values: Sequence[float]) -> tuple[str, ...]:
    """One cell per score, then their mean and min."""
    return (
        *(f"{value:.3f}" for value in values),
        f"{statistics.fmean(values):.3f}",
        f"{min(values):.3f}",
    )


def seeds(policies: Sequence[str], users: int, steps: int, seeds: Sequence[int]) -> str:
    """The last-quarter normalized score of each policy under each seed, with mean and min."""
    started = time.perf_counter()
    scores = _last_quarters(policies, tuple(shipped_personas()), users, steps, seeds)
    elapsed = time.perf_counter() - started
    header = ("policy", *(f"seed {seed}" for seed in seeds), "mean", "min")
    rows = [(name, *_score_cells(values)) for name, values in scores.items()]
    _show("Last-quarter normalized score by seed", header, rows)
    return (
        f"### Learning quality across seeds\n\n`{command_line()}` — as the learning-quality "
        f"run ({users} users per policy, {steps} steps, shipped personas), once per seed; "
        f"normalized score over the last quarter of the steps; {elapsed:.0f} s.\n\n"
        + markdown_table(header, rows)
    )


def users_sweep(
    policies: Sequence[str],
    user_counts: Sequence[int],
    steps: int,
    seeds: Sequence[int],
    persona_set: str = "shipped",
) -> str:
    """The last-quarter normalized score of each policy with fewer users than the learning-
    quality run: a population prior is fitted from the users there are, and an installation
    starts with few. ``persona_set``: ``shipped``, ``held-out`` or ``mixed``
    (:func:`persona_sets`)."""
    personas = persona_sets()[persona_set]
    started = time.perf_counter()
    rows = []
    for users in user_counts:
        scores = _last_quarters(policies, personas, users, steps, seeds)
        rows.extend((str(users), name, *_score_cells(values)) for name, values in scores.items())
    elapsed = time.perf_counter() - started
    header = ("users", "policy", *(f"seed {seed}" for seed in seeds), "mean", "min")
    _show("Last-quarter normalized score by number of users", header, rows)
    described = PERSONA_SETS[persona_set]
    title = "" if persona_set == "shipped" else f", {described}"
    return (
        f"### Learning quality with fewer users{title}\n\n`{command_line()}` — as the "
        f"learning-quality run ({described}, round-robin, {steps} steps) with fewer users per "
        f"policy, once per seed; normalized score over the last quarter of the steps; "
        f"{elapsed:.0f} s.\n\n" + markdown_table(header, rows)
    )


PERSONA_SETS = {
    "shipped": "shipped personas",
    "held-out": "the held-out personas",
    "mixed": "the shipped and held-out personas",
}
"""The persona sets :func:`persona_sets` gives, as the tables describe them."""


def persona_sets() -> dict[str, tuple[str, ...]]:
    """The persona sets the experiments run (:data:`PERSONA_SETS`): the shipped seven, the
    held-out ones (:data:`HOLDOUT`) and both."""
    shipped = tuple(shipped_personas())
    return {"shipped": shipped, "held-out": HOLDOUT, "mixed": (*shipped, *HOLDOUT)}


HOLDOUT = tuple(sorted(str(path) for path in (Path(__file__).parent / "personas").glob("*.toml")))
"""Personas that no policy was tuned on (``benchmarks/personas/``): a check that what the
shipped personas taught us holds for people we did not have in mind."""


def holdout(policies: Sequence[str], users: int, steps: int, seeds: Sequence[int]) -> str:
    """The last-quarter normalized score of each policy on the held-out personas alone and
    mixed with the shipped ones (more habits than a population prior has clusters)."""
    sets = persona_sets()
    labelled = {"held-out": sets["held-out"], "shipped + held-out": sets["mixed"]}
    started = time.perf_counter()
    rows = []
    for label, personas in labelled.items():
        scores = _last_quarters(policies, personas, users, steps, seeds)
        for name, values in scores.items():
            rows.append((label, str(len(personas)), name, *_score_cells(values)))
    elapsed = time.perf_counter() - started
    header = ("personas", "count", "policy", *(f"seed {seed}" for seed in seeds), "mean", "min")
    _show("Held-out personas: last-quarter normalized score", header, rows)
    names = ", ".join(f"`{Path(path).stem}`" for path in HOLDOUT)
    return (
        f"### Held-out personas\n\n`{command_line()}` — personas no policy was tuned on "
        f"(`benchmarks/personas/`: {names}), alone and mixed with the seven shipped ones; "
        f"{users} users per policy, {steps} steps, normalized score over the last quarter; "
        f"{elapsed:.0f} s.\n\n" + markdown_table(header, rows)
    )


def cold_start(
    policies: Sequence[str], baseline: str, veterans: int, newcomers: int, seed: int
) -> str:
    """New users' first 10 steps under each of ``policies`` after ``veterans`` users taught it
    for 60 steps, against ``baseline`` (its new users get no population prior)."""
    personas = [p for p in load_personas(list(shipped_personas())) if p.drift_to is None]
    rule = get_reward_rule("dwell-v1")
    client = InProcessClient("dwell-v1", seed)

    def play(policy: str, world: int, users: int, steps: int, user_id: str) -> list[SimEvent]:
        """``users`` people of world seed ``world`` (personas in turn), ``steps`` tips each,
        step by step; ``user_id`` is formatted with the user's number ``u``."""
        cohort = Cohort(
            [
                Member(policy, user_id.format(u=u), u, personas[u % len(personas)])
                for u in range(users)
            ],
            world,
        )
        return [event for step in range(steps) for event in cohort.play(client, rule, step)]

    for policy in policies:  # each its own veterans, in the same worlds
        play(policy, seed, veterans, 60, "vet{u}")
    results = {
        name: play(name, seed + 1, newcomers, 10, f"new{{u}}/{name}")
        for name in (*policies, baseline)
    }
    header = ("policy", "prior", "mean reward, first 10", "expected reward", "normalized")
    rows = []
    for name, events in results.items():
        rows.append(
            (
                name,
                "population" if get_policy(name).population else "none",
                f"{np.mean([e.reward_milli for e in events]) / 1000:+.3f}",
                f"{np.mean([e.chosen_expected or 0.0 for e in events]):+.3f}",
                f"{_normalized(events):.3f}",
            )
        )
    _show("Cold start", header, rows)
    taught = ", ".join(f"`{name}`" for name in policies)
    return (
        f"### Cold start\n\n`{command_line()}` — {veterans} users teach each of {taught} for "
        f"60 steps; then {newcomers} new users (the same worlds in every row) get their first "
        f"10 tips from each of them (prior from the population its veterans taught) and from "
        f"`{baseline}` (no prior).\n\n" + markdown_table(header, rows)
    )


def drift(policy: str, discounted: str, users: int, seed: int) -> str:
    """Recovery after the ``shift-change`` persona flips to an evening person at step 75."""
    store = MemoryStore()
    config = SimConfig((policy, discounted), ("shift-change",), users, 150, seed=seed)
    run = SimRunner(store).run(config)
    events = store.read(lambda txn: txn.sim_events(run.run_id))
    windows = [(0, 75), (75, 100), (100, 125), (125, 150)]
    header = ("policy", "discount", *(f"steps {a}–{b - 1}" for a, b in windows))
    rows = []
    for name in (policy, discounted):
        mine = [e for e in events if e.policy == name]
        cells = [f"{_normalized([e for e in mine if a <= e.step < b]):.3f}" for a, b in windows]
        rows.append((name, str(get_policy(name).model.discount), *cells))
    _show("Drift (normalized score by window)", header, rows)
    return (
        f"### Drift\n\n`{command_line()}` — {users} users of the `shift-change` persona, whose "
        "preferences flip to an evening person's at step 75; normalized score per window.\n\n"
        + markdown_table(header, rows)
    )


SPEED_STEPS = 150
SPEED_RUNS = {
    "small": (8, ("morning-focused", "quick-wins")),
    "default": (DEFAULT_USERS, None),  # `oo-ml sim run`'s users when none are given
    "standard": (119, None),  # the learning-quality run's users and personas (all shipped)
}
"""The runs ``speed`` measures: (users, personas; ``None`` = every shipped persona)."""


Round = tuple[Context, list[Candidate], list[float], list[Outcome]]
"""A core round: the context, the candidates, the reward each candidate would earn, and the
judge's answer it was scored from (what the engine's feedback takes)."""


def _core_rounds(
    policy: Policy,
    rounds: Sequence[Round],
    users: int,
    seed: int,
    prior: bool,
) -> float:
    """Rounds/s of the policy's own algorithm in memory: a :class:`Bandit` per user, taking
    the rounds in turn, rank then learn the chosen candidate's reward. With ``prior`` (a
    population policy), also its population prior as the engine runs it: refitted to every
    user's statistics after as many updates as the engine waits (``population_refresh_every``
    or one per user), and each user re-centred on it after every update; no store, no
    records, no simulator."""
    bandits = [Bandit(policy, seed=seed + u) for u in range(users)]
    population = policy.population if prior else None
    refresh = refit_after(EngineConfig().population_refresh_every, users)
    lam = policy.model.lam
    model, since = None, 0
    started = time.perf_counter()
    for i, (context, candidates, rewards, _) in enumerate(rounds):
        bandit = bandits[i % users]
        decision = bandit.rank(context, candidates)
        bandit.learn(decision, rewards[decision.chosen])
        if population is not None:
            since += 1
            if since >= refresh:
                data = [user_data(b.state, lam) for b in bandits]
                model, since = PopulationModel.fit(data, lam, population), 0
            if model is not None:
                model.center(bandit.state)
    return len(rounds) / (time.perf_counter() - started)


def _engine_rounds(config: SimConfig, rounds: Sequence[Round]) -> float:
    """Rounds/s of the serving engine in this process on the core's rounds: rank, then the
    feedback the judge gave the chosen candidate, through :class:`InProcessClient` (the
    simulator's client: memory store, decision records, reward rule, population refits after
    updates) — everything a simulated step does but the simulated world (task pool, judge,
    oracle, events) — for ``config``'s one policy, users and reward rule."""
    (name,) = config.policies
    users = config.users
    client = InProcessClient(config.reward_rule, config.seed)
    started = time.perf_counter()
    for i, (context, candidates, _, outcomes) in enumerate(rounds):
        event_id, chosen, _ = client.rank(f"u{i % users}", context, candidates, name)
        client.feedback(event_id, outcomes[chosen])
    return len(rounds) / (time.perf_counter() - started)


def _sim_steps(
    config: SimConfig,
    store: SqlStore,
    client_factory: Callable[[SimConfig], DecisionClient] | None = None,
    *,
    direct: bool = True,
) -> float:
    """Steps/s of a run, its events stored in ``store`` (decisions by ``client_factory``'s
    client; by default, as ``oo-ml sim run`` decides them in this process: the simulator's own
    decisions for a policy without a population prior, the serving engine for the others;
    ``direct=False``: every decision through the serving engine)."""
    started = time.perf_counter()
    SimRunner(store, client_factory=client_factory, direct=direct).run(config)
    return config.total_steps / (time.perf_counter() - started)


@contextmanager
def _opened_store() -> Iterator[SqlStore]:
    """A new SQLite database, opened as a process opens its store: once, before its first
    run. Its writer's connection and compiled statements are then a process's start-up cost,
    as in the service and in ``oo-ml sim``, not a run's (about 2.5 ms a run when each run had
    a store of its own)."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/sim.db"
        upgrade(url)
        store = SqlStore(url)
        try:
            store.write(lambda txn: None)  # the writer's connection
            yield store
        finally:
            store.close()


def _speed_rounds(config: SimConfig) -> list[Round]:
    """The core's rounds for a run like ``config``'s, as many as its steps, with what the
    run's users would teach: user ``u``'s rounds come from user ``u``'s own task stream (as
    in the simulator, minus the tasks a choice completes), and each candidate carries the
    reward of the rule judge's answer had it been chosen, scored by the run's reward rule. A
    constant reward would make every user alike and the population prior's fits converge at
    once: a cheaper core than the real one."""
    personas = load_personas(config.personas)
    users = range(config.users)
    pools = Pools(
        [stream_seed(config.seed, u) for u in users],
        [f"u{u}" for u in users],
        config.pool_size,
        awake=[personas[u % len(personas)].awake for u in users],
    )
    rule = get_reward_rule(config.reward_rule)
    judge = RuleJudge()
    rng = np.random.default_rng(config.seed)
    rounds = []
    for step in range(config.steps):
        for u in users:
            persona, context = personas[u % len(personas)].at_step(step), pools.context(u)
            outcomes = [
                Outcome(verdict.action, verdict.dwell_ms)
                for verdict in (
                    judge.judge(JudgeRequest(persona, context, task, step), rng)
                    for task in pools.tasks(u)
                )
            ]
            rewards = [rule.score(outcome).value for outcome in outcomes]
            rounds.append((context, pools.candidates(u), rewards, outcomes))
        pools.advance()
    return rounds


def speed(policies: Sequence[str], runs: Sequence[str], repeats: int, seed: int) -> str:
    """Simulated steps/s (engine, judge, event log on SQLite) vs the core's rank + learn
    rounds/s for the same policy, population prior included (:func:`_core_rounds`), for each
    of ``runs`` (:data:`SPEED_RUNS`), 150 steps per user.

    The core makes as many rounds as the run has steps, on a task stream's candidate lists,
    learning what the run's personas would teach it (:func:`_speed_rounds`). Both are measured
    after :func:`~oo_ml.runtime.freeze_startup_heap`, as ``oo-ml sim`` and the server run them.
    """
    rows = []
    for run in runs:
        users, persona_names = SPEED_RUNS[run]
        personas = tuple(shipped_personas()) if persona_names is None else persona_names
        rounds = _speed_rounds(SimConfig(tuple(policies), personas, users, SPEED_STEPS, seed=seed))
        # The candidate lists live through the whole measurement, like a process's startup
        # objects: frozen, so that no full collection during a run walks them.
        freeze_startup_heap()
        for name in policies:
            rows.append(_speed_row(run, name, personas, users, rounds, repeats, seed))
    header = (
        "run",
        "policy",
        "decided by",
        "core rounds/s",
        "simulated steps/s",
        "ratio (target ≥ 0.5)",
        "per-repeat ratio, median [min, max]",
        "core without its prior (ratio)",
        "through the engine: steps/s (ratio)",
        "engine rounds/s (÷ core)",
        "a step µs",
        "a step's budget µs",
    )
    _show("Simulator speed (medians)", header, rows)
    described = "; ".join(
        f"{run}: {SPEED_RUNS[run][0]} users × {SPEED_STEPS} steps, {_persona_text(run)}"
        for run in runs
    )
    return (
        f"### Simulator speed\n\n`{command_line()}` — medians of {repeats} interleaved runs "
        f"per policy ({described}). Simulated: a whole run as `oo-ml sim run` plays it in this "
        "process with the rule judge (task pools, personas, judge, oracle, events batched into "
        "SQLite: a new database for each policy and run size, opened once before its runs, as a"
        " process opens its store), its decisions made by the simulator's own `DirectDecisions`"
        " for a policy without a population prior (the policy's decide and learn and the reward"
        " rule, the same events as through the engine) and by the serving engine over a memory "
        "store for the others. Core: the policy's own rank + learn in memory on candidate lists"
        " from each user's own task stream, learning the chosen candidate's reward as the rule "
        "judge would draw it for that user's persona, a `Bandit` per user in turn; for a policy"
        " with a population prior, the prior too (refits at the engine's cadence, re-centring "
        "after each update), and in its own column without it. Through the engine: the same run"
        " with every decision through the serving engine (`SimRunner(direct=False)`). Engine: "
        "the core's rounds through the serving engine in this process (rank, then feedback with"
        " the judge's answer for the chosen candidate; memory store, decision records, reward "
        "rule, population refits), without the simulated world. All after "
        "`freeze_startup_heap()`, as `oo-ml sim` runs. A step's budget: the time a whole "
        "simulated step may take to meet the ratio's target, two "
        "core rounds.\n\n" + markdown_table(header, rows)
    )


def _persona_text(run: str) -> str:
    names = SPEED_RUNS[run][1]
    return "every shipped persona" if names is None else ", ".join(names)


def _speed_row(  # noqa: PLR0917 (one measurement's settings)
    run: str,
    name: str,
    personas: Sequence[str],
    users: int,
    rounds: Sequence[Round],
    repeats: int,
    seed: int,
) -> tuple[str, ...]:
    config = SimConfig((name,), tuple(personas), users, SPEED_STEPS, seed=seed)
    with _opened_store() as store:
        return _speed_measured(run, get_policy(name), config, rounds, repeats, seed, store)


def _speed_measured(  # noqa: PLR0917 (one measurement's settings)
    run: str,
    policy: Policy,
    config: SimConfig,
    rounds: Sequence[Round],
    repeats: int,
    seed: int,
    store: SqlStore,
) -> tuple[str, ...]:
    users, name, has_prior = config.users, policy.name, policy.population is not None
    measures: dict[str, Callable[[], float]] = {
        "core": lambda: _core_rounds(policy, rounds, users, seed, prior=True),
        "engine": lambda: _engine_rounds(config, rounds),
        "sim": lambda: _sim_steps(config, store),
    }
    direct = takes(policy)
    if direct:
        measures["through"] = lambda: _sim_steps(config, store, direct=False)
    if has_prior:
        measures["bare"] = lambda: _core_rounds(policy, rounds, users, seed, prior=False)
    for measure in measures.values():  # warm-up: compiled kernels, caches
        measure()
    runs: dict[str, list[float]] = {key: [] for key in measures}
    for i in range(repeats):  # interleaved, the order rotating every repeat
        keys = list(measures)
        for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
            runs[key].append(measures[key]())
    core, simulated = statistics.median(runs["core"]), statistics.median(runs["sim"])
    engine = statistics.median(runs["engine"])
    bare = statistics.median(runs["bare"]) if has_prior else None
    through = statistics.median(runs["through"]) if direct else None
    # Each repeat's own ratio (its runs were measured back to back): their spread shows how
    # much of a difference the machine's noise alone makes.
    ratios = sorted(s / c for s, c in zip(runs["sim"], runs["core"], strict=True))
    return (
        run,
        name,
        "simulator" if direct else "serving engine",
        f"{core:,.0f}",
        f"{simulated:,.0f}",
        f"{simulated / core:.2f}",
        f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}, {ratios[-1]:.2f}]",
        "—" if bare is None else f"{bare:,.0f} ({simulated / bare:.2f})",
        "—" if through is None else f"{through:,.0f} ({through / core:.2f})",
        f"{engine:,.0f} ({engine / core:.2f})",
        f"{1e6 / simulated:,.0f}",
        f"{2e6 / core:,.0f}",
    )


def _show(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "experiment",
        choices=["quality", "seeds", "holdout", "users", "cold-start", "drift", "speed", "all"],
    )
    parser.add_argument("--policies", default=",".join(QUALITY_POLICIES))
    parser.add_argument("--users", type=int, default=119)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seeds", default="1,2,3", help="for `seeds`, `holdout` and `users`: comma-separated"
    )
    parser.add_argument(
        "--user-counts", default="6,12,24,48", help="for `users`: comma-separated user counts"
    )
    parser.add_argument(
        "--user-personas",
        default="shipped",
        choices=list(PERSONA_SETS),
        help="for `users`: the persona set (its own docs section unless shipped)",
    )
    parser.add_argument(
        "--cold-policy",
        default="ucb-pop1-steady,ucb-pop5",
        help="for `cold-start`: comma-separated policies with a population prior",
    )
    parser.add_argument("--cold-baseline", default="ucb-ix2")
    parser.add_argument("--drift-policy", default="ucb-pop1-steady")
    parser.add_argument("--drift-discounted", default="ucb-pop1")
    parser.add_argument(
        "--speed-policy",
        default="ucb-pop5,ucb-pop4,ucb-ix1,linucb-v1,egreedy-v1",
        help="for `speed`: comma-separated policies",
    )
    parser.add_argument(
        "--speed-runs",
        default="small,default,standard",
        help=f"for `speed`: of {', '.join(SPEED_RUNS)}",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    chosen = (
        ["quality", "cold-start", "drift", "speed"]
        if args.experiment == "all"
        else [args.experiment]
    )
    for experiment in chosen:
        if experiment == "quality":
            body = quality(
                args.policies.split(","), args.users, args.steps, args.seed, not args.no_write
            )
        elif experiment == "seeds":
            seed_list = [int(seed) for seed in args.seeds.split(",")]
            body = seeds(args.policies.split(","), args.users, args.steps, seed_list)
        elif experiment == "users":
            counts = [int(count) for count in args.user_counts.split(",")]
            seed_list = [int(seed) for seed in args.seeds.split(",")]
            body = users_sweep(
                args.policies.split(","), counts, args.steps, seed_list, args.user_personas
            )
        elif experiment == "holdout":
            seed_list = [int(seed) for seed in args.seeds.split(",")]
            body = holdout(args.policies.split(","), args.users, args.steps, seed_list)
        elif experiment == "cold-start":
            body = cold_start(args.cold_policy.split(","), args.cold_baseline, 48, 48, args.seed)
        elif experiment == "drift":
            body = drift(args.drift_policy, args.drift_discounted, 24, args.seed)
        else:
            body = speed(
                args.speed_policy.split(","), args.speed_runs.split(","), args.repeats, args.seed
            )
        if not args.no_write:
            suffix = (
                f"-{args.user_personas}"
                if experiment == "users" and args.user_personas != "shipped"
                else ""
            )
            write_section(f"sim-{experiment}{suffix}", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
