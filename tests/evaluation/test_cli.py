"""``oo-ml ope`` end to end on a real SQLite database."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from oo_ml.cli import app
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore

from .world import play_engine, seeded_engine


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ope') / 'oo-ml.db'}"
    upgrade(url)
    store = SqlStore(url, sqlite_synchronous="OFF")
    # Rank + feedback read the clock once each: one decision a second.
    engine = seeded_engine(store, "egreedy-v1", start=1_764_000_000, tick=0.5, seed=11)
    try:
        play_engine(engine, users=5, rounds=40, seed=2)
    finally:
        store.close()
    return url


def run(database: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ope", *args], env={"OO_ML_DATABASE_URL": database})
    return result.exit_code, result.output


def test_json_output_holds_every_estimate(database: str) -> None:
    code, out = run(database, "--policy", "ucb-ix1", "--policy", "egreedy-v1", "--json")
    assert code == 0, out
    results = json.loads(out)
    assert [r["policy"] for r in results] == ["ucb-ix1", "egreedy-v1"]
    for result in results:
        assert result["rounds"] == 200
        assert set(result["estimates"]) >= {"ips", "snips", "dm", "dr"}
        for est in result["estimates"].values():
            assert est["lower"] <= est["value"] <= est["upper"]
    assert results[1]["probabilities"] == {"logged": 200}
    assert results[1]["reward_model"] == {"logged": 200}  # its means, logged on SQLite
    assert results[0]["reward_model"] == {"replayed": 200}
    assert results[1]["estimates"]["ips"]["value"] == pytest.approx(results[1]["logged"]["value"])


def test_the_table_names_the_estimators_and_the_logged_mean(database: str) -> None:
    code, out = run(database, "--policy", "ucb-ix1")
    assert code == 0, out
    for label in (
        "logged (actual)",
        "ips",
        "snips",
        "dm",
        "dr",
        "probabilities: replayed 200",
        "expected rewards (DM, DR): replayed 200",
    ):
        assert label in out


def test_since_and_until_select_a_window(database: str) -> None:
    # Decisions are one second apart from 1 764 000 000 s: the first 50 are before +50 s.
    code, out = run(database, "-p", "ucb-ix1", "--until", "2025-11-24T16:00:50", "--json")
    assert code == 0, out
    assert json.loads(out)[0]["rounds"] == 50
    code, out = run(database, "-p", "ucb-ix1", "--since", "1764000150000", "--json")
    assert json.loads(out)[0]["rounds"] == 50


def test_bootstrap_intervals_are_percentile_ones_around_the_same_estimates(database: str) -> None:
    code, out = run(database, "-p", "ucb-ix1", "--json")
    assert code == 0, out
    normal = json.loads(out)[0]["estimates"]
    code, out = run(database, "-p", "ucb-ix1", "--bootstrap", "200", "--seed", "3", "--json")
    assert code == 0, out
    resampled = json.loads(out)[0]["estimates"]
    assert set(resampled) == set(normal)
    for name, est in resampled.items():
        assert est["method"] == "bootstrap", name
        assert est["value"] == normal[name]["value"]  # the point estimate does not move
        assert est["lower"] <= est["value"] <= est["upper"]
        assert (est["lower"], est["upper"]) != (normal[name]["lower"], normal[name]["upper"])
    again = run(database, "-p", "ucb-ix1", "--bootstrap", "200", "--seed", "3", "--json")[1]
    assert json.loads(again)[0]["estimates"] == resampled  # seeded: the same intervals
    code, out = run(database, "-p", "ucb-ix1", "--bootstrap", "200")
    assert code == 0, out
    assert "bootstrap" in out  # the table says which interval it shows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "ucb-ix1", "--bootstrap", "1"], "bootstrap"),
        (["--policy", "nope-v9"], "nope-v9"),
        (["--policy", "ucb-ix1", "--since", "last tuesday"], "since"),
        (["--policy", "ucb-ix1", "--reward-rule", "nope"], "nope"),
    ],
)
def test_bad_arguments_are_named(database: str, args: list[str], message: str) -> None:
    code, out = run(database, *args)
    assert code == 2
    assert message in out
