"""``parse_reward`` and ``parse_feedback`` accept only what ``RewardIn`` and ``FeedbackIn``
accept, and read it to the same values.

As for ``parse_rank`` (``test_rank_request.py``, which also pins each place where msgspec reads
JSON differently from pydantic's parser): the direct path leaves every body a reader declines
to the model, so the refusals stay the model's as long as a reader never accepts a body the
model refuses and never reads an accepted one differently. ``FeedbackIn`` accepts each of two
fields under two spellings (``eventId``/``event_id``, ``dwellMs``/``dwell_ms``): the bodies
here mix them in every way, valid and not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic import ValidationError as ModelRefusal

from oo_ml.api.readers import FeedbackRequest, Reward, parse_feedback, parse_reward
from oo_ml.api.schemas import FeedbackIn, RewardIn

Values = tuple[Any, ...]


def _values(read: Reward | RewardIn | FeedbackRequest | FeedbackIn) -> Values:
    """A read body's values (by ``repr``: ``-0.0`` and ``0.0`` apart, ``1`` and ``1.0`` too)."""
    if isinstance(read, Reward | RewardIn):
        f = read.features
        fields = (read.user_id, read.tip_id, read.reward, read.day_of_week)
        return tuple(map(repr, (*fields, f.hour_of_day, f.is_overdue, f.task_age_days, f.priority)))
    return tuple(map(repr, (read.event_id, read.action, read.dwell_ms)))


def _by(model: type[BaseModel], raw: bytes) -> Values | None:
    try:
        return _values(model.model_validate_json(raw))  # type: ignore[arg-type]
    except ModelRefusal:
        return None


def _reward_pair(raw: bytes) -> tuple[Values | None, Values | None]:
    """(what parse_reward reads, what the model reads) of ``raw``."""
    read = parse_reward(raw)
    return None if read is None else _values(read), _by(RewardIn, raw)


def _feedback_pair(raw: bytes) -> tuple[Values | None, Values | None]:
    read = parse_feedback(raw)
    return None if read is None else _values(read), _by(FeedbackIn, raw)


# -- /reward ----------------------------------------------------------------------------------


def _reward_body() -> dict[str, Any]:
    return {
        "user_id": "user-1",
        "tip_id": "t-report",
        "reward": 0.5,
        "features": {"hour_of_day": 9, "is_overdue": True, "task_age_days": 4.0, "priority": 4},
        "day_of_week": 2,
    }


_DELETE = object()
_WRONG: list[Any] = [None, True, 1, 1.5, "x", [], {}]
_REWARD_EDGES: dict[tuple[str, ...], list[Any]] = {
    ("user_id",): ["", "u", "a" * 256, "a" * 257, "é" * 256, "a\x00", "\u2028"],
    ("tip_id",): ["", "t", "a" * 256, "a" * 257, "a\x00b"],
    ("reward",): [-1, -1.0, 1, 1.0, 0, -0.0, -1.0000001, 1.5, 2**63, 10**20, 1e308, "0.5"],
    ("features",): [{}],
    ("features", "hour_of_day"): [-1, 0, 23, 24, 12.0, "3"],
    ("features", "is_overdue"): [False, 0, "true", 1.0],
    ("features", "task_age_days"): [0, -0.0, 36_500, 36_500.5, -36_501, 1e308, "1"],
    ("features", "priority"): [0, 1, 4, 5, 2.0, "2"],
    ("day_of_week",): [-1, 0, 6, 7, 1.0, False],
    ("x",): [{"a": [1, None]}, [[[]]]],
}
REWARD_CASES = [
    (path, value) for path, edges in _REWARD_EDGES.items() for value in [_DELETE, *edges, *_WRONG]
]


def _set(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value"), REWARD_CASES, ids=[f"{p}={v!r:.20}" for p, v in REWARD_CASES]
)
def test_parse_reward_reads_each_field_as_the_model_does(path: tuple[str, ...], value: Any) -> None:
    body = _reward_body()
    _set(body, path, value)
    read, model = _reward_pair(json.dumps(body).encode())
    assert read == model


