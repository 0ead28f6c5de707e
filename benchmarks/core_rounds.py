"""In-process rounds per second of rank + learn, against the existing service's math path.

A round is one decision among k=10 candidates followed by the update with its reward. Each
policy is timed in the same run as a re-implementation of how the existing service computes
the same thing, on identical pre-generated inputs:

* per decision ``np.linalg.inv(A)`` (identity if singular) and θ = A⁻¹b;
* a Python loop over the candidates that builds each feature vector on its own: the d=5 and
  d=7 rows from a field dict with ``math.sin``/``math.cos`` into a fresh array (d=7 appends
  the day of week with ``np.append``), the d=44 and d=64 rows with ``get_encoder("v3")`` and
  ``get_encoder("v4")`` one candidate at a time; LinUCB scores θ·x + α√(xᵀA⁻¹x), ε-greedy
  explores with ε=0.1 and otherwise scores θ·x;
* the update rebuilds the chosen row from its fields, as the old reward endpoint did, then
  ``A += xxᵀ`` and ``b += r x``.

Persistence, logging and HTTP are left out on both sides. Old path and ours alternate repeats
(the order flips every pair) after a warm-up, and the table reports medians and the ratio of
the medians. Before anything is timed both sides must make the same choices on the same state;
the benchmark aborts if they do not.

    python benchmarks/core_rounds.py              # full run, updates docs/benchmarks.md
    python benchmarks/core_rounds.py --quick      # smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script too

from benchmarks._docs import DOCS, command_line, markers, print_table, write_section
from oo_ml import Bandit, Candidate, Context, get_encoder, get_policy

FloatArray = NDArray[np.float64]

K = 10
"""Candidates per decision."""

SECTION_START, SECTION_END = markers("core")

SOURCES = ("todoist", "calendar", "email", "other")


# ── Inputs ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Round:
    """One round's inputs: the context, k candidates and the reward each would earn."""

    context: Context
    candidates: list[Candidate]
    rewards: tuple[float, ...]


def make_rounds(n: int, seed: int, min_age: float = -7.0) -> list[Round]:
    """``n`` rounds with rewards from a fixed linear model plus noise, clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)
    rounds = []
    for _ in range(n):
        hour, dow = int(rng.integers(24)), int(rng.integers(7))
        candidates = [
            Candidate(
                f"task-{i}",
                is_overdue=bool(rng.random() < 0.3),
                task_age_days=float(rng.uniform(min_age, 40.0)),
                priority=int(rng.integers(1, 5)),
                source=SOURCES[int(rng.integers(len(SOURCES)))],
            )
            for i in range(K)
        ]
        rewards = tuple(_synthetic_reward(hour, c, float(rng.normal(0.0, 0.3))) for c in candidates)
        rounds.append(Round(Context(hour, dow), candidates, rewards))
    return rounds


def _synthetic_reward(hour: int, c: Candidate, noise: float) -> float:
    morning = 5 <= hour < 12
    value = (
        -0.2
        + 0.5 * c.is_overdue
        + 0.3 * (c.priority - 1) / 3
        - 0.4 * min(max(c.task_age_days, 0.0), 30.0) / 30.0
        + (0.4 if morning and c.source == "email" else 0.0)
        + noise
    )
    return min(max(value, -1.0), 1.0)


# ── The existing service's math path, re-implemented ────────────────────────────────────────


def _old_fields(context: Context, c: Candidate) -> dict[str, Any]:
    return {
        "hour_of_day": context.hour_of_day,
        "is_overdue": c.is_overdue,
        "task_age_days": c.task_age_days,
        "priority": c.priority,
    }


def old_row5(fields: dict[str, Any]) -> FloatArray:
    """The old d=5 row; its age is only clipped from above, so negative ages pass through."""
    angle = 2 * math.pi * fields.get("hour_of_day", 12) / 24
    return np.array(
        [
            math.sin(angle),
            math.cos(angle),
            float(bool(fields.get("is_overdue", False))),
            min(float(fields.get("task_age_days", 0)), 30.0) / 30.0,
            (float(fields.get("priority", 1)) - 1.0) / 3.0,
        ],
        dtype=np.float64,
    )


def old_row7(fields: dict[str, Any], day_of_week: int) -> FloatArray:
    """The old d=7 row: the d=5 row with the day of week appended as sin/cos."""
    angle = 2 * math.pi * day_of_week / 7
    return np.append(old_row5(fields), [math.sin(angle), math.cos(angle)])


class OldPath(ABC):
    """State and arithmetic of one old-service policy: A, b, invert per decision, loop."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.A = np.identity(dim, dtype=np.float64)
        self.b = np.zeros(dim, dtype=np.float64)

    @abstractmethod
    def row(self, context: Context, c: Candidate) -> FloatArray:
        """The feature row of one candidate, built on its own."""

    @abstractmethod
    def decide(self, context: Context, candidates: Sequence[Candidate]) -> int:
        """Index of the chosen candidate."""

    def posterior(self) -> tuple[FloatArray, FloatArray]:
        """A⁻¹ (the identity if A is singular) and θ = A⁻¹b, computed afresh."""
        try:
            a_inv = cast(FloatArray, np.linalg.inv(self.A))
        except np.linalg.LinAlgError:
            a_inv = np.identity(self.dim, dtype=np.float64)
        theta: FloatArray = a_inv @ self.b
        return a_inv, theta

    def learn(self, context: Context, chosen: Candidate, reward: float) -> None:
        x = self.row(context, chosen)
        self.A += np.outer(x, x)
        self.b += reward * x


