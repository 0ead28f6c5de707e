"""Feature encoders: v1/v2 reproduce the existing service bit for bit, v3 lets context rank."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml import features as features_module
from oo_ml.errors import NotFoundError, RegistryError
from oo_ml.features import (
    ENCODERS,
    SOURCES,
    Encoder,
    InteractionEncoder,
    V1Encoder,
    V2Encoder,
    get_encoder,
    register_encoder,
    source_code,
)
from oo_ml.types import Candidate, Context, FloatArray

V1 = get_encoder("v1")
V2 = get_encoder("v2")
V3 = get_encoder("v3")

# Hand-derived: h/24 of a turn. 6 h = π/2, 12 h = π, 23 h = -15°: sin = -(√6-√2)/4, cos = (√6+√2)/4.
# The near-zero entries are sin(π) and cos(π/2) in double precision.
HOUR_SIN_COS = {
    0: (0.0, 1.0),
    6: (1.0, 6.123233995736766e-17),
    12: (1.2246467991473532e-16, -1.0),
    23: (-0.25881904510252157, 0.9659258262890681),
}
# d/7 of a turn: sin/cos of 0, 2π/7, 4π/7, 6π/7, 8π/7, 10π/7, 12π/7.
DOW_SIN_COS = {
    0: (0.0, 1.0),
    1: (0.7818314824680298, 0.6234898018587336),
    2: (0.9749279121818236, -0.2225209339563143),
    3: (0.4338837391175582, -0.9009688679024191),
    4: (-0.4338837391175582, -0.9009688679024191),
    5: (-0.9749279121818236, -0.2225209339563143),
    6: (-0.7818314824680298, 0.6234898018587336),
}


def _close(expected: Sequence[float] | float) -> object:
    if isinstance(expected, float | int):
        return pytest.approx(expected, rel=1e-12, abs=1e-15)
    return pytest.approx(list(expected), rel=1e-12, abs=1e-15)


def _row(encoder: Encoder, context: Context, candidate: Candidate) -> list[float]:
    matrix = encoder.encode(context, [candidate])
    assert matrix.shape == (1, encoder.dim)
    row: list[float] = matrix[0].tolist()
    return row


def _random_candidates(rng: np.random.Generator, k: int) -> list[Candidate]:
    sources = ["todoist", "Calendar", "EMAIL", "other", "slack"]
    return [
        Candidate(
            id=f"t{i}",
            is_overdue=bool(rng.integers(2)),
            task_age_days=float(rng.uniform(-45.0, 45.0)),
            priority=int(rng.integers(1, 5)),
            source=sources[int(rng.integers(len(sources)))],
        )
        for i in range(k)
    ]


# --- v1 (d=5) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hour", sorted(HOUR_SIN_COS))
def test_v1_encodes_the_hour_as_sin_and_cos_of_a_24_hour_circle(hour: int) -> None:
    row = _row(V1, Context(hour), Candidate("t"))
    assert row[:2] == _close(HOUR_SIN_COS[hour])


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        pytest.param(0, 0.0, id="0-days"),
        pytest.param(7.5, 0.25, id="7.5-days"),
        pytest.param(15, 0.5, id="15-days"),
        pytest.param(30, 1.0, id="30-days"),
        pytest.param(45, 1.0, id="45-days-clipped"),
        pytest.param(36_500, 1.0, id="century-clipped"),
    ],
)
def test_v1_age_feature_is_days_clipped_at_30_over_30(age: float, expected: float) -> None:
    assert _row(V1, Context(12), Candidate("t", task_age_days=age))[3] == _close(expected)


@pytest.mark.parametrize("age", [-0.5, -1, -15, -45, -36_500])
def test_v1_age_feature_of_a_task_not_yet_due_is_zero(age: float) -> None:
    assert _row(V1, Context(12), Candidate("t", task_age_days=age))[3] == 0.0


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(1, 0.0), (2, 0.3333333333333333), (3, 0.6666666666666666), (4, 1.0)],
)
def test_v1_priority_feature_maps_1_to_4_onto_0_to_1(priority: int, expected: float) -> None:
    assert _row(V1, Context(12), Candidate("t", priority=priority))[4] == _close(expected)


@pytest.mark.parametrize(("overdue", "expected"), [(True, 1.0), (False, 0.0)])
def test_v1_overdue_feature_is_one_or_zero(overdue: bool, expected: float) -> None:
    assert _row(V1, Context(12), Candidate("t", is_overdue=overdue))[2] == expected


@pytest.mark.parametrize(
    ("hour", "overdue", "age", "priority", "expected"),
    [
        pytest.param(0, False, 0, 1, [0.0, 1.0, 0.0, 0.0, 0.0], id="midnight-fresh-p1"),
        pytest.param(6, True, 15, 4, [1.0, 6.123e-17, 1.0, 0.5, 1.0], id="6h-overdue-15d-p4"),
        pytest.param(
            12, False, 30, 2, [1.2246e-16, -1.0, 0.0, 1.0, 1 / 3], id="noon-30d-p2"
        ),
        pytest.param(
            23, True, 45, 3, [-0.2588190451025216, 0.9659258262890683, 1.0, 1.0, 2 / 3],
            id="23h-overdue-45d-p3",
        ),
    ],
)  # fmt: skip
def test_v1_whole_row_matches_hand_computed_values(
    hour: int, overdue: bool, age: float, priority: int, expected: list[float]
) -> None:
    candidate = Candidate("t", is_overdue=overdue, task_age_days=age, priority=priority)
    assert _row(V1, Context(hour), candidate) == _close(expected)


def test_v1_ignores_the_day_of_week() -> None:
    candidate = Candidate("t", is_overdue=True, task_age_days=4, priority=3)
    monday = V1.encode(Context(9, 0), [candidate])
    saturday = V1.encode(Context(9, 5), [candidate])
    assert monday.tobytes() == saturday.tobytes()


def test_v1_ignores_the_source() -> None:
    rows = V1.encode(Context(9), [Candidate("a", source="todoist"), Candidate("b", source="email")])
    assert rows[0].tobytes() == rows[1].tobytes()


# --- v2 (d=7) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("day", sorted(DOW_SIN_COS))
def test_v2_appends_the_day_as_sin_and_cos_of_a_7_day_circle(day: int) -> None:
    row = _row(V2, Context(12, day), Candidate("t"))
    assert row[5:] == _close(DOW_SIN_COS[day])


def test_v2_whole_row_matches_hand_computed_values() -> None:
    # Wednesday 06:00, overdue, 15 days old, priority 4.
    candidate = Candidate("t", is_overdue=True, task_age_days=15, priority=4)
    expected = [1.0, 6.123e-17, 1.0, 0.5, 1.0, 0.9749279121818236, -0.2225209339563143]
    assert _row(V2, Context(6, 2), candidate) == _close(expected)


def test_v2_starts_with_exactly_the_v1_row() -> None:
    rng = np.random.default_rng(7)
    candidates = _random_candidates(rng, 50)
    for hour in range(24):
        for day in range(7):
            context = Context(hour, day)
            v1 = V1.encode(context, candidates)
            v2 = V2.encode(context, candidates)
            assert v2[:, :5].tobytes() == np.ascontiguousarray(v1).tobytes()


# --- v1/v2 are bit-for-bit the existing service ------------------------------------------------


def _old_service_v1(hour: int, overdue: bool, age: float, priority: int) -> list[float]:
    # The existing service's arithmetic, operation for operation (for a task that is due).
    turn = 2 * math.pi * hour / 24
    return [
        math.sin(turn),
        math.cos(turn),
        float(bool(overdue)),
        min(float(age), 30.0) / 30.0,
        (float(priority) - 1.0) / 3.0,
    ]


def _old_service_v2(hour: int, day: int, overdue: bool, age: float, priority: int) -> list[float]:
    turn = 2 * math.pi * day / 7
    return [*_old_service_v1(hour, overdue, age, priority), math.sin(turn), math.cos(turn)]


_GRID_AGES = [0.0, 1e-9, 0.5, 1.0, 7.25, 14.999, 15.0, 29.999999, 30.0, 30.000001, 45.0, 36_500.0]
_GRID = [
    Candidate(f"o{int(overdue)}-a{a}-p{p}", is_overdue=overdue, task_age_days=age, priority=p)
    for overdue in (False, True)
    for a, age in enumerate(_GRID_AGES)
    for p in (1, 2, 3, 4)
]


def _bits(values: list[float]) -> bytes:
    return np.array(values, dtype=np.float64).tobytes()


@pytest.mark.parametrize("hour", range(24))
def test_v1_is_bit_identical_to_the_existing_service(hour: int) -> None:
    matrix = V1.encode(Context(hour), _GRID)
    for row, c in zip(matrix, _GRID, strict=True):
        expected = _old_service_v1(hour, c.is_overdue, c.task_age_days, c.priority)
        assert row.tobytes() == _bits(expected), c.id


@pytest.mark.parametrize("day", range(7))
def test_v2_is_bit_identical_to_the_existing_service(day: int) -> None:
    for hour in range(24):
        matrix = V2.encode(Context(hour, day), _GRID)
        for row, c in zip(matrix, _GRID, strict=True):
            expected = _old_service_v2(hour, day, c.is_overdue, c.task_age_days, c.priority)
            assert row.tobytes() == _bits(expected), (hour, c.id)


# --- v3 (d=44) ---------------------------------------------------------------------------------


def test_v3_has_44_dimensions_with_one_unique_label_each() -> None:
    assert V3.dim == 44
    assert len(V3.labels) == 44
    assert len(set(V3.labels)) == 44


def test_v3_first_eight_labels_are_the_context_block_alone() -> None:
    assert V3.labels[:8] == (
        "bias", "hour_sin", "hour_cos", "dow_sin", "dow_cos", "weekend", "morning", "evening",
    )  # fmt: skip


def test_v3_labels_are_candidate_major_then_source_one_hot() -> None:
    labels = V3.labels
    assert [labels[i] for i in (8, 16, 24, 32)] == ["overdue", "age", "priority", "upcoming"]
    assert labels[9] == "overdue*hour_sin"
    assert labels[15] == "overdue*evening"
    assert labels[21] == "age*weekend"
    assert labels[30] == "priority*morning"
    assert labels[39] == "upcoming*evening"
    assert labels[40:] == ("source=todoist", "source=calendar", "source=email", "source=other")


def test_v3_saturday_morning_overdue_todoist_task_matches_hand_computed_row() -> None:
    # Saturday (5) 06:00: weekend and morning; overdue, 15 days late, priority 4, from Todoist.
    z = [1.0, 1.0, 6.123e-17, -0.9749279121818236, -0.2225209339563143, 1.0, 1.0, 0.0]
    half_z = [0.5, 0.5, 3.06e-17, -0.4874639560909118, -0.11126046697815715, 0.5, 0.5, 0.0]
    zeros = [0.0] * 8
    expected = [*z, *z, *half_z, *z, *zeros, 1.0, 0.0, 0.0, 0.0]
    candidate = Candidate("t", is_overdue=True, task_age_days=15, priority=4, source="Todoist")
    assert _row(V3, Context(6, 5), candidate) == _close(expected)


def test_v3_wednesday_evening_upcoming_task_from_unknown_source_matches_hand_computed_row() -> None:
    # Wednesday (2) 20:00 = 300° on the clock: evening only. Due in 15 days, priority 2, "slack".
    z = [1.0, -0.8660254037844386, 0.5, 0.9749279121818236, -0.2225209339563143, 0.0, 0.0, 1.0]
    third_z = [
        0.3333333333333333, -0.28867513459481287, 0.16666666666666666, 0.3249759707272745,
        -0.07417364465210477, 0.0, 0.0, 0.3333333333333333,
    ]  # fmt: skip
    half_z = [0.5, -0.4330127018922193, 0.25, 0.4874639560909118, -0.11126046697815715, 0, 0, 0.5]
    zeros = [0.0] * 8
    expected = [*z, *zeros, *zeros, *third_z, *half_z, 0.0, 0.0, 0.0, 1.0]
    candidate = Candidate("t", task_age_days=-15, priority=2, source="slack")
    assert _row(V3, Context(20, 2), candidate) == _close(expected)


def _v3_feature(context: Context, candidate: Candidate, label: str) -> float:
    return _row(V3, context, candidate)[V3.labels.index(label)]


@pytest.mark.parametrize(
    ("hour", "morning", "evening"),
    [(0, 0.0, 0.0), (4, 0.0, 0.0), (5, 1.0, 0.0), (11, 1.0, 0.0), (12, 0.0, 0.0),
     (17, 0.0, 0.0), (18, 0.0, 1.0), (23, 0.0, 1.0)],
)  # fmt: skip
def test_v3_morning_is_5_to_12_and_evening_is_18_to_midnight(
    hour: int, morning: float, evening: float
) -> None:
    context = Context(hour)
    assert _v3_feature(context, Candidate("t"), "morning") == morning
    assert _v3_feature(context, Candidate("t"), "evening") == evening


@pytest.mark.parametrize(
    ("day", "weekend"), [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (5, 1.0), (6, 1.0)]
)
def test_v3_weekend_is_saturday_and_sunday(day: int, weekend: float) -> None:
    assert _v3_feature(Context(12, day), Candidate("t"), "weekend") == weekend


@pytest.mark.parametrize(
    ("age", "age_feature", "upcoming"),
    [
        pytest.param(15, 0.5, 0.0, id="overdue-15d"),
        pytest.param(0, 0.0, 0.0, id="due-today"),
        pytest.param(-15, 0.0, 0.5, id="due-in-15d"),
        pytest.param(-30, 0.0, 1.0, id="due-in-30d"),
        pytest.param(-45, 0.0, 1.0, id="due-in-45d-clipped"),
    ],
)
def test_v3_splits_task_age_into_age_and_upcoming(
    age: float, age_feature: float, upcoming: float
) -> None:
    candidate = Candidate("t", task_age_days=age)
    assert _v3_feature(Context(12), candidate, "age") == age_feature
    assert _v3_feature(Context(12), candidate, "upcoming") == upcoming


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("todoist", "todoist"), ("TODOIST", "todoist"), ("ToDoIst", "todoist"),
        ("calendar", "calendar"), ("Calendar", "calendar"),
        ("email", "email"), ("EMAIL", "email"),
        ("other", "other"), ("OTHER", "other"),
        ("slack", "other"), ("", "other"), ("todoist-inbox", "other"),
    ],
)  # fmt: skip
def test_v3_source_one_hot_is_case_insensitive_and_unknown_counts_as_other(
    source: str, expected: str
) -> None:
    row = _row(V3, Context(12), Candidate("t", source=source))
    one_hot = dict(zip(V3.labels[40:], row[40:], strict=True))
    assert one_hot == {
        "source=todoist": float(expected == "todoist"),
        "source=calendar": float(expected == "calendar"),
        "source=email": float(expected == "email"),
        "source=other": float(expected == "other"),
    }


def test_v3_base_columns_equal_the_v1_columns_exactly() -> None:
    rng = np.random.default_rng(11)
    candidates = _random_candidates(rng, 60)
    columns = {label: V3.labels.index(label) for label in ("hour_sin", "hour_cos", "age")}
    for hour in (0, 6, 12, 23):
        context = Context(hour, 3)
        v1 = V1.encode(context, candidates)
        v3 = V3.encode(context, candidates)
        assert np.array_equal(v3[:, columns["hour_sin"]], v1[:, 0])
        assert np.array_equal(v3[:, columns["hour_cos"]], v1[:, 1])
        assert np.array_equal(v3[:, columns["age"]], v1[:, 3])
        assert np.array_equal(v3[:, V3.labels.index("overdue")], v1[:, 2])
        assert np.array_equal(v3[:, V3.labels.index("priority")], v1[:, 4])


def test_v3_has_no_negative_zeros() -> None:
    # Zero candidate terms times negative context terms (e.g. cos at noon) must log as 0.0.
    rng = np.random.default_rng(3)
    candidates = [Candidate("zero"), *_random_candidates(rng, 30)]
    for hour in range(24):
        for day in range(7):
            x = V3.encode(Context(hour, day), candidates)
            assert not np.signbit(x[x == 0.0]).any(), (hour, day)


# --- why v3 exists: context can change the winner ----------------------------------------------


@pytest.mark.parametrize("encoder", [V1, V2], ids=["v1", "v2"])
def test_v1_v2_row_difference_between_two_candidates_is_the_same_at_every_hour_and_day(
    encoder: Encoder,
) -> None:
    rng = np.random.default_rng(2024)
    for _ in range(10):
        pair = _random_candidates(rng, 2)
        matrices = [encoder.encode(Context(h, d), pair) for h in range(24) for d in range(7)]
        assert len({(x[0] - x[1]).tobytes() for x in matrices}) == 1


def test_v2_score_difference_under_any_theta_does_not_depend_on_hour_or_day() -> None:
    rng = np.random.default_rng(99)
    for _ in range(25):
        theta = rng.normal(size=V2.dim) * rng.uniform(0.1, 10.0)
        pair = _random_candidates(rng, 2)
        gaps = np.array(
            [
                float(np.diff(V2.encode(Context(h, d), pair) @ theta)[0])
                for h in range(24)
                for d in range(7)
            ]
        )
        assert np.ptp(gaps) <= 1e-12 * max(1.0, float(np.abs(gaps).max()))


def test_v3_has_a_theta_under_which_the_winner_changes_with_the_hour() -> None:
    # θ: a priority-4 task is worth 0.5 any time; an overdue task is worth 1.0, but only evenings.
    theta = np.zeros(V3.dim)
    theta[V3.labels.index("priority")] = 0.5
    theta[V3.labels.index("overdue*evening")] = 1.0
    overdue = Candidate("overdue", is_overdue=True, task_age_days=3, priority=1)
    important = Candidate("important", priority=4)
    morning_scores = V3.encode(Context(9, 1), [overdue, important]) @ theta
    evening_scores = V3.encode(Context(20, 1), [overdue, important]) @ theta
    assert morning_scores.tolist() == [0.0, 0.5]
    assert evening_scores.tolist() == [1.0, 0.5]
    # The same θ, cut down to what v2 can see, never lets the hour change the winner.
    v2_theta = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0])
    for hour in range(24):
        assert int(np.argmax(V2.encode(Context(hour, 1), [overdue, important]) @ v2_theta)) == 1


# --- vectorised encoding, every registered encoder ---------------------------------------------

_REGISTERED = sorted(ENCODERS)


@pytest.mark.parametrize("name", _REGISTERED)
@pytest.mark.parametrize("k", [1, 2, 17, 200])
def test_encoding_k_candidates_gives_a_k_by_d_float64_matrix(name: str, k: int) -> None:
    encoder = get_encoder(name)
    candidates = _random_candidates(np.random.default_rng(k), k)
    x = encoder.encode(Context(8, 4), candidates)
    assert x.shape == (k, encoder.dim)
    assert x.dtype == np.float64


@pytest.mark.parametrize("name", _REGISTERED)
def test_each_row_equals_encoding_that_candidate_alone(name: str) -> None:
    encoder = get_encoder(name)
    candidates = _random_candidates(np.random.default_rng(5), 200)
    context = Context(19, 6)
    x = encoder.encode(context, candidates)
    for i, candidate in enumerate(candidates):
        assert x[i].tobytes() == encoder.encode(context, [candidate])[0].tobytes(), i


@pytest.mark.parametrize("name", _REGISTERED)
def test_rows_follow_the_order_of_the_candidates(name: str) -> None:
    encoder = get_encoder(name)
    candidates = _random_candidates(np.random.default_rng(6), 40)
    context = Context(13, 2)
    forward = encoder.encode(context, candidates)
    backward = encoder.encode(context, candidates[::-1])
    assert np.ascontiguousarray(backward[::-1]).tobytes() == forward.tobytes()


@pytest.mark.parametrize("name", _REGISTERED)
def test_all_features_are_finite_for_extreme_valid_inputs(name: str) -> None:
    encoder = get_encoder(name)
    candidates = [
        Candidate("old", is_overdue=True, task_age_days=36_500, priority=4, source="EMAIL"),
        Candidate("far", task_age_days=-36_500, priority=1, source="x" * 256),
    ]
    for hour in (0, 23):
        for day in (0, 6):
            assert np.isfinite(encoder.encode(Context(hour, day), candidates)).all()


@pytest.mark.parametrize("name", _REGISTERED)
def test_changing_a_returned_matrix_does_not_change_later_encodings(name: str) -> None:
    encoder = get_encoder(name)
    candidates = _random_candidates(np.random.default_rng(8), 3)
    first = encoder.encode(Context(7, 5), candidates)
    before = first.copy()
    first[:] = 123.0
    assert encoder.encode(Context(7, 5), candidates).tobytes() == before.tobytes()


# --- registry ----------------------------------------------------------------------------------


@pytest.fixture
def restore_encoders() -> Iterator[None]:
    saved = dict(ENCODERS)
    try:
        yield
    finally:
        ENCODERS.clear()
        ENCODERS.update(saved)


def test_v1_v2_v3_are_registered_under_their_names_with_their_dimensions() -> None:
    assert isinstance(ENCODERS["v1"], V1Encoder)
    assert isinstance(ENCODERS["v2"], V2Encoder)
    assert isinstance(ENCODERS["v3"], InteractionEncoder)
    assert (V1.dim, V2.dim, V3.dim) == (5, 7, 44)


def test_every_encoder_class_of_the_features_module_is_registered() -> None:
    classes = [
        cls for cls in Encoder.__subclasses__() if cls.__module__ == features_module.__name__
    ]
    assert {cls.name for cls in classes} <= set(ENCODERS)
    for cls in classes:
        assert type(ENCODERS[cls.name]) is cls


@pytest.mark.parametrize("name", _REGISTERED)
def test_every_registered_encoder_is_stored_under_its_own_name(name: str) -> None:
    assert ENCODERS[name].name == name
    assert get_encoder(name) is ENCODERS[name]


@pytest.mark.parametrize("name", _REGISTERED)
def test_every_registered_encoder_has_one_unique_label_per_dimension(name: str) -> None:
    encoder = get_encoder(name)
    assert len(encoder.labels) == encoder.dim
    assert len(set(encoder.labels)) == encoder.dim


def test_v1_and_v2_labels_match_the_existing_service() -> None:
    assert V1.labels == ("hour_sin", "hour_cos", "is_overdue", "task_age", "priority")
    assert V2.labels == (*V1.labels, "dow_sin", "dow_cos")


def test_get_encoder_of_an_unknown_name_names_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match="unknown encoder 'v9'") as caught:
        get_encoder("v9")
    assert "v1, v2, v3" in str(caught.value)
    assert isinstance(caught.value, KeyError)


def test_get_encoder_is_case_sensitive() -> None:
    with pytest.raises(NotFoundError):
        get_encoder("V1")


def test_register_encoder_refuses_a_taken_name_and_keeps_the_original() -> None:
    original = ENCODERS["v1"]
    with pytest.raises(RegistryError, match="'v1' is already registered"):
        register_encoder(V1Encoder())
    assert ENCODERS["v1"] is original


class _DummyEncoder(Encoder):
    name = "test-dummy-encoder-7f3a"
    labels = ("one",)

    def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
        return np.ones((len(candidates), 1))


@pytest.mark.usefixtures("restore_encoders")
def test_register_encoder_publishes_a_new_name() -> None:
    dummy = _DummyEncoder()
    assert register_encoder(dummy) is dummy
    assert get_encoder("test-dummy-encoder-7f3a") is dummy


def test_encoder_repr_shows_name_and_dimension() -> None:
    assert repr(V3) == "InteractionEncoder(name='v3', dim=44)"


# -- the column form ------------------------------------------------------------------------

_EDGE_AGES = (0.0, -0.0, 30.0, -30.0, 30.001, -30.001, 0.001, -0.001, 1e-300, -1e-300, 36500.0)
_SOURCE_NAMES = ("todoist", "Calendar", "EMAIL", "email", "other", "jira", "")


@st.composite
def _candidate_columns(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[Candidate]]:
    n = draw(st.integers(1, 12))
    ages = st.one_of(
        st.sampled_from(_EDGE_AGES),
        st.floats(-36500.0, 36500.0, allow_nan=False),
        st.floats(-40.0, 40.0).map(lambda a: round(a, 3)),
    )
    contexts = draw(
        st.lists(st.tuples(st.integers(0, 23), st.integers(0, 6)), min_size=n, max_size=n)
    )
    candidates = [
        Candidate(
            f"t{i}",
            draw(st.booleans()),
            draw(ages),
            draw(st.integers(1, 4)),
            draw(st.sampled_from(_SOURCE_NAMES[:-1])) or "todoist",
        )
        for i in range(n)
    ]
    return contexts, candidates


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_candidate_columns())
def test_encode_columns_gives_encode_rows_bit_for_bit(
    drawn: tuple[list[tuple[int, int]], list[Candidate]],
) -> None:
    """Every published encoder's column form against :meth:`encode` of each candidate in its
    own context: the same bytes (so -0.0 and 0.0 differ), at the clip edges and across the
    whole accepted age range."""
    contexts, candidates = drawn
    columns = (
        np.array([h for h, _ in contexts]),
        np.array([d for _, d in contexts]),
        np.array([c.is_overdue for c in candidates]),
        np.array([c.task_age_days for c in candidates]),
        np.array([c.priority for c in candidates]),
        np.array([source_code(c.source) for c in candidates]),
    )
    for encoder in (V1, V2, V3, get_encoder("v4")):
        rows = np.concatenate(
            [
                encoder.encode(Context(h, d), [c])
                for (h, d), c in zip(contexts, candidates, strict=True)
            ]
        )
        got = encoder.encode_columns(*columns)
        assert got.shape == rows.shape
        assert got.tobytes() == rows.tobytes(), encoder.name


def test_encode_columns_of_one_context_match_a_whole_request() -> None:
    """Candidates of one request encoded together (the matrix product of v3/v4) or as
    columns: the same bytes."""
    candidates = [
        Candidate("a", False, 0.0, 1, "todoist"),
        Candidate("b", True, 12.5, 4, "calendar"),
        Candidate("c", False, -0.0, 2, "email"),
        Candidate("d", False, -3.25, 3, "jira"),
    ]
    n = len(candidates)
    for hour, day in ((0, 0), (6, 5), (12, 6), (19, 2)):
        for encoder in ENCODERS.values():
            got = encoder.encode_columns(
                np.full(n, hour), np.full(n, day),
                np.array([c.is_overdue for c in candidates]),
                np.array([c.task_age_days for c in candidates]),
                np.array([c.priority for c in candidates]),
                np.array([source_code(c.source) for c in candidates]),
            )  # fmt: skip
            assert got.tobytes() == encoder.encode(Context(hour, day), candidates).tobytes()


def test_source_code_matches_names_case_insensitively() -> None:
    assert [source_code(s) for s in ("todoist", "CALENDAR", "Email", "other", "jira")] == [
        0, 1, 2, 3, 3,
    ]  # fmt: skip
    assert SOURCES[3] == "other"


def test_an_encoder_without_a_column_form_encodes_columns_one_row_at_a_time() -> None:
    """An encoder of one's own need not write :meth:`Encoder.encode_columns`: the default
    gives its :meth:`encode` rows, the source named by its code."""

    class Seen(Encoder):
        name = "test-seen-7f3a"
        labels = ("hour", "age", "calendar")

        def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
            return np.array(
                [
                    [context.hour_of_day, c.task_age_days, c.source == "calendar"]
                    for c in candidates
                ],
                dtype=np.float64,
            )

    got = Seen().encode_columns(
        np.array([3, 9]), np.array([0, 6]), np.array([False, True]), np.array([1.5, -2.0]),
        np.array([1, 4]), np.array([1, 0]),
    )  # fmt: skip
    assert got.tolist() == [[3.0, 1.5, 1.0], [9.0, -2.0, 0.0]]
    empty = np.zeros(0, dtype=np.int64)
    assert Seen().encode_columns(
        empty, empty, empty.astype(bool), empty * 1.0, empty, empty
    ).shape == (0, 3)
