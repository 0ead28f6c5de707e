"""Reward rules: dwell-v1 reproduces the existing table; rules are data, outcomes stay raw."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml.errors import (
    NotFoundError,
    OOMLError,
    RegistryError,
    UnknownRewardRuleError,
    ValidationError,
)
from oo_ml.rewards import (
    DEFAULT_REWARD_RULE,
    REWARD_RULES,
    ActionRule,
    DwellBand,
    RewardRule,
    get_reward_rule,
    register_reward_rule,
)
from oo_ml.types import MAX_DWELL_MS, Action, Outcome, Reward

DWELL_V1 = get_reward_rule("dwell-v1")
SECOND = 1000
MINUTE = 60_000
THIRTY_DAYS_MS = 2_592_000_000


def _score(action: Action | str, dwell_ms: int | None = None) -> Reward:
    return DWELL_V1.score(Outcome(action, dwell_ms))  # type: ignore[arg-type]


def _rule(name: str = "test-rule", done_bands: tuple[DwellBand, ...] | None = None) -> RewardRule:
    bands = done_bands or (DwellBand(0, 1000, 0), DwellBand(1000, None, 2000))
    return RewardRule(
        name=name,
        actions={
            Action.DISMISS: ActionRule.flat(-500),
            Action.SNOOZE: ActionRule.flat(0),
            Action.DONE: ActionRule(bands=bands, unmeasured_milli=42),
        },
    )


@pytest.fixture
def restore_reward_rules() -> Iterator[None]:
    saved = dict(REWARD_RULES)
    try:
        yield
    finally:
        REWARD_RULES.clear()
        REWARD_RULES.update(saved)


# --- dwell-v1: the existing service's table ----------------------------------------------------


@pytest.mark.parametrize(
    ("dwell_ms", "milli", "value"),
    [
        pytest.param(0, -300, -0.3, id="0ms-click-through"),
        pytest.param(14_999, -300, -0.3, id="14999ms-still-a-click-through"),
        pytest.param(15_000, 1000, 1.0, id="15s-exactly-is-focused"),
        pytest.param(60_000, 1000, 1.0, id="1min-focused"),
        pytest.param(119_999, 1000, 1.0, id="119999ms-still-focused"),
        pytest.param(120_000, 600, 0.6, id="2min-exactly-is-ordinary"),
        pytest.param(599_999, 600, 0.6, id="599999ms-still-ordinary"),
        pytest.param(600_000, 300, 0.3, id="10min-exactly-is-long"),
        pytest.param(3_600_000, 300, 0.3, id="1h-long"),
        pytest.param(THIRTY_DAYS_MS, 300, 0.3, id="30-days-long"),
    ],
)
def test_done_reward_follows_the_dwell_table_at_band_edges(
    dwell_ms: int, milli: int, value: float
) -> None:
    reward = _score(Action.DONE, dwell_ms)
    assert reward.milli == milli
    assert reward.value == value


def test_done_at_exactly_15_seconds_earns_plus_one() -> None:
    assert _score(Action.DONE, 15 * SECOND).value == 1.0


def test_done_one_millisecond_short_of_15_seconds_earns_minus_0_3() -> None:
    assert _score(Action.DONE, 15 * SECOND - 1).value == -0.3


def test_done_without_dwell_earns_plus_0_6() -> None:
    reward = _score(Action.DONE)
    assert reward.milli == 600
    assert reward.value == 0.6


def test_done_without_dwell_ranks_above_snooze_and_below_a_focused_session() -> None:
    unmeasured = _score(Action.DONE).milli
    assert _score(Action.SNOOZE).milli < unmeasured < _score(Action.DONE, 30 * SECOND).milli


@pytest.mark.parametrize("dwell_ms", [None, 0, 14_999, 30_000, 600_000, THIRTY_DAYS_MS])
def test_dismiss_earns_minus_one_whatever_the_dwell(dwell_ms: int | None) -> None:
    reward = _score(Action.DISMISS, dwell_ms)
    assert (reward.milli, reward.value) == (-1000, -1.0)


@pytest.mark.parametrize("dwell_ms", [None, 0, 14_999, 30_000, 600_000, THIRTY_DAYS_MS])
def test_snooze_earns_plus_0_1_whatever_the_dwell(dwell_ms: int | None) -> None:
    reward = _score(Action.SNOOZE, dwell_ms)
    assert (reward.milli, reward.value) == (100, 0.1)


def test_action_may_be_given_as_its_lowercase_string() -> None:
    assert _score("done", 20_000).milli == 1000
    assert Outcome("snooze").action is Action.SNOOZE


def test_numpy_int_dwell_is_accepted_and_stored_as_a_python_int() -> None:
    outcome = Outcome(Action.DONE, np.int64(20_000))
    assert type(outcome.dwell_ms) is int
    assert DWELL_V1.score(outcome).milli == 1000


def test_dwell_v1_rewards_carry_the_rule_name() -> None:
    assert _score(Action.DONE, 20_000).rule == "dwell-v1"


def test_dwell_v1_is_the_default_rule() -> None:
    assert DEFAULT_REWARD_RULE is DWELL_V1
    assert REWARD_RULES["dwell-v1"] is DWELL_V1


def test_dwell_v1_table_lists_every_row_for_display() -> None:
    assert DWELL_V1.table() == [
        ("dismiss", "any", -1.0),
        ("snooze", "any", 0.1),
        ("done", "0 ≤ ms < 15000", -0.3),
        ("done", "15000 ≤ ms < 120000", 1.0),
        ("done", "120000 ≤ ms < 600000", 0.6),
        ("done", "≥ 600000 ms", 0.3),
        ("done", "not measured", 0.6),
    ]


# --- Reward ------------------------------------------------------------------------------------


def test_reward_milli_is_an_exact_int_and_value_is_thousandths() -> None:
    reward = _score(Action.DONE, 5_000)
    assert type(reward.milli) is int
    assert reward.value == -0.3
    assert Reward(1, "r").value == 0.001
    assert Reward(-1000, "r").value == -1.0


def test_sums_of_reward_milli_are_exact_where_float_sums_are_not() -> None:
    # Ten snoozes: 10 × 0.1 drifts in binary floating point, 10 × 100 thousandths does not.
    rewards = [_score(Action.SNOOZE) for _ in range(10)]
    assert sum(r.milli for r in rewards) == 1000
    assert sum(r.value for r in rewards) != 1.0


def test_reward_is_frozen() -> None:
    reward = _score(Action.DISMISS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reward.milli = 0  # type: ignore[misc]


# --- Outcome validation ------------------------------------------------------------------------

INVALID_OUTCOMES = [
    pytest.param({"action": "helpful"}, "action", "must be one of done, snooze, dismiss",
                 id="action-helpful"),
    pytest.param({"action": "DONE"}, "action", "got 'DONE'", id="action-uppercase"),
    pytest.param({"action": "Done"}, "action", "got 'Done'", id="action-capitalised"),
    pytest.param({"action": " done"}, "action", "must be one of", id="action-padded"),
    pytest.param({"action": ""}, "action", "must be one of", id="action-empty"),
    pytest.param({"action": None}, "action", "must be one of", id="action-none"),
    pytest.param({"action": 1}, "action", "must be one of", id="action-int"),
    pytest.param({"dwell_ms": -1}, "dwell_ms", "between 0 and 2592000000", id="dwell-neg"),
    pytest.param({"dwell_ms": THIRTY_DAYS_MS + 1}, "dwell_ms", "between", id="dwell-30d-plus-1"),
    pytest.param({"dwell_ms": 10**20}, "dwell_ms", "between", id="dwell-huge"),
    pytest.param({"dwell_ms": 30_000.0}, "dwell_ms", "integer", id="dwell-float"),
    pytest.param({"dwell_ms": 1.5}, "dwell_ms", "integer", id="dwell-fraction"),
    pytest.param({"dwell_ms": float("nan")}, "dwell_ms", "integer", id="dwell-nan"),
    pytest.param({"dwell_ms": float("inf")}, "dwell_ms", "integer", id="dwell-inf"),
    pytest.param({"dwell_ms": float("-inf")}, "dwell_ms", "integer", id="dwell-neg-inf"),
    pytest.param({"dwell_ms": True}, "dwell_ms", "integer", id="dwell-true"),
    pytest.param({"dwell_ms": False}, "dwell_ms", "integer", id="dwell-false"),
    pytest.param({"dwell_ms": "30000"}, "dwell_ms", "integer", id="dwell-str"),
    pytest.param({"action": "dismiss", "dwell_ms": -1}, "dwell_ms", "between",
                 id="dismiss-with-neg-dwell"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "field", "message"), INVALID_OUTCOMES)
def test_invalid_outcome_is_refused_naming_the_field(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Outcome(**{"action": Action.DONE, "dwell_ms": 20_000, **overrides})
    assert caught.value.field == field


def test_max_dwell_is_thirty_days_and_is_accepted() -> None:
    assert MAX_DWELL_MS == THIRTY_DAYS_MS
    assert Outcome(Action.DONE, MAX_DWELL_MS).dwell_ms == THIRTY_DAYS_MS


def test_scoring_something_that_is_not_an_outcome_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        DWELL_V1.score({"action": "done", "dwell_ms": 20_000})  # type: ignore[arg-type]
    assert caught.value.field == "outcome"


# --- Outcome stays raw, rules re-score it ------------------------------------------------------


def test_outcome_holds_only_what_happened_not_a_reward() -> None:
    assert [f.name for f in dataclasses.fields(Outcome)] == ["action", "dwell_ms"]


def test_one_outcome_rescored_under_two_rules_gives_two_rewards_named_by_rule() -> None:
    outcome = Outcome(Action.DONE, 20_000)
    first = DWELL_V1.score(outcome)
    second = _rule().score(outcome)
    assert first == Reward(1000, "dwell-v1")
    assert second == Reward(2000, "test-rule")
    assert outcome == Outcome(Action.DONE, 20_000)


# --- rules are data ----------------------------------------------------------------------------


def test_a_new_rule_scores_without_being_registered() -> None:
    rule = _rule()
    assert rule.score(Outcome(Action.DONE, 999)) == Reward(0, "test-rule")
    assert rule.score(Outcome(Action.DONE, 1000)) == Reward(2000, "test-rule")
    assert rule.score(Outcome(Action.DONE)) == Reward(42, "test-rule")
    assert rule.score(Outcome(Action.DISMISS, 5)) == Reward(-500, "test-rule")
    assert rule.score(Outcome(Action.SNOOZE)) == Reward(0, "test-rule")
    assert "test-rule" not in REWARD_RULES


def test_building_a_new_rule_leaves_dwell_v1_unchanged() -> None:
    _rule(name="test-rule-2")
    assert _score(Action.DONE, 1000).milli == -300
    assert _score(Action.DONE).milli == 600


def test_reward_rule_refuses_a_table_missing_an_action() -> None:
    with pytest.raises(ValueError, match=r"'partial' has no entry for .*snooze"):
        RewardRule(
            "partial",
            {Action.DONE: ActionRule.flat(1000), Action.DISMISS: ActionRule.flat(-1000)},
        )


def test_reward_rule_does_not_change_when_the_mapping_it_was_built_from_is_mutated() -> None:
    # RewardRule is documented as a frozen mapping; a registered table must not be editable.
    actions = {
        Action.DISMISS: ActionRule.flat(-1000),
        Action.SNOOZE: ActionRule.flat(100),
        Action.DONE: ActionRule.flat(600),
    }
    rule = RewardRule("test-frozen", actions)
    actions[Action.DONE] = ActionRule.flat(5)
    assert rule.score(Outcome(Action.DONE)).milli == 600


INVALID_BANDS = [
    pytest.param((), "last band must be open-ended", id="no-bands"),
    pytest.param((DwellBand(1, None, 0),), "band 0 starts at 1, expected 0", id="not-from-zero"),
    pytest.param((DwellBand(0, 10, 0), DwellBand(20, None, 1)), "band 1 starts at 20, expected 10",
                 id="gap"),
    pytest.param((DwellBand(0, 10, 0), DwellBand(5, None, 1)), "band 1 starts at 5, expected 10",
                 id="overlap"),
    pytest.param((DwellBand(0, 10, 0), DwellBand(10, 20, 1)), "last band must be open-ended",
                 id="closed-last-band"),
    pytest.param((DwellBand(0, None, 0), DwellBand(0, None, 1)), "band 0 is open-ended",
                 id="open-band-not-last"),
    pytest.param((DwellBand(0, 0, 0), DwellBand(0, None, 1)), "band 0 is empty", id="empty-band"),
    pytest.param((DwellBand(0, 10, 0), DwellBand(10, 5, 1), DwellBand(5, None, 2)),
                 "band 1 is empty", id="backwards-band"),
]  # fmt: skip


@pytest.mark.parametrize(("bands", "message"), INVALID_BANDS)
def test_action_rule_refuses_bands_that_do_not_tile_the_dwell_axis(
    bands: tuple[DwellBand, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ActionRule(bands=bands, unmeasured_milli=0)


def test_malformed_action_rule_raises_an_oo_ml_error() -> None:
    # errors.py: OOMLError is the "base of every error raised on purpose by oo_ml".
    with pytest.raises(OOMLError):
        ActionRule(bands=(DwellBand(0, 10, 0), DwellBand(20, None, 1)), unmeasured_milli=0)


def test_dwell_on_a_band_edge_belongs_to_the_band_that_starts_there() -> None:
    rule = ActionRule((DwellBand(0, 10, 1), DwellBand(10, None, 2)), unmeasured_milli=3)
    assert [rule.milli_for(d) for d in (None, 0, 9, 10, 11)] == [3, 1, 1, 2, 2]


def test_flat_action_rule_gives_one_reward_with_or_without_dwell() -> None:
    rule = ActionRule.flat(-250)
    assert {rule.milli_for(d) for d in (None, 0, 10**6, THIRTY_DAYS_MS)} == {-250}


# --- registry ----------------------------------------------------------------------------------


def test_get_reward_rule_of_an_unknown_name_names_the_known_ones() -> None:
    with pytest.raises(UnknownRewardRuleError, match="unknown reward rule 'dwell-v9'") as caught:
        get_reward_rule("dwell-v9")
    assert "dwell-v1" in str(caught.value)
    assert isinstance(caught.value, NotFoundError)
    assert isinstance(caught.value, KeyError)


def test_register_reward_rule_refuses_a_taken_name_and_keeps_the_original() -> None:
    with pytest.raises(RegistryError, match="'dwell-v1' is already registered"):
        register_reward_rule(_rule(name="dwell-v1"))
    assert get_reward_rule("dwell-v1") is DWELL_V1
    assert _score(Action.DONE, 20_000).milli == 1000


@pytest.mark.usefixtures("restore_reward_rules")
def test_register_reward_rule_publishes_a_new_name() -> None:
    rule = _rule(name="test-rule-registered-5c1e")
    assert register_reward_rule(rule) is rule
    assert get_reward_rule("test-rule-registered-5c1e") is rule


# --- property: done's reward is piecewise constant and ordered as the table says ---------------

# The table's band edges and values, written out independently of the rule under test.
_EDGES = (15 * SECOND, 2 * MINUTE, 10 * MINUTE)
_BAND_MILLI = (-300, 1000, 600, 300)


def _band_of(dwell_ms: int) -> int:
    return sum(dwell_ms >= edge for edge in _EDGES)


_DWELLS = st.one_of(
    st.integers(min_value=0, max_value=MAX_DWELL_MS),
    st.sampled_from([0, 14_999, 15_000, 119_999, 120_000, 599_999, 600_000, MAX_DWELL_MS]),
)


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(dwell_ms=_DWELLS)
def test_done_reward_for_any_valid_dwell_is_the_value_of_its_band(dwell_ms: int) -> None:
    reward = _score(Action.DONE, dwell_ms)
    assert reward.value in {-0.3, 1.0, 0.6, 0.3}
    assert reward.milli == _BAND_MILLI[_band_of(dwell_ms)]


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(a=_DWELLS, b=_DWELLS)
def test_done_reward_changes_only_where_the_table_has_an_edge(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    lo_milli, hi_milli = _score(Action.DONE, lo).milli, _score(Action.DONE, hi).milli
    # Walking up the dwell axis, the band index never goes back.
    assert _BAND_MILLI.index(lo_milli) <= _BAND_MILLI.index(hi_milli)
    if not any(lo < edge <= hi for edge in _EDGES):
        assert lo_milli == hi_milli
