"""``oo-ml export`` end to end on a real database file (and on PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oo_ml
from oo_ml.cli import app
from oo_ml.ope.export import export_log
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore

from .conftest import SimulatedLog, simulate
from .test_flat import expected, read_csv


def test_dsjson_goes_to_standard_output_and_the_summary_to_standard_error(
    sim_log: SimulatedLog, clean_env: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        "OO_ML_DATABASE_URL": sim_log.url,
        "PYTHONPATH": str(Path(oo_ml.__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "oo_ml.cli", "export", "--format", "dsjson"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["EventId"] for e in events] == [d.event_id for d, _ in sim_log.labelled()]
    unanswered = sum(1 for _, f in sim_log.rounds if f is None)
    assert f"wrote {len(events)} dsjson rows" in done.stderr
    assert f"skipped {unanswered} without feedback yet" in done.stderr
    assert "1 legacy records without logged probabilities" in done.stderr


def test_parquet_with_an_iso_window_and_a_policy(
    sim_log: SimulatedLog, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    labelled = sim_log.labelled()
    since_ms, until_ms = labelled[5][0].created_ms, labelled[40][0].created_ms
    since = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat()  # with +00:00
    until = datetime.fromtimestamp(until_ms / 1000, UTC).replace(tzinfo=None).isoformat()
    out = tmp_path / "log.parquet"
    clean_env.setenv("OO_ML_DATABASE_URL", sim_log.url)
    result = CliRunner().invoke(
        app,
        ["export", "--format", "parquet", "--output", str(out), "--since", since,
         "--until", until, "--policy", "egreedy-v1", "--policy", "no-such-policy",
         "--include-unlabeled"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    wanted = [
        d.event_id
        for d, _ in sim_log.rounds
        if since_ms <= d.created_ms < until_ms
        and d.policy == "egreedy-v1"
        and d.probabilities is not None
    ]
    assert pq.read_table(out).column("event_id").to_pylist() == wanted
    assert f"wrote {len(wanted)} parquet rows" in result.stderr
    assert list(tmp_path.iterdir()) == [out]  # no partial file left behind


def test_epoch_milliseconds_select_the_same_window_as_iso(
    sim_log: SimulatedLog, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    labelled = sim_log.labelled()
    since_ms, until_ms = labelled[3][0].created_ms, labelled[9][0].created_ms
    clean_env.setenv("OO_ML_DATABASE_URL", sim_log.url)
    out = tmp_path / "log.csv"
    args = ["export", "--format", "csv", "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--since", str(since_ms), "--until", str(until_ms)])
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [line.split(",", 1)[0] for line in lines[1:]] == [
        d.event_id for d, _ in labelled if since_ms <= d.created_ms < until_ms
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "must be one of dsjson, csv, parquet"),
        (["--format", "parquet"], "give a file with --output"),
        (["--format", "csv", "--since", "yesterday"], "since: 'yesterday' is not milliseconds"),
        (["--format", "csv", "--since", "2024-06-02", "--until", "2024-06-01"], "since"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_write_nothing(
    args: list[str],
    message: str,
    sim_log: SimulatedLog,
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    clean_env.setenv("OO_ML_DATABASE_URL", sim_log.url)
    out = tmp_path / "out.txt"
    with_output = args if args[1] == "parquet" else [*args, "--output", str(out)]
    result = CliRunner().invoke(app, ["export", *with_output])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_pyarrow_names_the_extra(
    sim_log: SimulatedLog, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("OO_ML_DATABASE_URL", sim_log.url)
    clean_env.setitem(sys.modules, "pyarrow", None)  # what an install without the extra sees
    clean_env.setitem(sys.modules, "pyarrow.parquet", None)
    out = tmp_path / "log.parquet"
    result = CliRunner().invoke(app, ["export", "--format", "parquet", "--output", str(out)])
    assert result.exit_code == 2
    assert "pip install 'oo-ml[export]'" in result.stderr
    assert not out.exists()


@pytest.mark.postgres
def test_export_from_postgresql_round_trips_like_sqlite(postgres_url: str, tmp_path: Path) -> None:
    upgrade(postgres_url)
    store = SqlStore(postgres_url)
    try:
        log = simulate(store, postgres_url, seed=7, users=2, steps=12)
        export_log(store, "csv", tmp_path / "pg.csv", include_unlabeled=True)
    finally:
        store.close()
    rows = read_csv((tmp_path / "pg.csv").read_text(encoding="utf-8"))
    assert rows == [expected(d, f) for d, f in log.rounds if d.probabilities is not None]