class OldLinUCB(OldPath):
    """LinUCB: first candidate with the highest θ·x + α√(xᵀA⁻¹x)."""

    def __init__(self, dim: int, alpha: float, row: Callable[[Context, Candidate], FloatArray]):
        super().__init__(dim)
        self.alpha = alpha
        self._row = row

    def row(self, context: Context, c: Candidate) -> FloatArray:
        return self._row(context, c)

    def decide(self, context: Context, candidates: Sequence[Candidate]) -> int:
        a_inv, theta = self.posterior()
        best, best_ucb = 0, -math.inf
        for i, c in enumerate(candidates):
            x = self._row(context, c)
            ucb = float(theta @ x) + self.alpha * math.sqrt(float(x @ a_inv @ x))
            if ucb > best_ucb:
                best, best_ucb = i, ucb
        return best


class OldEpsilonGreedy(OldPath):
    """ε-greedy on d=7: a uniform pick with probability ε, else the first highest θ·x."""

    def __init__(self, epsilon: float, seed: int) -> None:
        super().__init__(7)
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)

    def row(self, context: Context, c: Candidate) -> FloatArray:
        return old_row7(_old_fields(context, c), context.day_of_week)

    def decide(self, context: Context, candidates: Sequence[Candidate]) -> int:
        _, theta = self.posterior()
        if self.rng.random() < self.epsilon:
            pick = int(self.rng.integers(len(candidates)))
            float(theta @ self.row(context, candidates[pick]))  # the old path scored it too
            return pick
        return self.exploit(context, candidates, theta)

    def exploit(self, context: Context, candidates: Sequence[Candidate], theta: FloatArray) -> int:
        best, best_score = 0, -math.inf
        for i, c in enumerate(candidates):
            score = float(theta @ self.row(context, c))
            if score > best_score:
                best, best_score = i, score
        return best


def _old_v1_row(context: Context, c: Candidate) -> FloatArray:
    return old_row5(_old_fields(context, c))


_V3 = get_encoder("v3")


def _v3_row(context: Context, c: Candidate) -> FloatArray:
    row: FloatArray = _V3.encode(context, [c])[0]
    return row


_V4 = get_encoder("v4")


def _v4_row(context: Context, c: Candidate) -> FloatArray:
    row: FloatArray = _V4.encode(context, [c])[0]
    return row


@dataclass(frozen=True, slots=True)
class Case:
    """One table row: our policy and the old path it is compared with."""

    policy: str
    old: str
    make_old: Callable[[int], OldPath]
    target: float | None


CASES = (
    Case("egreedy-v1", "ε-greedy d=7", lambda seed: OldEpsilonGreedy(0.1, seed), 2.0),
    Case("linucb-v1", "LinUCB d=5", lambda seed: OldLinUCB(5, 1.0, _old_v1_row), None),
    Case("ucb-ix1", "LinUCB d=44", lambda seed: OldLinUCB(44, 0.5, _v3_row), 5.0),
    Case("squarecb-ix1", "LinUCB d=44", lambda seed: OldLinUCB(44, 0.5, _v3_row), None),
    Case("ts-ix1", "LinUCB d=44", lambda seed: OldLinUCB(44, 0.5, _v3_row), None),
    Case("ucb-ix2", "LinUCB d=64", lambda seed: OldLinUCB(64, 0.5, _v4_row), 5.0),
)


# ── Correctness pre-check ───────────────────────────────────────────────────────────────────


class MismatchError(RuntimeError):
    """Our side and the old path disagree where they must agree: timing them would mislead."""


