"""What the console pages show, computed from records: run tables, promotion evidence, the run
form. Plain functions of data, so they are tested without a server."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oo_ml.errors import OOMLError
from oo_ml.policies import POLICIES
from oo_ml.settings import Settings
from oo_ml.sim.judges import JUDGES
from oo_ml.sim.persona import load_personas, persona_data, shipped_personas
from oo_ml.sim.runner import DEFAULT_STEPS, DEFAULT_USERS, SimConfig
from oo_ml.store.base import RunRecord

__all__ = [
    "Evidence",
    "JudgeChoice",
    "RunForm",
    "judge_choices",
    "latest_evidence",
    "policy_rows",
    "run_json",
]

MAX_SEED = 2**63 - 1
MAX_PERSONA_TEXT = 20_000
"""The longest persona file the run form takes."""


def _interval(row: Mapping[str, Any], key: str = "ci95") -> tuple[float | None, float | None]:
    low, high = [*(row.get(key) or ()), None, None][:2]
    return low, high


@dataclass(frozen=True, slots=True)
class Evidence:
    """How a policy did in the newest finished run that includes it."""

    run_id: str
    created_ms: int
    baseline: str | None
    policies: tuple[str, ...]
    judge: str
    users: int | None
    steps: int | None
    mean_reward: float
    ci_low: float | None
    ci_high: float | None
    normalized: float | None
    normalized_last_quarter: float | None
    lift_pct: float | None


def latest_evidence(runs: Sequence[RunRecord]) -> dict[str, Evidence]:
    """Policy name → its evidence, from ``runs`` ordered newest first."""
    found: dict[str, Evidence] = {}
    for run in runs:
        if run.status != "done" or not run.summary:
            continue
        table: Mapping[str, Any] = run.summary.get("policies", {})
        for name, row in table.items():
            if name in found:
                continue
            low, high = _interval(row)
            found[name] = Evidence(
                run_id=run.run_id,
                created_ms=run.created_ms,
                baseline=run.summary.get("first_policy"),
                policies=tuple(table),
                judge=str(run.config.get("judge", "")),
                users=run.config.get("users"),
                steps=run.config.get("steps"),
                mean_reward=float(row["mean_reward"]),
                ci_low=low,
                ci_high=high,
                normalized=row.get("normalized"),
                normalized_last_quarter=row.get("normalized_last_quarter"),
                lift_pct=row.get("lift_pct"),
            )
    return found


def policy_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per policy of a finished run: reward, interval, scores, regret, lift, actions."""
    rows = []
    for name, row in summary.get("policies", {}).items():
        low, high = _interval(row)
        difference_low, difference_high = _interval(row, "difference_ci95")
        actions = row.get("actions", {})
        rows.append(
            {
                "policy": name,
                "mean_reward": row.get("mean_reward"),
                "ci_low": low,
                "ci_high": high,
                "normalized": row.get("normalized"),
                "normalized_last_quarter": row.get("normalized_last_quarter"),
                "regret_per_step": row.get("regret_per_step"),
                "lift_pct": row.get("lift_pct"),
                "difference": row.get("difference"),
                "difference_low": difference_low,
                "difference_high": difference_high,
                "done": actions.get("done"),
                "snooze": actions.get("snooze"),
                "dismiss": actions.get("dismiss"),
                "users": row.get("users"),
                "events": row.get("events"),
            }
        )
    return rows


def run_json(run: RunRecord) -> dict[str, Any]:
    """What the status poll answers for one run."""
    return {
        "run_id": run.run_id,
        "status": run.status,
        "done_steps": run.done_steps,
        "total_steps": run.total_steps,
        "error": run.error,
        "updated_ms": run.updated_ms,
    }


@dataclass(frozen=True, slots=True)
class JudgeChoice:
    name: str
    available: bool
    note: str


