"""Exporting the decision log for other tools: Vowpal Wabbit's DSJSON, CSV and Parquet.

Every writer streams: it reads the log page by page (:func:`oo_ml.ope.log.iter_rounds`)
and writes each round as it comes, so memory stays constant however long the log.

Which rounds are written, in every format:

- *legacy* records (made by an old-style ``/reward`` for a tip that was never ranked here) have
  no logged probabilities, so no tool can importance-weight them: skipped and counted.
- rounds *without feedback yet* are skipped and counted unless ``include_unlabeled``; then
  DSJSON writes them without the ``_label_*`` fields (Vowpal Wabbit predicts on such a line
  but does not learn from it) and the flat formats leave the outcome columns empty. A round
  that was settled with the default reward has feedback (origin ``default``) and is labelled.

**DSJSON** is the Decision Service's JSON, one event per line, which ``vw --dsjson
--cb_explore_adf`` reads. ``_label_cost`` is ``-reward`` (VW minimises cost; a reward of +1
becomes a cost of -1), ``_label_probability`` the logged probability of the chosen action,
``_label_Action`` the chosen candidate's 1-based position and ``_labelIndex`` its 0-based one.
As in the Decision Service's own logs, ``a`` lists the 1-based action ids with the *chosen one
first*, then the others by the logged policy's ranking (its scores, highest first), and ``p``
holds the logged probabilities in the order of ``a`` (so ``p[0]`` is ``_label_probability``;
VW's log tools read ``a[0]`` as the chosen action). ``c`` is the shared context: namespace
``User`` (``id``), namespace ``Context`` (``hour``, ``day`` with Monday = 0, their sin/cos
encodings, ``weekend``, ``morning``, ``evening``), and ``_multi``, one object per candidate in
candidate order with ``_tag`` = the candidate id, namespace ``Task`` (``overdue`` 0/1, ``age``
in days, ``priority`` 1–4, ``source`` as a string, i.e. categorical, feature) and namespace
``X``: the logged policy's encoded features by label (``oo-ml features v3``), zeros left out.
Namespaces start with distinct letters (U, C, T, X) because VW names a namespace by its first
character, e.g. ``-q CT``. ``VWState.m`` is the logged policy's name.

**CSV and Parquet** hold one row per decision with the columns of :data:`FLAT_COLUMNS`.
``features`` is the chosen candidate's encoded feature vector as a list (a JSON list in CSV),
``encoder`` names the encoder whose labels give its columns: one log may hold policies with
different encoders, so a list keeps one schema for every export. ``probabilities`` is the
logged probability of every candidate, in candidate order. CSV floats are written with
``repr`` and read back exactly; empty cells are missing values. Parquet needs ``pyarrow``
(the ``export`` extra).
"""

from __future__ import annotations

import csv
import importlib
import itertools
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from oo_ml.errors import UnknownPolicyError, ValidationError
from oo_ml.ope.log import END_OF_TIME_MS, Round, iter_rounds
from oo_ml.policies import get_policy
from oo_ml.store.base import DecisionRecord, FeedbackRecord, Store

__all__ = [
    "FLAT_COLUMNS",
    "FORMATS",
    "ExportSummary",
    "dsjson_event",
    "export_log",
    "flat_row",
    "write_csv",
    "write_dsjson",
    "write_parquet",
]

FORMATS = ("dsjson", "csv", "parquet")

FLAT_COLUMNS = (
    "event_id",
    "user_id",
    "policy",
    "created_ms",
    "created_at",
    "hour_of_day",
    "day_of_week",
    "n_candidates",
    "chosen_index",
    "chosen_id",
    "chosen_source_id",
    "chosen_is_overdue",
    "chosen_task_age_days",
    "chosen_priority",
    "chosen_source",
    "chosen_score",
    "action",
    "dwell_ms",
    "reward",
    "reward_rule",
    "feedback_origin",
    "feedback_ms",
    "pscore",
    "probabilities",
    "encoder",
    "features",
)
"""The flat table's columns, in order. ``created_at`` is ``created_ms`` as ISO-8601 UTC;
``action`` … ``feedback_ms`` are empty for a round without feedback; ``pscore`` is the logged
probability of the chosen candidate."""