def check_same_choices(n_rounds: int, seed: int) -> None:
    """Run both sides in lockstep on the same state; raise on the first disagreement.

    Ages are non-negative here because the old d=5/d=7 rows let negative ages through
    unclipped, a bug the v1/v2 encoders fix. Rounds whose decision is a tie are not compared
    (the old path takes the first, we split ties at random); both sides then learn our choice
    so that their states stay identical.
    """
    rounds = make_rounds(n_rounds, seed, min_age=0.0)
    v1, v2 = get_encoder("v1"), get_encoder("v2")
    for n, r in enumerate(rounds):
        new5, new7 = v1.encode(r.context, r.candidates), v2.encode(r.context, r.candidates)
        for i, c in enumerate(r.candidates):
            fields = _old_fields(r.context, c)
            if old_row5(fields).tobytes() != new5[i].tobytes():
                raise MismatchError(f"v1 row differs from the old d=5 row in round {n}: {c}")
            if old_row7(fields, r.context.day_of_week).tobytes() != new7[i].tobytes():
                raise MismatchError(f"v2 row differs from the old d=7 row in round {n}: {c}")

    _lockstep("linucb-v1", OldLinUCB(5, 1.0, _old_v1_row), rounds, seed)
    _lockstep("ucb-ix1", OldLinUCB(44, 0.5, _v3_row), make_rounds(n_rounds, seed + 1), seed)
    _lockstep("ucb-ix2", OldLinUCB(64, 0.5, _v4_row), make_rounds(n_rounds, seed + 2), seed)

    bandit, old = Bandit(get_policy("egreedy-v1"), seed=seed), OldEpsilonGreedy(0.1, seed)
    for n, r in enumerate(rounds):
        decision = bandit.rank(r.context, r.candidates)
        probs = decision.probabilities
        _, theta = old.posterior()
        exploit = old.exploit(r.context, r.candidates, theta)
        expected = np.full(K, 0.1 / K)
        expected[exploit] += 0.9
        tied = np.count_nonzero(probs == probs.max()) > 1
        if not tied and not np.array_equal(probs, expected):
            raise MismatchError(
                f"egreedy-v1 round {n}: probabilities {probs.tolist()} but the "
                f"old path exploits {r.candidates[exploit].id!r} (expected {expected.tolist()})"
            )
        bandit.learn(decision, r.rewards[decision.chosen])
        old.learn(r.context, r.candidates[decision.chosen], r.rewards[decision.chosen])


def _lockstep(name: str, old: OldPath, rounds: Sequence[Round], seed: int) -> None:
    bandit = Bandit(get_policy(name), seed=seed)
    for n, r in enumerate(rounds):
        decision = bandit.rank(r.context, r.candidates)
        if decision.probability == 1.0:
            theirs = old.decide(r.context, r.candidates)
            if theirs != decision.chosen:
                raise MismatchError(
                    f"{name} round {n}: we chose {decision.chosen_id!r}, "
                    f"the old path {r.candidates[theirs].id!r}"
                )
        bandit.learn(decision, r.rewards[decision.chosen])
        old.learn(r.context, r.candidates[decision.chosen], r.rewards[decision.chosen])


# ── Timing ──────────────────────────────────────────────────────────────────────────────────


def time_ours(policy: str, rounds: Sequence[Round], seed: int) -> float:
    """Seconds for rank + learn over ``rounds`` with a fresh bandit."""
    bandit = Bandit(get_policy(policy), seed=seed)
    rank, learn = bandit.rank, bandit.learn
    start = time.perf_counter()
    for r in rounds:
        decision = rank(r.context, r.candidates)
        learn(decision, r.rewards[decision.chosen])
    return time.perf_counter() - start


def time_old(old: OldPath, rounds: Sequence[Round]) -> float:
    """Seconds for decide + learn over ``rounds`` on the old path."""
    decide, learn = old.decide, old.learn
    start = time.perf_counter()
    for r in rounds:
        chosen = decide(r.context, r.candidates)
        learn(r.context, r.candidates[chosen], r.rewards[chosen])
    return time.perf_counter() - start


@dataclass(frozen=True, slots=True)
class Result:
    case: Case
    dim: int
    old_us: list[float]
    ours_us: list[float]

    @property
    def old_median(self) -> float:
        return statistics.median(self.old_us)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours_us)

    @property
    def speedup(self) -> float:
        return self.old_median / self.ours_median