def judge_choices(settings: Settings) -> list[JudgeChoice]:
    """Every judge, and whether the settings let this server use it."""
    notes = {
        "rule": (True, "samples each persona's own response model: fast, reproducible"),
        "llm": (
            bool(settings.llm_base_url and settings.llm_model),
            "asks a chat model; needs OO_ML_LLM_BASE_URL and OO_ML_LLM_MODEL",
        ),
        "command": (
            bool(settings.judge_command),
            "runs OO_ML_JUDGE_COMMAND once per tip",
        ),
    }
    return [JudgeChoice(name, *notes.get(name, (False, ""))) for name in JUDGES]


@dataclass
class RunForm:
    """The "start a run" form: its values (as typed) and, once checked, errors or a config."""

    policies: list[str] = field(default_factory=list)
    personas: list[str] = field(default_factory=list)
    users: str = str(DEFAULT_USERS)
    steps: str = str(DEFAULT_STEPS)
    judge: str = "rule"
    seed: str = "0"
    own_persona: str = ""
    """A persona file of the user's own, as TOML text (optional): simulated beside the
    personas chosen."""
    errors: list[str] = field(default_factory=list)

    @classmethod
    def default(cls, active: str) -> RunForm:
        names = list(POLICIES)
        chosen = [active, *(n for n in names if n != active)][:3]
        return cls(
            policies=[n for n in names if n in chosen],
            personas=list(shipped_personas()),
        )

    def config(self, baseline: str | None = None) -> SimConfig | None:
        """The simulation these values describe, or ``None`` with ``errors`` filled in.

        Policies run in the registry's order, except that ``baseline`` (the active policy)
        comes first when chosen: lift is measured against the first policy.
        """
        self.errors = []
        known_policies, known_personas = list(POLICIES), list(shipped_personas())
        policies = [p for p in known_policies if p in self.policies]
        if baseline in policies:
            policies.remove(baseline)
            policies.insert(0, baseline)
        personas = [p for p in known_personas if p in self.personas]
        unknown = sorted(set(self.policies) - set(known_policies)) + sorted(
            set(self.personas) - set(known_personas)
        )
        if unknown:
            self.errors.append(f"unknown names: {', '.join(unknown)}")
        if not policies:
            self.errors.append("Choose at least one policy.")
        definitions = self._own_persona()
        personas += [str(d["name"]) for d in definitions]
        if not personas and not self.own_persona.strip():  # a refused one has its reason
            self.errors.append("Choose at least one persona.")
        users = self._integer("Users", self.users, 1, 100_000)
        steps = self._integer("Steps", self.steps, 1, 100_000)
        seed = self._integer("Seed", self.seed, 0, MAX_SEED)
        if self.judge not in JUDGES:
            self.errors.append(f"Choose a judge: {', '.join(JUDGES)}.")
        if self.errors or users is None or steps is None or seed is None:
            return None
        try:
            return SimConfig(
                tuple(policies), tuple(personas), users, steps, judge=self.judge, seed=seed,
                persona_definitions=tuple(definitions),
            )  # fmt: skip
        except OOMLError as exc:
            self.errors.append(str(exc))
            return None

    def _own_persona(self) -> list[dict[str, Any]]:
        """The persona typed in, as a definition (none if the field is empty)."""
        text = self.own_persona.strip()
        if not text:
            return []
        if len(text) > MAX_PERSONA_TEXT:
            self.errors.append(f"Your persona is longer than {MAX_PERSONA_TEXT:,} characters.")
            return []
        try:
            data = tomllib.loads(text)
            (persona,) = load_personas([data.get("name", "")], [data])
        except tomllib.TOMLDecodeError as exc:
            self.errors.append(f"Your persona is not valid TOML: {exc}.")
            return []
        except OOMLError as exc:
            self.errors.append(f"Your persona: {str(exc).removeprefix('persona_definitions[0]: ')}")
            return []
        return [persona_data(persona)]

    def _integer(self, label: str, text: str, low: int, high: int) -> int | None:
        try:
            value = int(text.strip())
        except ValueError:
            self.errors.append(f"{label} must be a whole number.")
            return None
        if not low <= value <= high:
            self.errors.append(f"{label} must be between {low:,} and {high:,}.")
            return None
        return value