PARQUET_BATCH_ROWS = 1000


@dataclass
class ExportSummary:
    """What an export wrote and what it skipped, and why."""

    format: str
    written: int = 0
    written_unlabeled: int = 0
    skipped_unlabeled: int = 0
    skipped_legacy: int = 0

    def describe(self) -> str:
        text = f"wrote {self.written} {self.format} rows"
        if self.written_unlabeled:
            text += f" ({self.written_unlabeled} without feedback, unlabeled)"
        skipped = []
        if self.skipped_unlabeled:
            skipped.append(
                f"{self.skipped_unlabeled} without feedback yet (--include-unlabeled keeps them)"
            )
        if self.skipped_legacy:
            skipped.append(f"{self.skipped_legacy} legacy records without logged probabilities")
        return text + ("; skipped " + ", ".join(skipped) if skipped else "; skipped none")


def _select(
    rounds: Iterable[Round], summary: ExportSummary, include_unlabeled: bool
) -> Iterator[Round]:
    for decision, feedback in rounds:
        if decision.probabilities is None:
            summary.skipped_legacy += 1
            continue
        if feedback is None:
            if not include_unlabeled:
                summary.skipped_unlabeled += 1
                continue
            summary.written_unlabeled += 1
        summary.written += 1
        yield decision, feedback


# -- DSJSON --------------------------------------------------------------------------------


def _timestamp(ms: int) -> str:
    """The Decision Service's timestamp: ``2021-02-04T16:31:29.2460000Z`` (7 fraction digits)."""
    seconds, millis = divmod(ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}0000Z"


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _encoder_of(policy: str, dim: int) -> tuple[str, tuple[str, ...]]:
    """The encoder name and labels of a logged policy; generic ``f<j>`` labels for a policy
    that is no longer published (or whose encoder no longer has this width)."""
    try:
        encoder = get_policy(policy).encoder
    except UnknownPolicyError:
        return "", tuple(f"f{j}" for j in range(dim))
    if encoder.dim != dim:
        return "", tuple(f"f{j}" for j in range(dim))
    return encoder.name, encoder.labels


def _context_namespace(decision: DecisionRecord) -> dict[str, float | int]:
    hour, day = decision.context.hour_of_day, decision.context.day_of_week
    return {
        "hour": hour,
        "day": day,
        "hour_sin": math.sin(2 * math.pi * hour / 24),
        "hour_cos": math.cos(2 * math.pi * hour / 24),
        "dow_sin": math.sin(2 * math.pi * day / 7),
        "dow_cos": math.cos(2 * math.pi * day / 7),
        "weekend": int(day >= 5),
        "morning": int(5 <= hour < 12),
        "evening": int(hour >= 18),
    }