def test_parse_reward_reads_the_app_body() -> None:
    """Not a vacuous agreement: the common body is read, as the model reads it."""
    read, model = _reward_pair(json.dumps(_reward_body()).encode())
    assert read is not None
    assert read == model


@settings(max_examples=300)
@given(st.lists(st.sampled_from(REWARD_CASES), min_size=1, max_size=4), st.booleans())
def test_parse_reward_reads_bodies_with_several_odd_fields_as_the_model_does(
    cases: list[tuple[tuple[str, ...], Any]], ascii_only: bool
) -> None:
    body = _reward_body()
    for path, value in cases:
        try:
            _set(body, path, value)
        except (KeyError, TypeError):
            continue  # an earlier change removed or replaced the field's parent
    read, model = _reward_pair(json.dumps(body, ensure_ascii=ascii_only).encode())
    assert read == model


_JSON_NUMBER = r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?"


@settings(max_examples=300)
@given(st.from_regex(_JSON_NUMBER, fullmatch=True), st.sampled_from(["reward", "task_age_days"]))
def test_parse_reward_reads_numbers_as_the_model_does(number: str, field: str) -> None:
    """Any JSON number as the reward or the age: accepted alike (in range), read alike."""
    body = json.dumps(_reward_body()).replace('"reward": 0.5', '"reward": 0.25')
    old = '"reward": 0.25' if field == "reward" else '"task_age_days": 4.0'
    read, model = _reward_pair(
        body.replace(old, old.split(":", maxsplit=1)[0] + ": " + number).encode()
    )
    assert read == model


# -- /v1/feedback -----------------------------------------------------------------------------

_ABSENT = object()
_EVENT_IDS = [_ABSENT, "evt-1", "A.b:c-d_9", "", "a" * 64, "a" * 65, "a b", "é", "ok\n", 5, None]
_DWELLS = [_ABSENT, 0, 4000, 2_592_000_000, 2_592_000_001, -1, 1.0, -0, True, "5", None]
_ACTIONS = [_ABSENT, "done", "snooze", "dismiss", "Done", "", 1, None]


def _feedback_body(values: tuple[Any, Any, Any, Any, Any], alias_first: bool) -> bytes:
    """A body of (event_id, eventId, action, dwell_ms, dwellMs), each left out if ``_ABSENT``,
    the aliases first or last."""
    event_id, event_id_alias, action, dwell, dwell_alias = values
    spelled = [("event_id", event_id), ("eventId", event_id_alias)]
    dwells = [("dwell_ms", dwell), ("dwellMs", dwell_alias)]
    if alias_first:
        spelled.reverse()
        dwells.reverse()
    fields = {k: v for k, v in [*spelled, ("action", action), *dwells] if v is not _ABSENT}
    return json.dumps(fields).encode()


@pytest.mark.parametrize("alias_first", [False, True])
@pytest.mark.parametrize("dwell_alias", _DWELLS)
@pytest.mark.parametrize("event_id_alias", _EVENT_IDS)
def test_parse_feedback_reads_both_spellings_as_the_model_does(
    event_id_alias: Any, dwell_alias: Any, alias_first: bool
) -> None:
    """The alias beside a valid, an invalid or no field of the other spelling, in either order:
    the model reads ``eventId`` (``dwellMs``) whenever it is there, whatever it holds."""
    for event_id in ["evt-2", "bad id", _ABSENT, 7]:
        for dwell in [_ABSENT, 100, -5]:
            raw = _feedback_body(
                (event_id, event_id_alias, "done", dwell, dwell_alias), alias_first
            )
            read, model = _feedback_pair(raw)
            if read is not None or not (event_id in ("bad id", 7) or dwell == -5):
                # the reader declines only where it also checks the spelling the model skips
                assert read == model, raw