def measure(case: Case, rounds: Sequence[Round], repeats: int, warmup: int, seed: int) -> Result:
    """Alternate old and ours ``repeats`` times each, flipping the order every pair."""
    time_ours(case.policy, rounds[:warmup], seed)
    time_old(case.make_old(seed), rounds[:warmup])
    per_round = 1e6 / len(rounds)
    old_us: list[float] = []
    ours_us: list[float] = []
    for i in range(repeats):
        old = case.make_old(seed + i)
        for side in ("old", "ours") if i % 2 == 0 else ("ours", "old"):
            if side == "old":
                old_us.append(time_old(old, rounds) * per_round)
            else:
                ours_us.append(time_ours(case.policy, rounds, seed + i) * per_round)
    return Result(case, get_policy(case.policy).dim, old_us, ours_us)


# ── Report ──────────────────────────────────────────────────────────────────────────────────

COLUMNS = (
    "policy",
    "d",
    "old path",
    "old µs/round",
    "ours µs/round",
    "old rounds/s",
    "ours rounds/s",
    "speed-up",
    "target",
)


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.case.target is None:
            verdict = "—"
        else:
            verdict = f"≥ {r.case.target:g}× {'met' if r.speedup >= r.case.target else 'MISSED'}"
        rows.append(
            (
                r.case.policy,
                str(r.dim),
                r.case.old,
                f"{r.old_median:.1f}",
                f"{r.ours_median:.1f}",
                f"{1e6 / r.old_median:,.0f}",
                f"{1e6 / r.ours_median:,.0f}",
                f"{r.speedup:.2f}×",
                verdict,
            )
        )
    return rows


def markdown(command: str, settings: str, rows: Sequence[tuple[str, ...]]) -> str:
    lines = [
        "## Core rounds: rank + learn in process",
        "",
        "Rounds per second of one decision among k=10 candidates plus its update, ours against",
        "a re-implementation of the existing service's math path (inverse per decision, a Python",
        "loop building each candidate's row, `A += xxᵀ`), on identical inputs in the same run.",
        "Medians over alternating repeats; speed-up is the ratio of the medians.",
        "See the docstring of `benchmarks/core_rounds.py` for exactly what each side does.",
        "",
        "Targets (issue 2): ≥ 2× at d=7 and ≥ 5× at d ≥ 30, the latter read on the",
        "like-for-like LinUCBs `ucb-ix1` (d=44) and `ucb-ix2` (d=64); both must meet it.",
        "`squarecb-ix1` and `ts-ix1` are timed against the same old LinUCB path for scale only:",
        "they do other work per decision (Thompson sampling draws 256 posterior samples), so no",
        "target applies to them. Our LinUCB scores and every update run in compiled kernels",
        "(numba, ADR 0006); the old path's are numpy calls, as in the existing service.",
        "",
        f"Command: `{command}`",
        "",
        settings,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3000, help="rounds per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats of each side")
    parser.add_argument("--warmup", type=int, default=500, help="untimed rounds first")
    parser.add_argument("--check-rounds", type=int, default=300, help="rounds of the pre-check")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--policy", action="append", choices=[c.policy for c in CASES])
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, 2 repeats")
    parser.add_argument(
        "--output",
        type=Path,
        help="markdown file whose section to update "
        "(default: docs/benchmarks.md, none with --quick)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats, args.warmup, args.check_rounds = 60, 2, 10, 30
    if min(args.rounds, args.repeats, args.check_rounds) < 1 or args.warmup < 0:
        parser.error("--rounds, --repeats and --check-rounds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = command_line("benchmarks/core_rounds.py", argv)
    console = Console(width=None if sys.stdout.isatty() else 132)
    load = os.getloadavg()[0]  # these machines are shared: say how busy this one was
    check_same_choices(args.check_rounds, args.seed)
    console.print(f"pre-check passed: same choices on {args.check_rounds} rounds")
    rounds = make_rounds(args.rounds, args.seed)
    cases = [c for c in CASES if args.policy is None or c.policy in args.policy]
    results = []
    for case in cases:
        results.append(measure(case, rounds, args.repeats, args.warmup, args.seed))
        console.print(f"measured {case.policy}")
    rows = table_rows(results)
    blas = os.environ.get("OPENBLAS_CORETYPE")
    settings = (
        f"k={K}, {args.rounds} rounds × {args.repeats} repeats per side, {args.warmup} warm-up; "
        f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores, "
        f"OPENBLAS_CORETYPE={blas or 'unset'}; load average {load:.1f} at the start; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}."
    )
    print_table(
        console, "core rounds: rank + learn, medians", COLUMNS, rows, caption=settings, left=3
    )
    output = args.output or (None if args.quick else DOCS)
    if output is not None:
        write_section("core", markdown(command, settings, rows), output)
        console.print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