def dsjson_event(decision: DecisionRecord, feedback: FeedbackRecord | None) -> dict[str, Any]:
    """One round as a Decision Service event (see the module docstring); keys in the order
    the Decision Service writes them, which VW's log tools rely on."""
    probabilities = decision.probabilities
    if probabilities is None:
        raise ValidationError("probabilities", "a legacy record has no logged probabilities")
    chosen = decision.chosen
    scores = decision.scores.tolist()
    others = [i for i in range(len(decision.candidates)) if i != chosen]
    order = [chosen, *sorted(others, key=lambda i: (-scores[i], i))]
    _, labels = _encoder_of(decision.policy, decision.features.shape[1])
    multi = []
    for candidate, row in zip(decision.candidates, decision.features.tolist(), strict=True):
        multi.append(
            {
                "_tag": candidate.id,
                "Task": {
                    "overdue": int(candidate.is_overdue),
                    "age": candidate.task_age_days,
                    "priority": candidate.priority,
                    "source": candidate.source,
                },
                "X": {label: value for label, value in zip(labels, row, strict=True) if value},
            }
        )
    event: dict[str, Any] = {}
    if feedback is not None:
        cost = 0.0 - feedback.reward  # 0.0 - x, not -x: a zero reward is a cost of 0.0, not -0.0
        event |= {
            "_label_cost": cost,
            "_label_probability": float(probabilities[chosen]),
            "_label_Action": chosen + 1,
            "_labelIndex": chosen,
        }
    event |= {
        "Timestamp": _timestamp(decision.created_ms),
        "Version": "1",
        "EventId": decision.event_id,
        "a": [i + 1 for i in order],
        "c": {
            "User": {"id": decision.user_id},
            "Context": _context_namespace(decision),
            "_multi": multi,
        },
        "p": [float(probabilities[i]) for i in order],
        "VWState": {"m": decision.policy},
    }
    if feedback is not None:
        event["_original_label_cost"] = event["_label_cost"]
    return event


def write_dsjson(
    rounds: Iterable[Round], out: TextIO, *, include_unlabeled: bool = False
) -> ExportSummary:
    """Write ``rounds`` to ``out`` as DSJSON, one compact JSON object per line."""
    summary = ExportSummary("dsjson")
    for decision, feedback in _select(rounds, summary, include_unlabeled):
        event = dsjson_event(decision, feedback)
        out.write(json.dumps(event, separators=(",", ":"), allow_nan=False))
        out.write("\n")
    return summary


# -- flat table ----------------------------------------------------------------------------


def flat_row(decision: DecisionRecord, feedback: FeedbackRecord | None) -> dict[str, Any]:
    """One round as a flat row keyed by :data:`FLAT_COLUMNS`: plain Python values, ``None``
    where there is no value, ``created_at`` as ISO-8601 text and lists as lists."""
    probabilities = decision.probabilities
    if probabilities is None:
        raise ValidationError("probabilities", "a legacy record has no logged probabilities")
    chosen = decision.chosen
    candidate = decision.candidates[chosen]
    encoder, _ = _encoder_of(decision.policy, decision.features.shape[1])
    return {
        "event_id": decision.event_id,
        "user_id": decision.user_id,
        "policy": decision.policy,
        "created_ms": decision.created_ms,
        "created_at": _iso(decision.created_ms),
        "hour_of_day": decision.context.hour_of_day,
        "day_of_week": decision.context.day_of_week,
        "n_candidates": len(decision.candidates),
        "chosen_index": chosen,
        "chosen_id": candidate.id,
        "chosen_source_id": decision.source_ids[chosen],
        "chosen_is_overdue": candidate.is_overdue,
        "chosen_task_age_days": candidate.task_age_days,
        "chosen_priority": candidate.priority,
        "chosen_source": candidate.source,
        "chosen_score": float(decision.scores[chosen]),
        "action": None if feedback is None else feedback.action,
        "dwell_ms": None if feedback is None else feedback.dwell_ms,
        "reward": None if feedback is None else feedback.reward,
        "reward_rule": None if feedback is None else feedback.reward_rule,
        "feedback_origin": None if feedback is None else feedback.origin,
        "feedback_ms": None if feedback is None else feedback.created_ms,
        "pscore": float(probabilities[chosen]),
        "probabilities": probabilities.tolist(),
        "encoder": encoder or None,
        "features": decision.features[chosen].tolist(),
    }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value)
    return value


def write_csv(
    rounds: Iterable[Round], out: TextIO, *, include_unlabeled: bool = False
) -> ExportSummary:
    """Write ``rounds`` to ``out`` as CSV with a header row (open files with ``newline=""``)."""
    summary = ExportSummary("csv")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FLAT_COLUMNS)
    for decision, feedback in _select(rounds, summary, include_unlabeled):
        row = flat_row(decision, feedback)
        writer.writerow([_csv_cell(row[column]) for column in FLAT_COLUMNS])
    return summary


