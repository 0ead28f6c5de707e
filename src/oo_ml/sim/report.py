"""Turning a run summary into what people read: tables, rows for the console and a reward-curve
SVG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from oo_ml.charts import line_chart
from oo_ml.sim.persona import RULE_CONDITIONS, Persona, persona_data
from oo_ml.sim.tasks import in_hours
from oo_ml.store.base import RunRecord

__all__ = [
    "curve_svg",
    "judge_text",
    "persona_rows",
    "persona_table",
    "persona_text",
    "personas_table",
    "summary_table",
]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def summary_table(run: RunRecord) -> Table:
    """Mean reward ± 95% CI, normalized score, regret, lift, the paired difference from the
    first policy and action shares per policy (the last two only when there is more than one
    policy to compare)."""
    table = Table(title=f"Run {run.run_id} ({run.status})")
    summary: dict[str, Any] = run.summary or {}
    rows: dict[str, Any] = summary.get("policies", {})
    compared = len(rows) > 1
    columns = ["policy", "mean reward [95% CI]", "normalized", "last quarter", "regret/step"]
    if compared:
        columns += ["lift", "vs first, paired [95% CI]"]
    for column in (*columns, "done/snooze/dismiss"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in rows.items():
        low, high = row["ci95"]
        actions = row["actions"]
        cells = [
            name,
            f"{row['mean_reward']:+.3f} [{low:+.3f}, {high:+.3f}]",
            _num(row["normalized"], ".3f"),
            _num(row["normalized_last_quarter"], ".3f"),
            _num(row["regret_per_step"], ".3f"),
        ]
        if compared:
            lift = row.get("lift_pct")
            cells += [_num(lift, "+.1f") + ("%" if lift is not None else ""), _difference(row)]
        cells.append(f"{actions['done']:.0%}/{actions['snooze']:.0%}/{actions['dismiss']:.0%}")
        table.add_row(*cells)
    return table


def persona_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(policies, rows): per persona, each policy's mean reward and normalized score."""
    policies = list(summary.get("policies", {}))
    rows = []
    for persona, by_policy in summary.get("personas", {}).items():
        cells = [by_policy.get(p, {}) for p in policies]
        rows.append(
            {
                "persona": persona,
                "cells": [
                    {"mean_reward": c.get("mean_reward"), "normalized": c.get("normalized")}
                    for c in cells
                ],
            }
        )
    return policies, rows


def persona_table(run: RunRecord) -> Table | None:
    """Each persona's score under each policy (:func:`persona_rows`): the normalized score
    (mean reward for a judge without a model), so that a comparison shows whom a policy
    serves well and whom not. ``None`` for a run of one persona (the main table says it all)."""
    policies, rows = persona_rows(run.summary or {})
    if len(rows) < 2:
        return None
    modelled = any(cell["normalized"] is not None for row in rows for cell in row["cells"])
    measure = "normalized score" if modelled else "mean reward"
    table = Table(title=f"By persona: {measure}")
    table.add_column("persona")
    for name in policies:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            escape(row["persona"]),
            *(
                _num(cell["normalized"], ".3f") if modelled else _num(cell["mean_reward"], "+.3f")
                for cell in row["cells"]
            ),
        )
    return table


def judge_text(run: RunRecord) -> str | None:
    """What the run's judge did, for a judge that can fail (llm, command), in words; ``None``
    for the rule judge and for runs stored before judges were counted."""
    counts = (run.summary or {}).get("judge")
    if not counts:
        return None
    asked = counts["calls"] - counts["cache_hits"]
    return (
        f"{counts['calls']:,} judgements: {counts['cache_hits']:,} from the cache, {asked:,} "
        f"asked, {counts['retries']:,} retries, {counts['invalid_replies']:,} invalid replies, "
        f"{counts['failures']:,} unanswered (counted as dismissed)"
    )


def _difference(row: dict[str, Any]) -> str:
    """Mean reward minus the first policy's, paired over users (runs stored before this was
    summarised, and the first policy, show a dash)."""
    difference = row.get("difference")
    if difference is None:
        return "—"
    low, high = row["difference_ci95"]
    return f"{difference:+.3f} [{low:+.3f}, {high:+.3f}]"


def curve_svg(run: RunRecord) -> str:
    """The run's reward curves, one line per policy, with oracle and random references."""
    curve = (run.summary or {}).get("curve", {})
    return line_chart(
        curve.get("steps", []),
        curve.get("series", {}),
        {"oracle": curve.get("oracle", []), "random": curve.get("random", [])},
        title=f"Mean {curve.get('measure', 'reward')} per step",
        y_label=curve.get("measure", "reward"),
    )


def _hours_text(hours: Sequence[int]) -> str:
    """``[21, 2]`` as ``21:00–02:59``."""
    return f"{hours[0]:02d}:00–{hours[1]:02d}:59"


def _hour_set(hours: Sequence[int]) -> set[int]:
    """The hours ``[from, to]`` covers (``[22, 2]``: 22, 23, 0, 1, 2)."""
    return {hour for hour in range(24) if in_hours((hours[0], hours[1]), hour)}


def _drift(data: Mapping[str, Any]) -> str:
    drift = data["drift"]
    return "—" if drift is None else f"from step {drift['at_step']}: {drift['persona']}"


def personas_table(personas: Sequence[Persona]) -> Table:
    """One line per persona: when it asks for tips, its drift and its description."""
    table = Table(title="Personas")
    for column in ("persona", "asks for tips", "drift", "description"):
        table.add_column(column)
    for persona in personas:
        data = persona_data(persona)
        table.add_row(
            escape(persona.name), _hours_text(data["awake"]), escape(_drift(data)),
            escape(persona.description),
        )  # fmt: skip
    return table


def _weights_text(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {w:+g}" for name, w in weights.items()) or "nothing"


def persona_text(persona: Persona) -> str:
    """Everything ``persona`` says, in words, as rich markup: what a persona file's author
    checks before a run."""
    data = persona_data(persona)
    response = data["response"]
    lines = [
        f"[bold]{escape(persona.name)}[/bold]: {escape(persona.description)}",
        f"  asks for tips {_hours_text(data['awake'])}",
        f"  p(done) = sigmoid({response['slope']:g} · (utility − {response['threshold']:g}));"
        f" snoozes {response['snooze_share']:.0%} of the rest; dwell median"
        f" {response['dwell_median_s']:g} s (log-sd {response['dwell_sigma']:g})",
        f"  always: {_weights_text(data['prefer'])}",
    ]
    for rule in data["when"]:
        conditions = [] if rule["hours"] == [0, 23] else [_hours_text(rule["hours"])]
        if "weekend" in rule:
            conditions.append("weekends" if rule["weekend"] else "weekdays")
        if "days" in rule:
            conditions.append(" ".join(_DAYS[d] for d in rule["days"]))
        when = ", ".join(conditions) or "always"
        weights = {k: w for k, w in rule.items() if k not in RULE_CONDITIONS}
        lines.append(f"  when {when}: {_weights_text(weights)}")
        asleep = sorted(_hour_set(rule["hours"]) - _hour_set(data["awake"]))
        if asleep and rule["hours"] != [0, 23]:
            never = ", ".join(f"{h:02d}:00" for h in asleep)
            lines.append(f"    [yellow]not asked at {never}: outside its waking hours[/yellow]")
    if data["drift"] is not None:
        lines.append(f"  {escape(_drift(data))}")
    return "\n".join(lines)
