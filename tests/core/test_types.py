"""Validation of the core value types: every bad input is refused with the field that is wrong."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from oo_ml.errors import OOMLError, ValidationError
from oo_ml.types import (
    MAX_ID_LENGTH,
    MAX_TASK_AGE_DAYS,
    Candidate,
    Context,
    Decision,
    check_candidates,
)

NAN = float("nan")
INF = float("inf")


def _context(**overrides: Any) -> Context:
    return Context(**{"hour_of_day": 12, "day_of_week": 0, **overrides})


def _candidate(**overrides: Any) -> Candidate:
    fields = {"id": "t1", "is_overdue": False, "task_age_days": 0.0, "priority": 1}
    return Candidate(**{**fields, **overrides})


# One row per refused input: (constructor, overrides, field the error must name, message part).
INVALID = [
    # Context.hour_of_day: an int from 0 to 23, nothing else.
    pytest.param(_context, {"hour_of_day": -1}, "hour_of_day", "between 0 and 23", id="hour-neg"),
    pytest.param(_context, {"hour_of_day": 24}, "hour_of_day", "between 0 and 23", id="hour-24"),
    pytest.param(_context, {"hour_of_day": 99}, "hour_of_day", "between 0 and 23", id="hour-99"),
    pytest.param(_context, {"hour_of_day": 12.0}, "hour_of_day", "integer", id="hour-float"),
    pytest.param(_context, {"hour_of_day": NAN}, "hour_of_day", "integer", id="hour-nan"),
    pytest.param(_context, {"hour_of_day": INF}, "hour_of_day", "integer", id="hour-inf"),
    pytest.param(_context, {"hour_of_day": "12"}, "hour_of_day", "integer", id="hour-str"),
    pytest.param(_context, {"hour_of_day": True}, "hour_of_day", "integer", id="hour-bool"),
    pytest.param(_context, {"hour_of_day": None}, "hour_of_day", "integer", id="hour-none"),
    pytest.param(
        _context, {"hour_of_day": np.float64(3)}, "hour_of_day", "integer", id="hour-np-float"
    ),
    pytest.param(
        _context, {"hour_of_day": np.int64(24)}, "hour_of_day", "between", id="hour-np-int-24"
    ),
    # Context.day_of_week: an int from 0 (Monday) to 6 (Sunday).
    pytest.param(_context, {"day_of_week": -1}, "day_of_week", "between 0 and 6", id="dow-neg"),
    pytest.param(_context, {"day_of_week": 7}, "day_of_week", "between 0 and 6", id="dow-7"),
    pytest.param(_context, {"day_of_week": 3.0}, "day_of_week", "integer", id="dow-float"),
    pytest.param(_context, {"day_of_week": "3"}, "day_of_week", "integer", id="dow-str"),
    pytest.param(_context, {"day_of_week": False}, "day_of_week", "integer", id="dow-bool"),
    # Candidate.id: a string of 1 to 256 characters.
    pytest.param(_candidate, {"id": ""}, "id", "1 to 256 characters", id="id-empty"),
    pytest.param(_candidate, {"id": "x" * 257}, "id", "1 to 256 characters", id="id-257"),
    pytest.param(_candidate, {"id": 7}, "id", "string", id="id-int"),
    pytest.param(_candidate, {"id": None}, "id", "string", id="id-none"),
    # Candidate.is_overdue: a real boolean; truthy stand-ins are client bugs.
    pytest.param(_candidate, {"is_overdue": 1}, "is_overdue", "boolean", id="overdue-1"),
    pytest.param(_candidate, {"is_overdue": 0}, "is_overdue", "boolean", id="overdue-0"),
    pytest.param(_candidate, {"is_overdue": 1.0}, "is_overdue", "boolean", id="overdue-float"),
    pytest.param(_candidate, {"is_overdue": "true"}, "is_overdue", "boolean", id="overdue-str"),
    pytest.param(_candidate, {"is_overdue": None}, "is_overdue", "boolean", id="overdue-none"),
    # Candidate.task_age_days: a finite number within a century either way.
    pytest.param(_candidate, {"task_age_days": NAN}, "task_age_days", "finite", id="age-nan"),
    pytest.param(_candidate, {"task_age_days": INF}, "task_age_days", "finite", id="age-inf"),
    pytest.param(_candidate, {"task_age_days": -INF}, "task_age_days", "finite", id="age-neg-inf"),
    pytest.param(
        _candidate, {"task_age_days": np.float32("nan")}, "task_age_days", "finite", id="age-np-nan"
    ),
    pytest.param(
        _candidate, {"task_age_days": 36_500.001}, "task_age_days", "within", id="age-over-max"
    ),
    pytest.param(
        _candidate, {"task_age_days": -36_501}, "task_age_days", "within", id="age-under-min"
    ),
    pytest.param(_candidate, {"task_age_days": 1e20}, "task_age_days", "within", id="age-1e20"),
    pytest.param(_candidate, {"task_age_days": "3"}, "task_age_days", "number", id="age-str"),
    pytest.param(_candidate, {"task_age_days": True}, "task_age_days", "number", id="age-bool"),
    pytest.param(_candidate, {"task_age_days": None}, "task_age_days", "number", id="age-none"),
    # Candidate.priority: Todoist's int 1 to 4.
    pytest.param(_candidate, {"priority": 0}, "priority", "between 1 and 4", id="priority-0"),
    pytest.param(_candidate, {"priority": 5}, "priority", "between 1 and 4", id="priority-5"),
    pytest.param(_candidate, {"priority": 2.0}, "priority", "integer", id="priority-float"),
    pytest.param(_candidate, {"priority": 2.5}, "priority", "integer", id="priority-2.5"),
    pytest.param(_candidate, {"priority": "2"}, "priority", "integer", id="priority-str"),
    pytest.param(_candidate, {"priority": True}, "priority", "integer", id="priority-bool"),
    pytest.param(_candidate, {"priority": NAN}, "priority", "integer", id="priority-nan"),
    # Candidate.source: a string, at most 256 characters.
    pytest.param(_candidate, {"source": 5}, "source", "string", id="source-int"),
    pytest.param(_candidate, {"source": None}, "source", "string", id="source-none"),
    pytest.param(_candidate, {"source": "s" * 257}, "source", "256", id="source-257"),
]


@pytest.mark.parametrize(("make", "overrides", "field", "message"), INVALID)
def test_invalid_input_is_refused_naming_the_field(
    make: Any, overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        make(**overrides)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_validation_error_is_a_value_error_and_an_oo_ml_error() -> None:
    with pytest.raises(ValidationError) as caught:
        _context(hour_of_day=24)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, OOMLError)


def test_task_age_too_large_for_a_float_is_refused_as_a_validation_error() -> None:
    # A JSON body can carry a 400-digit integer; it must be a 422, not an OverflowError (500).
    with pytest.raises(ValidationError) as caught:
        _candidate(task_age_days=10**400)
    assert caught.value.field == "task_age_days"


# --- accepted values ---------------------------------------------------------------------------


@pytest.mark.parametrize("hour", [0, 23])
def test_hour_at_either_end_of_the_day_is_accepted(hour: int) -> None:
    assert _context(hour_of_day=hour).hour_of_day == hour


@pytest.mark.parametrize("day", [0, 6])
def test_day_of_week_at_either_end_of_the_week_is_accepted(day: int) -> None:
    assert _context(day_of_week=day).day_of_week == day


def test_day_of_week_defaults_to_monday() -> None:
    assert Context(9).day_of_week == 0


@pytest.mark.parametrize("priority", [1, 2, 3, 4])
def test_every_todoist_priority_is_accepted(priority: int) -> None:
    assert _candidate(priority=priority).priority == priority


@pytest.mark.parametrize("age", [-MAX_TASK_AGE_DAYS, -2.5, 0, 45, MAX_TASK_AGE_DAYS])
def test_task_age_within_a_century_either_way_is_accepted(age: float) -> None:
    assert _candidate(task_age_days=age).task_age_days == age


def test_max_task_age_is_a_century_of_days() -> None:
    assert MAX_TASK_AGE_DAYS == 36_500


def test_integer_task_age_is_stored_as_a_float() -> None:
    age = _candidate(task_age_days=3).task_age_days
    assert type(age) is float
    assert age == 3.0


def test_numpy_ints_are_accepted_and_stored_as_python_ints() -> None:
    context = Context(np.int64(23), np.uint8(6))
    candidate = _candidate(priority=np.int8(4))
    assert (context.hour_of_day, context.day_of_week, candidate.priority) == (23, 6, 4)
    assert type(context.hour_of_day) is int
    assert type(context.day_of_week) is int
    assert type(candidate.priority) is int


def test_numpy_float_task_age_is_accepted_and_stored_as_a_python_float() -> None:
    age = _candidate(task_age_days=np.float32(1.5)).task_age_days
    assert type(age) is float
    assert age == 1.5


def test_numpy_bool_overdue_is_accepted_and_stored_as_a_python_bool() -> None:
    overdue = _candidate(is_overdue=np.bool_(True)).is_overdue
    assert overdue is True


def test_id_of_exactly_max_length_is_accepted() -> None:
    assert MAX_ID_LENGTH == 256
    assert len(_candidate(id="x" * 256).id) == 256


def test_candidate_source_defaults_to_other() -> None:
    assert Candidate("t").source == "other"


def test_context_is_frozen() -> None:
    context = _context()
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.hour_of_day = 3  # type: ignore[misc]


def test_candidate_is_frozen() -> None:
    candidate = _candidate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.priority = 4  # type: ignore[misc]


# --- check_candidates --------------------------------------------------------------------------


def test_check_candidates_refuses_an_empty_list() -> None:
    with pytest.raises(ValidationError, match="must not be empty") as caught:
        check_candidates([])
    assert caught.value.field == "candidates"


def test_check_candidates_refuses_more_than_the_maximum() -> None:
    candidates = [_candidate(id=f"t{i}") for i in range(4)]
    with pytest.raises(ValidationError, match="at most 3 allowed, got 4") as caught:
        check_candidates(candidates, max_candidates=3)
    assert caught.value.field == "candidates"


def test_check_candidates_accepts_exactly_the_maximum() -> None:
    check_candidates([_candidate(id=f"t{i}") for i in range(3)], max_candidates=3)


def test_check_candidates_without_a_maximum_accepts_a_long_list() -> None:
    check_candidates([_candidate(id=f"t{i}") for i in range(1000)])


def test_check_candidates_names_the_index_of_a_duplicate_id() -> None:
    candidates = [_candidate(id="a"), _candidate(id="b"), _candidate(id="a")]
    with pytest.raises(ValidationError, match="duplicate candidate id 'a'") as caught:
        check_candidates(candidates)
    assert caught.value.field == "candidates[2].id"


def test_check_candidates_names_the_first_repeat_when_several_ids_repeat() -> None:
    ids = ["a", "b", "c", "b", "a"]
    with pytest.raises(ValidationError) as caught:
        check_candidates([_candidate(id=i) for i in ids])
    assert caught.value.field == "candidates[3].id"


def test_check_candidates_treats_ids_differing_only_in_case_as_distinct() -> None:
    check_candidates([_candidate(id="Task"), _candidate(id="task")])


class _LooksLikeACandidate:
    id = "b"


@pytest.mark.parametrize(
    "intruder",
    [pytest.param({"id": "b"}, id="dict"), pytest.param(_LooksLikeACandidate(), id="lookalike")],
)
def test_check_candidates_refuses_a_non_candidate_naming_its_index(intruder: object) -> None:
    # check_candidates' docstring promises to refuse non-candidates.
    with pytest.raises(ValidationError) as caught:
        check_candidates([_candidate(id="a"), intruder])  # type: ignore[list-item]
    assert caught.value.field.startswith("candidates[1]")


# --- ValidationError.at ------------------------------------------------------------------------


def test_at_joins_a_field_name_with_a_dot() -> None:
    error = ValidationError("priority", "must be between 1 and 4, got 9").at("candidates[3]")
    assert error.field == "candidates[3].priority"


def test_at_joins_an_index_without_a_dot() -> None:
    assert ValidationError("[2].id", "duplicate").at("candidates").field == "candidates[2].id"


def test_at_on_an_empty_field_gives_the_prefix_alone() -> None:
    assert ValidationError("", "missing").at("context").field == "context"


def test_at_applied_twice_builds_the_full_path_from_the_inside_out() -> None:
    error = ValidationError("id", "must be a string").at("[0]").at("candidates")
    assert error.field == "candidates[0].id"


def test_at_keeps_the_message_and_puts_the_new_path_in_str() -> None:
    error = ValidationError("hour_of_day", "must be between 0 and 23, got 99").at("context")
    assert error.message == "must be between 0 and 23, got 99"
    assert str(error) == "context.hour_of_day: must be between 0 and 23, got 99"


def test_at_returns_a_new_error_and_leaves_the_original_alone() -> None:
    original = ValidationError("priority", "bad")
    moved = original.at("candidates[0]")
    assert moved is not original
    assert isinstance(moved, ValidationError)
    assert original.field == "priority"


# --- Decision ----------------------------------------------------------------------------------


def _decision() -> Decision:
    return Decision(
        policy="linucb-v1",
        chosen=1,
        candidate_ids=("a", "b", "c"),
        scores=np.array([0.25, 0.75, -0.5]),
        probabilities=np.array([0.0, 1.0, 0.0]),
        features=np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]),
        means=np.array([0.125, 0.5, -0.75]),
    )


def test_decision_exposes_the_chosen_candidate_score_and_probability() -> None:
    decision = _decision()
    assert decision.chosen_id == "b"
    assert decision.score == 0.75
    assert decision.probability == 1.0
    assert decision.chosen_features.tolist() == [2.0, 3.0]
    assert decision.draws is None


def test_decision_to_dict_survives_a_json_round_trip() -> None:
    data = _decision().to_dict()
    assert json.loads(json.dumps(data)) == {
        "policy": "linucb-v1",
        "chosen": 1,
        "candidate_ids": ["a", "b", "c"],
        "scores": [0.25, 0.75, -0.5],
        "probabilities": [0.0, 1.0, 0.0],
        "features": [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]],
        "draws": None,
        "means": [0.125, 0.5, -0.75],
    }