def _pyarrow() -> tuple[Any, Any]:
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ImportError(
            "Parquet export needs pyarrow, which is not installed; install the 'export' "
            "extra: pip install 'oo-ml[export]'"
        ) from exc


def _parquet_schema(pa: Any) -> Any:
    types = {
        "created_ms": pa.int64(),
        "created_at": pa.timestamp("ms", tz="UTC"),
        "hour_of_day": pa.int8(),
        "day_of_week": pa.int8(),
        "n_candidates": pa.int32(),
        "chosen_index": pa.int32(),
        "chosen_is_overdue": pa.bool_(),
        "chosen_task_age_days": pa.float64(),
        "chosen_priority": pa.int8(),
        "chosen_score": pa.float64(),
        "dwell_ms": pa.int64(),
        "reward": pa.float64(),
        "feedback_ms": pa.int64(),
        "pscore": pa.float64(),
        "probabilities": pa.list_(pa.float64()),
        "features": pa.list_(pa.float64()),
    }
    return pa.schema([(column, types.get(column, pa.string())) for column in FLAT_COLUMNS])


def write_parquet(
    rounds: Iterable[Round],
    path: Path,
    *,
    include_unlabeled: bool = False,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> ExportSummary:
    """Write ``rounds`` to the Parquet file ``path``, ``batch_rows`` rows per row group.

    ``created_at`` is a UTC timestamp in milliseconds; the lists are ``list<double>``.
    """
    pa, pq = _pyarrow()
    schema = _parquet_schema(pa)
    summary = ExportSummary("parquet")
    columns: dict[str, list[Any]] = {column: [] for column in FLAT_COLUMNS}

    def flush(writer: Any) -> None:
        writer.write_table(pa.Table.from_pydict(columns, schema=schema))
        for values in columns.values():
            values.clear()

    with pq.ParquetWriter(str(path), schema) as writer:
        for decision, feedback in _select(rounds, summary, include_unlabeled):
            row = flat_row(decision, feedback)
            row["created_at"] = decision.created_ms
            for column in FLAT_COLUMNS:
                columns[column].append(row[column])
            if len(columns["event_id"]) >= batch_rows:
                flush(writer)
        if columns["event_id"]:
            flush(writer)
    return summary


def export_log(
    store: Store,
    fmt: str,
    output: Path | None = None,
    *,
    since_ms: int = 0,
    until_ms: int = END_OF_TIME_MS,
    policies: Sequence[str] | None = None,
    include_unlabeled: bool = False,
) -> ExportSummary:
    """Export the decisions made in ``[since_ms, until_ms)`` (of ``policies``, if given) in
    ``fmt`` to ``output``, or to standard output for the text formats when it is ``None``."""
    if fmt not in FORMATS:
        raise ValidationError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        if output is None:
            raise ValidationError("output", "Parquet is binary: give a file to write")
        _pyarrow()  # fail before reading the log when pyarrow is missing
    rounds = iter_rounds(store, since_ms=since_ms, until_ms=until_ms, policies=policies)
    # The first page is read before any output is opened, so bad arguments leave no file.
    first = next(rounds, None)
    if first is not None:
        rounds = itertools.chain([first], rounds)
    if output is None:
        writer = write_dsjson if fmt == "dsjson" else write_csv
        summary = writer(rounds, sys.stdout, include_unlabeled=include_unlabeled)
        sys.stdout.flush()
        return summary
    # Written beside the target and renamed when complete: a failed export leaves no half file.
    partial = output.with_name(f".{output.name}.partial")
    try:
        if fmt == "parquet":
            summary = write_parquet(rounds, partial, include_unlabeled=include_unlabeled)
        else:
            writer = write_dsjson if fmt == "dsjson" else write_csv
            with partial.open("w", encoding="utf-8", newline="") as out:
                summary = writer(rounds, out, include_unlabeled=include_unlabeled)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return summary
