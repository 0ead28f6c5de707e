"""The DSJSON export: the Decision Service's event format, read and learned from by the real
Vowpal Wabbit (``vowpalwabbit``, the ``export`` extra)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oo_ml.engine import Engine, EngineConfig
from oo_ml.features import get_encoder
from oo_ml.ope.export import dsjson_event, export_log, write_dsjson
from oo_ml.ope.log import iter_rounds
from oo_ml.store.memory import MemoryStore
from oo_ml.store.sql import SqlStore
from oo_ml.types import Candidate, Context, Outcome

from .conftest import START_S, SimulatedLog

vowpalwabbit = pytest.importorskip("vowpalwabbit")

LABEL_KEYS = ["_label_cost", "_label_probability", "_label_Action", "_labelIndex"]
EVENT_KEYS = ["Timestamp", "Version", "EventId", "a", "c", "p", "VWState"]


def exported(store: SqlStore, tmp_path: Path, **options: Any) -> list[str]:
    path = tmp_path / "log.dsjson"
    export_log(store, "dsjson", path, **options)
    return path.read_text(encoding="utf-8").splitlines()


def test_every_line_is_a_decision_service_event_of_a_labelled_round(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    lines = exported(log_store, tmp_path)
    labelled = sim_log.labelled()
    assert len(lines) == len(labelled)
    for line, (decision, feedback) in zip(lines, labelled, strict=True):
        event = json.loads(line)
        assert list(event) == [*LABEL_KEYS, *EVENT_KEYS, "_original_label_cost"]
        assert decision.probabilities is not None
        k = len(decision.candidates)
        assert event["EventId"] == decision.event_id
        assert event["Version"] == "1"
        assert event["VWState"] == {"m": decision.policy}
        stamp = datetime.strptime(event["Timestamp"], "%Y-%m-%dT%H:%M:%S.%f0Z")
        assert stamp.replace(tzinfo=UTC).timestamp() * 1000 == decision.created_ms
        # the label: cost = -reward, the chosen action 1-based and 0-based, its probability
        assert event["_label_cost"] == -feedback.reward == event["_original_label_cost"]
        assert event["_label_Action"] == decision.chosen + 1
        assert event["_labelIndex"] == decision.chosen
        assert event["_label_probability"] == decision.probabilities[decision.chosen]
        # a: every action once, the chosen first; p: their logged probabilities in that order
        assert sorted(event["a"]) == list(range(1, k + 1))
        assert event["a"][0] == event["_label_Action"]
        assert event["p"] == [decision.probabilities[a - 1] for a in event["a"]]
        assert event["p"][0] == event["_label_probability"]
        assert math.isclose(sum(event["p"]), 1.0, abs_tol=1e-9)
        scores = [decision.scores[a - 1] for a in event["a"][1:]]
        assert scores == sorted(scores, reverse=True)
        # the shared context and one object per candidate, in candidate order
        context = event["c"]
        assert context["User"] == {"id": decision.user_id}
        hour, day = decision.context.hour_of_day, decision.context.day_of_week
        assert context["Context"]["hour"] == hour
        assert context["Context"]["day"] == day
        assert context["Context"]["hour_sin"] == math.sin(2 * math.pi * hour / 24)
        assert context["Context"]["weekend"] == int(day >= 5)
        assert len(context["_multi"]) == k
        encoder = get_encoder("v2" if decision.policy == "egreedy-v1" else "v3")
        for action, candidate, row in zip(
            context["_multi"], decision.candidates, decision.features, strict=True
        ):
            assert action["_tag"] == candidate.id
            assert action["Task"] == {
                "overdue": int(candidate.is_overdue),
                "age": candidate.task_age_days,
                "priority": candidate.priority,
                "source": candidate.source,
            }
            nonzero = {label: v for label, v in zip(encoder.labels, row, strict=True) if v}
            assert action["X"] == nonzero
        assert set(context) == {"User", "Context", "_multi"}


def test_legacy_records_and_rounds_without_feedback_are_skipped_and_counted(
    sim_log: SimulatedLog, log_store: SqlStore
) -> None:
    out = io.StringIO()
    summary = write_dsjson(iter_rounds(log_store), out)
    unanswered = sum(1 for _, f in sim_log.rounds if f is None)
    assert unanswered > 0
    assert summary.skipped_legacy == len(sim_log.legacy_ids) == 1
    assert summary.skipped_unlabeled == unanswered
    assert summary.written == len(sim_log.labelled()) == len(out.getvalue().splitlines())
    assert "1 legacy" in summary.describe()


def test_included_rounds_without_feedback_have_no_label(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    lines = exported(log_store, tmp_path, include_unlabeled=True)
    rounds = [(d, f) for d, f in sim_log.rounds if d.probabilities is not None]
    assert len(lines) == len(rounds)
    for line, (decision, feedback) in zip(lines, rounds, strict=True):
        event = json.loads(line)
        if feedback is None:
            assert list(event) == EVENT_KEYS
            assert event["a"][0] == decision.chosen + 1
        else:
            assert event["_label_cost"] == -feedback.reward


def test_a_zero_reward_is_a_cost_of_plain_zero(sim_log: SimulatedLog) -> None:
    decision, feedback = sim_log.labelled()[0]
    event = dsjson_event(decision, replace(feedback, reward_milli=0))
    assert json.dumps(event["_label_cost"]) == "0.0"


def test_vowpal_wabbit_parses_every_line_and_finds_the_label_on_the_chosen_action(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    lines = exported(log_store, tmp_path, include_unlabeled=True)
    workspace = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --quiet")
    cb = vowpalwabbit.LabelType.CONTEXTUAL_BANDIT
    try:
        for line in lines:
            event = json.loads(line)
            examples = workspace.parse(line)
            assert len(examples) == 1 + len(event["c"]["_multi"])  # shared + one per action
            labels = [e.get_label(cb).costs for e in examples[1:]]
            if "_labelIndex" not in event:
                assert labels == [[]] * len(labels)
            else:
                for i, costs in enumerate(labels):
                    if i != event["_labelIndex"]:
                        assert costs == []
                        continue
                    (label,) = costs
                    assert label.action == event["_label_Action"]
                    assert label.cost == pytest.approx(event["_label_cost"], abs=1e-6)
                    assert label.probability == pytest.approx(event["_label_probability"], rel=1e-6)
            for example, action in zip(examples[1:], event["c"]["_multi"], strict=True):
                # every Task feature reached VW (zero-valued features are dropped by VW)
                wanted = sum(1 for v in action["Task"].values() if v != 0)
                assert example.num_features_in("T") == wanted
            workspace.finish_example(examples)
    finally:
        workspace.finish()


def test_vowpal_wabbit_reads_the_whole_file_with_its_own_driver(
    sim_log: SimulatedLog, log_store: SqlStore, tmp_path: Path
) -> None:
    lines = exported(log_store, tmp_path)
    workspace = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson --strict_parse -d {tmp_path / 'log.dsjson'} --quiet"
    )
    try:
        workspace.run_parser()
        assert workspace.get_weighted_examples() == len(lines) == len(sim_log.labelled())
    finally:
        workspace.finish()


def email_mass(lines: list[str], *, strip_source: bool) -> float:
    """Learn the log with VW, then the mean probability its policy gives the email task."""
    workspace = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --quiet --epsilon 0.05")
    events = [json.loads(line) for line in lines]
    if strip_source:
        for event in events:
            for action in event["c"]["_multi"]:
                del action["Task"]["source"]
                action.pop("X")
    try:
        for _ in range(3):
            for event in events:
                examples = workspace.parse(json.dumps(event))
                workspace.learn(examples)
                workspace.finish_example(examples)
        masses = []
        for event in events:
            for key in ("_label_cost", "_label_probability", "_label_Action", "_labelIndex"):
                del event[key]
            examples = workspace.parse(json.dumps(event))
            pmf = workspace.predict(examples)
            workspace.finish_example(examples)
            sources = [action["_tag"].rsplit("-", 1)[1] for action in event["c"]["_multi"]]
            masses.append(pmf[sources.index("email")])
        return sum(masses) / len(masses)
    finally:
        workspace.finish()


def test_vowpal_wabbit_learns_from_the_export_that_email_tips_pay(
    log_store: SqlStore, tmp_path: Path
) -> None:
    lines = exported(log_store, tmp_path)
    # With the exported features VW's policy puts almost all its mass on the email task; the
    # same log without the source features leaves it no better than a guess among four.
    assert email_mass(lines, strip_source=False) > 0.9
    assert email_mass(lines, strip_source=True) < 0.5


def test_non_ascii_ids_and_sources_are_escaped_and_read_back_by_vowpal_wabbit() -> None:
    store = MemoryStore()
    engine = Engine(store, EngineConfig(), clock=lambda: START_S, seed_source=lambda: 5)
    candidates = [Candidate("tâche-1", source="courriel ✉"), Candidate("任务-2", priority=3)]
    decision = engine.rank("Zoë", Context(8, 6), candidates, policy="ucb-ix1")
    feedback = engine.feedback(decision.event_id, Outcome("dismiss")).feedback
    out = io.StringIO()
    write_dsjson([(decision, feedback)], out)
    line = out.getvalue().strip()
    assert line.isascii()
    event = json.loads(line)
    assert event["c"]["User"] == {"id": "Zoë"}
    assert [a["_tag"] for a in event["c"]["_multi"]] == ["tâche-1", "任务-2"]
    assert event["c"]["_multi"][0]["Task"]["source"] == "courriel ✉"
    workspace = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --quiet")
    try:
        examples = workspace.parse(line)
        assert len(examples) == 3
        workspace.learn(examples)
        workspace.finish_example(examples)
    finally:
        workspace.finish()
