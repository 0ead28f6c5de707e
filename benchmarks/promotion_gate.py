"""How long does the promotion gate take to judge a challenger that ran as a shadow?

A decision log on SQLite: ``--users`` simulated users (the shipped personas, their task streams,
the rule judge) each ask ``--rounds`` times; ``ucb-ix1`` serves, ``ucb-pop5`` and
``egreedy-v1`` run as shadows, every tip is answered. The gate (:func:`check_promotion`, DR,
as ``PUT /v1/policies/active`` runs it) then judges each shadow against the served policy:

* on the log as it is: the decisions and shadows carry their models' expected rewards
  (``means``), so evaluation reads them and replays nothing;
* on a copy of the same log with ``means`` set to NULL in the database — a log written before
  they were kept (migration 0004) — where every policy is replayed over the whole log to learn
  its reward model again, population refits included.

Medians of ``--repeats`` runs, the two logs alternating.

    python benchmarks/promotion_gate.py                  # full run, updates docs/benchmarks.md
    python benchmarks/promotion_gate.py --users 20 --rounds 20 --repeats 1 --no-write
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sqlalchemy
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script too

from benchmarks._docs import DOCS, command_line, markdown_table, print_table, write_section
from oo_ml.engine import Engine, EngineConfig
from oo_ml.ope.evaluation import PromotionCheck, check_promotion
from oo_ml.sim.judges import JudgeRequest, RuleJudge
from oo_ml.sim.persona import shipped_personas
from oo_ml.sim.runner import stream_seed
from oo_ml.sim.tasks import Pools
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore
from oo_ml.types import Outcome

SECTION = "promotion-gate"
ACTIVE = "ucb-ix1"
SHADOWS = ("ucb-pop5", "egreedy-v1")


def make_log(url: str, users: int, rounds: int, seed: int) -> None:
    """``users`` × ``rounds`` answered decisions of :data:`ACTIVE`, shadowed by :data:`SHADOWS`."""
    store = SqlStore(url, sqlite_synchronous="OFF")
    clock = iter(range(1_764_000_000_000, 2**62, 1000))
    seeds = np.random.default_rng(seed)
    engine = Engine(
        store,
        EngineConfig(default_policy=ACTIVE, shadow_policies=SHADOWS, population_refresh_s=1e9),
        clock=lambda: next(clock) / 1000,
        seed_source=lambda: int(seeds.integers(0, 2**63)),
    )
    personas = list(shipped_personas().values())
    pools = Pools([stream_seed(seed, u) for u in range(users)], [f"u{u}" for u in range(users)])
    judge, rng = RuleJudge(), np.random.default_rng(seed)
    try:
        for step in range(rounds):
            for u in range(users):
                context = pools.context(u)
                record = engine.rank(f"u{u}", context, pools.candidates(u))
                persona = personas[u % len(personas)].at_step(step)
                task = pools.task_at(u, record.chosen)
                verdict = judge.judge(JudgeRequest(persona, context, task, step), rng)
                engine.feedback(record.event_id, Outcome(verdict.action, verdict.dwell_ms))
            pools.advance()
    finally:
        store.close()


def forget_means(url: str) -> None:
    """The log as written before decisions kept their means."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as conn:
            for table in ("decisions", "shadow_decisions"):
                conn.execute(sqlalchemy.text(f"UPDATE {table} SET means = NULL"))
    finally:
        engine.dispose()


def judge(url: str, challenger: str) -> tuple[float, PromotionCheck]:
    store = SqlStore(url)
    try:
        started = time.perf_counter()
        verdict = check_promotion(store, challenger, ACTIVE, estimator="dr", since_ms=0)
        return time.perf_counter() - started, verdict
    finally:
        store.close()


def _dr(verdict: PromotionCheck) -> str:
    e = verdict.challenger_estimate
    return "—" if e is None else f"{e.value:+.3f} [{e.lower:+.3f}, {e.upper:+.3f}]"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=DOCS, help="markdown file to update")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        logged, forgotten = f"sqlite:///{tmp}/logged.db", f"sqlite:///{tmp}/forgotten.db"
        upgrade(logged)
        started = time.perf_counter()
        make_log(logged, args.users, args.rounds, args.seed)
        made_s = time.perf_counter() - started
        shutil.copyfile(f"{tmp}/logged.db", f"{tmp}/forgotten.db")
        forget_means(forgotten)
        rows = []
        for challenger in SHADOWS:
            times: dict[str, list[float]] = {"logged": [], "forgotten": []}
            verdicts: dict[str, PromotionCheck] = {}
            for _ in range(args.repeats):
                for name, url in (("logged", logged), ("forgotten", forgotten)):
                    seconds, verdicts[name] = judge(url, challenger)
                    times[name].append(seconds)
            fast, slow = (statistics.median(times[n]) for n in ("logged", "forgotten"))
            rounds = verdicts["logged"].rounds
            rows.append(
                [
                    f"`{challenger}` vs `{ACTIVE}`",
                    f"{rounds:,}",
                    f"{slow:.2f}",
                    f"{fast:.3f}",
                    f"{slow / fast:.0f}×",
                    _dr(verdicts["forgotten"]),
                    _dr(verdicts["logged"]),
                ]
            )
    header = [
        "gate (DR)",
        "rounds",
        "replayed s",
        "logged means s",
        "speed-up",
        "challenger DR, replayed",
        "challenger DR, logged means",
    ]
    print_table(
        Console(),
        "Promotion gate",
        header,
        rows,
        caption=f"log made in {made_s:.0f} s",
    )
    if args.no_write:
        return
    body = (
        "## Promotion gate: a shadow challenger, from logged means or replayed\n\n"
        f"`{command_line('benchmarks/promotion_gate.py', argv)}` — a decision log on SQLite, "
        f"{args.users} simulated users × {args.rounds} answered tips (shipped personas, rule "
        f"judge), served by `{ACTIVE}` with `{'` and `'.join(SHADOWS)}` as shadows. The gate "
        "(`check_promotion`, DR, what `PUT /v1/policies/active` runs) judges each shadow "
        "against the served policy, on the log as written (the models' expected rewards, "
        "`means`, logged with every decision and shadow: nothing is replayed) and on a copy "
        "with `means` set to NULL, as a log written before migration 0004 (each policy is "
        "replayed over the whole log to learn its reward model again). Medians of "
        f"{args.repeats} runs, the two logs alternating.\n\n"
        + markdown_table(header, rows)
        + "\nThe estimates differ only where the replay's model is not the one that decided: "
        "for a population policy, the replay refits its population on its own schedule, "
        "while the logged means come from the shadow's live model and its live refits.\n"
    )
    write_section(SECTION, body, args.output)


if __name__ == "__main__":
    main()
