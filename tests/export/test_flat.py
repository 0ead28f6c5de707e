"""The flat exports: one row per decision, read back with the csv module and with pyarrow
to exactly the values that were logged."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oo_ml.ope.export import FLAT_COLUMNS, export_log, write_csv, write_parquet
from oo_ml.ope.log import iter_rounds
from oo_ml.store.base import DecisionRecord, FeedbackRecord
from oo_ml.store.sql import SqlStore

from .conftest import SimulatedLog

INTS = {
    "created_ms", "hour_of_day", "day_of_week", "n_candidates", "chosen_index",
    "chosen_priority", "dwell_ms", "feedback_ms",
}  # fmt: skip
FLOATS = {"chosen_task_age_days", "chosen_score", "reward", "pscore"}
LISTS = {"probabilities", "features"}
BOOLS = {"chosen_is_overdue"}


def expected(decision: DecisionRecord, feedback: FeedbackRecord | None) -> dict[str, Any]:
    """The row a round should become, from the records the engine returned."""
    assert decision.probabilities is not None
    chosen = decision.chosen
    candidate = decision.candidates[chosen]
    return {
        "event_id": decision.event_id,
        "user_id": decision.user_id,
        "policy": decision.policy,
        "created_ms": decision.created_ms,
        "created_at": datetime.fromtimestamp(decision.created_ms / 1000, UTC),
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
        "action": feedback and feedback.action,
        "dwell_ms": feedback and feedback.dwell_ms,
        "reward": feedback and feedback.reward_milli / 1000,
        "reward_rule": feedback and feedback.reward_rule,
        "feedback_origin": feedback and feedback.origin,
        "feedback_ms": feedback and feedback.created_ms,
        "pscore": float(decision.probabilities[chosen]),
        "probabilities": [float(p) for p in decision.probabilities],
        "encoder": "v2" if decision.policy == "egreedy-v1" else "v3",
        "features": [float(x) for x in decision.features[chosen]],
    }


def read_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == FLAT_COLUMNS
    rows = []
    for raw in reader:
        row: dict[str, Any] = {}
        for column, cell in raw.items():
            if cell == "":
                row[column] = None
            elif column in INTS:
                row[column] = int(cell)
            elif column in FLOATS:
                row[column] = float(cell)
            elif column in LISTS:
                row[column] = json.loads(cell)
            elif column in BOOLS:
                row[column] = {"True": True, "False": False}[cell]
            elif column == "created_at":
                row[column] = datetime.fromisoformat(cell)
            else:
                row[column] = cell
        rows.append(row)
    return rows


def read_parquet(path: Path) -> list[dict[str, Any]]:
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(path)
    assert tuple(table.column_names) == FLAT_COLUMNS
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def test_csv_round_trips_every_value_exactly(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    path = tmp_path / "log.csv"
    summary = export_log(log_store, "csv", path)
    rows = read_csv(path.read_text(encoding="utf-8"))
    assert rows == [expected(d, f) for d, f in sim_log.labelled()]
    assert summary.written == len(rows)


def test_parquet_round_trips_every_value_exactly_with_real_types(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow")
    path = tmp_path / "log.parquet"
    summary = export_log(log_store, "parquet", path, include_unlabeled=True)
    rows = read_parquet(path)
    rounds = [(d, f) for d, f in sim_log.rounds if d.probabilities is not None]
    assert rows == [expected(d, f) for d, f in rounds]
    assert summary.written == len(rows)
    assert summary.written_unlabeled == sum(1 for _, f in rounds if f is None) > 0
    schema = pytest.importorskip("pyarrow.parquet").read_schema(path)
    assert schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("features").type == pa.list_(pa.float64())
    assert schema.field("reward").type == pa.float64()


def test_csv_with_rounds_without_feedback_leaves_the_outcome_empty(
    sim_log: SimulatedLog, log_store: SqlStore
) -> None:
    out = io.StringIO()
    write_csv(iter_rounds(log_store), out, include_unlabeled=True)
    rows = read_csv(out.getvalue())
    rounds = [(d, f) for d, f in sim_log.rounds if d.probabilities is not None]
    assert rows == [expected(d, f) for d, f in rounds]
    assert any(row["reward"] is None for row in rows)


def test_parquet_is_written_in_row_groups_of_the_batch_size(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "batched.parquet"
    summary = write_parquet(iter_rounds(log_store, page=16), path, batch_rows=25)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-summary.written // 25) > 1
    assert read_parquet(path) == [expected(d, f) for d, f in sim_log.labelled()]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_since_and_until_select_the_decisions_made_in_between(
    fmt: str, sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    labelled = sim_log.labelled()
    since = labelled[10][0].created_ms
    until = labelled[50][0].created_ms
    path = tmp_path / f"window.{fmt}"
    export_log(log_store, fmt, path, since_ms=since, until_ms=until, policies=["ucb-ix1"])
    rows = read_csv(path.read_text(encoding="utf-8")) if fmt == "csv" else read_parquet(path)
    wanted = [
        expected(d, f)
        for d, f in labelled
        if since <= d.created_ms < until and d.policy == "ucb-ix1"
    ]
    assert len(wanted) > 10
    assert rows == wanted


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_empty_window_still_writes_the_columns(
    fmt: str, log_store: SqlStore, tmp_path: Path
) -> None:
    path = tmp_path / f"empty.{fmt}"
    summary = export_log(log_store, fmt, path, since_ms=0, until_ms=1)
    assert summary.written == 0
    rows = read_csv(path.read_text(encoding="utf-8")) if fmt == "csv" else read_parquet(path)
    assert rows == []