@settings(max_examples=500)
@given(
    st.tuples(
        st.sampled_from(_EVENT_IDS),
        st.sampled_from(_EVENT_IDS),
        st.sampled_from(_ACTIONS),
        st.sampled_from(_DWELLS),
        st.sampled_from(_DWELLS),
    ),
    st.booleans(),
)
def test_parse_feedback_never_reads_a_body_otherwise(
    values: tuple[Any, Any, Any, Any, Any], alias_first: bool
) -> None:
    """Any mix of spellings, values and absences: read only as the model reads it."""
    read, model = _feedback_pair(_feedback_body(values, alias_first))
    if read is not None:
        assert read == model


@pytest.mark.parametrize(
    "body",
    [
        {"event_id": "evt-1", "action": "done", "dwell_ms": 4000},
        {"eventId": "evt-1", "action": "snooze"},
        {"event_id": "evt-1", "action": "dismiss", "dwellMs": None, "extra": [1, {"a": 2}]},
        {"eventId": "evt-1", "event_id": "evt-2", "action": "done", "dwellMs": 7, "dwell_ms": 9},
    ],
)
def test_parse_feedback_reads_the_common_bodies(body: dict[str, Any]) -> None:
    """Not a vacuous agreement: valid bodies in each spelling are read, as the model reads them."""
    read, model = _feedback_pair(json.dumps(body).encode())
    assert read is not None
    assert read == model


# -- both: the guards against msgspec's laxer JSON reading apply to every reader --------------

_REWARD = json.dumps(_reward_body()).encode()
_FEEDBACK = b'{"event_id": "evt-1", "action": "done", "dwell_ms": 4000}'


def _with(body: bytes, field: bytes) -> bytes:
    return body[:-1] + b", " + field + b"}"


# (field added to a valid body, whether the model accepts the body, whether it is read)
_PARSERS_DIFFER: list[tuple[bytes, bool, bool | None]] = [
    (b'"x": 1', True, True),
    (b'"x": ' + b"9" * 4300, True, None),
    (b'"x": ' + b"9" * 4301, False, False),
    (b'"x": ' + b"[" * 200 + b"]" * 200, True, None),
    (b'"x": ' + b"[" * 201 + b"]" * 201, False, False),
    (b'"x": "\xff"', False, False),
    (b'"x": "\\ud800"', False, False),
    (b'"x": NaN', True, None),
    (b'"x": "\xc3\xa9"', True, True),
]


@pytest.mark.parametrize("kind", ["reward", "feedback"])
@pytest.mark.parametrize(("field", "accepted", "read"), _PARSERS_DIFFER)
def test_readers_decline_where_msgspec_reads_json_differently(
    kind: str, field: bytes, accepted: bool, read: bool | None
) -> None:
    raw = _with(_REWARD if kind == "reward" else _FEEDBACK, field)
    parsed, model = (_reward_pair if kind == "reward" else _feedback_pair)(raw)
    assert (model is not None) is accepted
    if read is not None:
        assert (parsed is not None) is read
    if parsed is not None:
        assert parsed == model


_TOKENS = [
    *"[]{},: ",
    '"a"',
    '"\\u00e9"',
    '"\\ud800"',
    '"\\q"',
    "01",
    "-",
    "9" * 40,
    "NaN",
    "Infinity",
    "tru",
    "null",
    "\x00",
]


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from([t.encode() for t in _TOKENS] + [b"\xff", b"\xed\xa0\x80"]), max_size=12
    ),
    st.sampled_from(["reward", "feedback"]),
)
def test_readers_never_read_json_the_model_refuses(tokens: list[bytes], kind: str) -> None:
    raw = _with(_REWARD if kind == "reward" else _FEEDBACK, b'"x": ' + b"".join(tokens))
    parsed, model = (_reward_pair if kind == "reward" else _feedback_pair)(raw)
    if parsed is not None:
        assert parsed == model
