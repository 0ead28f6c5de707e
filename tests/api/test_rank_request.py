"""``parse_rank`` accepts only what ``RankIn`` accepts, and reads it to the same request;
``parse_score`` likewise for ``ScoreIn`` (where ``policy`` and ``event_id`` are unknown fields).

The direct path reads ``/v1/rank`` and ``/score`` bodies with them and leaves to the model every
body they decline; so the refusals stay the model's as long as a reader never accepts a body the
model (or the core, when converting it) refuses, and never reads an accepted one differently.
Every test runs for both readers ("rank", "score") on the same bodies, generated around the
schema: valid values, values at and beyond each bound, wrong JSON types, missing and extra
fields. (The guards against msgspec's laxer JSON reading are the one copy in
``oo_ml.api.readers``; ``test_readers.py`` checks the other readers through them too.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as ModelRefusal

from oo_ml.api.rank_request import RankRequest, parse_rank, parse_score
from oo_ml.api.schemas import RankIn, ScoreIn
from oo_ml.errors import ValidationError


def by_model(body: bytes) -> RankRequest | None:
    """What the model (and the core's conversion after it) makes of ``body``."""
    try:
        model = RankIn.model_validate_json(body)
        return RankRequest.of(model, model.policy, model.event_id)
    except (ModelRefusal, ValidationError):
        return None


POLICY = "linucb-v1"


def by_score_model(body: bytes) -> RankRequest | None:
    """What ``ScoreIn`` (and the core's conversion after it) makes of ``body``, for ``/score``."""
    try:
        return RankRequest.of(ScoreIn.model_validate_json(body), POLICY)
    except (ModelRefusal, ValidationError):
        return None


Reader = Callable[[bytes], RankRequest | None]
READERS: dict[str, tuple[Reader, Reader]] = {
    "rank": (parse_rank, by_model),
    "score": (partial(parse_score, policy=POLICY), by_score_model),
}
"""Each quick reader with its model."""
KINDS = pytest.mark.parametrize("kind", list(READERS))


def same(read: RankRequest | None, model: RankRequest | None) -> bool:
    """Equal, and spelled alike (``-0.0 == 0.0``, but the engine could tell them apart)."""
    return read == model and repr(read) == repr(model)


def _body() -> dict[str, Any]:
    return {
        "user_id": "user-1",
        "context": {"hour_of_day": 9, "day_of_week": 2},
        "policy": None,
        "event_id": "evt-1",
        "candidates": [
            {
                "id": "t1",
                "content": "Write report",
                "source": "todoist",
                "source_id": "s-1",
                "features": {
                    "hour_of_day": 3,
                    "is_overdue": True,
                    "task_age_days": -2.5,
                    "priority": 4,
                },
            },
            {"id": "t2", "content": "Call mum", "source": "notes"},
        ],
    }


_DELETE = object()
_WRONG = [None, True, 1, 1.5, "x", [], {}]
_EDGES: dict[tuple[Any, ...], list[Any]] = {
    ("user_id",): ["", "u", "a" * 256, "a" * 257, "é" * 256, "a\x00", "\u2028"],
    ("policy",): ["", "p" * 64, "p" * 65, "egreedy-v1"],
    ("event_id",): ["", "a", "a" * 64, "a" * 65, "a b", "é", "ok\n", "A.b:c-d_9"],
    ("context",): [],
    ("context", "hour_of_day"): [-1, 0, 23, 24, 12.0, 2**63],
    ("context", "day_of_week"): [-1, 0, 6, 7, 1.0, False],
    ("candidates",): [[{"id": "a", "content": "", "source": ""}] * 2],
    ("candidates", 0): [],
    ("candidates", 0, "id"): ["", "a", "a" * 256, "a" * 257, "é" * 256, "a\x00b"],
    ("candidates", 0, "content"): ["", "c" * 10_000, "c" * 10_001],
    ("candidates", 0, "source"): ["", "s" * 256, "s" * 257, "a\x00b"],
    ("candidates", 0, "source_id"): ["", "s" * 256, "s" * 257],
    ("candidates", 0, "features"): [],
    ("candidates", 0, "features", "hour_of_day"): [-1, 0, 23, 24, 12.0, "3"],
    ("candidates", 0, "features", "is_overdue"): [False, 0, "true", 1.0],
    ("candidates", 0, "features", "task_age_days"): [
        0,
        -0.0,
        36_500,
        36_500.0,
        36_500.5,
        -36_500,
        -36_501,
        1e308,
        2**63,
        10**20,
        "1",
    ],
    ("candidates", 0, "features", "priority"): [0, 1, 4, 5, 2.0, "2"],
    ("candidates", 1, "features"): [{}, {"priority": 2}],
}
CASES = [(path, value) for path, edges in _EDGES.items() for value in [_DELETE, *edges, *_WRONG]]


def _perturbed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = _body()
    parent: Any = body
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return body


@KINDS
@pytest.mark.parametrize(("path", "value"), CASES, ids=[f"{p}={v!r:.20}" for p, v in CASES])
def test_reader_reads_each_field_as_the_model_does(
    kind: str, path: tuple[Any, ...], value: Any
) -> None:
    """One field at a time at its bounds, beyond them, of a wrong type, or left out: accepted
    by both, read alike, or declined where the model (or the core) refuses."""
    parse, model_of = READERS[kind]
    raw = json.dumps(_perturbed(path, value)).encode()
    assert same(parse(raw), model_of(raw))


@KINDS
@settings(max_examples=300)
@given(st.lists(st.sampled_from(CASES), min_size=1, max_size=4), st.booleans())
def test_reader_reads_bodies_with_several_odd_fields_as_the_model_does(
    kind: str, cases: list[tuple[tuple[Any, ...], Any]], ascii_only: bool
) -> None:
    parse, model_of = READERS[kind]
    body = _body()
    for path, value in cases:
        parent: Any = body
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value is _DELETE:
                parent.pop(path[-1], None) if isinstance(parent, dict) else parent.pop(path[-1])
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError, AttributeError):
            continue  # an earlier change removed or replaced the field's parent (None: no .pop)
    raw = json.dumps(body, ensure_ascii=ascii_only).encode()
    assert same(parse(raw), model_of(raw))


@KINDS
@pytest.mark.parametrize(
    "raw",
    [
        b'{"user_id": "u", "user_id": "v",'
        b' "candidates": [{"id": "a", "content": "", "source": ""}]}',
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": "",'
        b' "features": {"priority": 1e0}}]}',
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": "",'
        b' "features": {"task_age_days": 1e400}}]}',
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": "",'
        b' "features": {"task_age_days": NaN}}]}',
        b'{"user_id": "\\ud800", "candidates": [{"id": "a", "content": "", "source": ""}]}',
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": ""}],'
        b' "context": {"hour_of_day": 18446744073709551616}}',
        b'\xef\xbb\xbf{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": ""}]}',
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": ""}]} x',
        b'["user_id"]',
        b"\xff",
    ],
)
def test_reader_agrees_with_the_model_on_unusual_json(kind: str, raw: bytes) -> None:
    parse, model_of = READERS[kind]
    read = parse(raw)
    if read is not None:
        assert same(read, model_of(raw))


_ONE = b'"candidates": [{"id": "a", "content": "", "source": ""}]'
_ONE_WITH = b'{"user_id": "u", ' + _ONE + b"}"


def _with(field: bytes, where: str = "top") -> bytes:
    """A small valid body with ``field`` (``"key": value``) added at ``where``."""
    if where == "candidate":
        return b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": "", ' + (
            field + b"}]}"
        )
    if where == "features":
        return (
            b'{"user_id": "u", "candidates": [{"id": "a", "content": "", "source": "", '
            b'"features": {' + field + b"}}]}"
        )
    if where == "context":
        return b'{"user_id": "u", ' + _ONE + b', "context": {' + field + b"}}"
    return b'{"user_id": "u", ' + _ONE + b", " + field + b"}"


def _age(number: bytes) -> bytes:
    return _with(b'"task_age_days": ' + number, "features")


# (body, whether the model accepts it, whether the reader reads it: None for either)
_PARSERS_DIFFER: list[tuple[bytes, bool, bool | None]] = [
    # duplicate keys: the last one wins in both parsers, whole objects included
    (b'{"user_id": "u", "user_id": "v", ' + _ONE + b"}", True, True),
    (
        b'{"user_id": "u", "candidates": [{"id": "a", "id": "b", "content": "", "source": "",'
        b' "features": {"priority": 2, "task_age_days": 1}, "features": {"priority": 3}}]}',
        True,
        True,
    ),
    (_with(b'"priority": 2, "priority": 4', "features"), True, True),
    (b'{"user_id": "u", ' + _ONE + b', "context": {"day_of_week": 1}, "context": {}}', True, True),
    (b'{"user_id": "u", "candidates": [], ' + _ONE + b"}", True, True),
    (b'{"user_id": 1, "user_id": "v", ' + _ONE + b"}", True, None),  # the first is not read
    (b'{"user_id": "v", "user_id": 1, ' + _ONE + b"}", False, False),
    # an escaped key is the same key
    (b'{"user_id": "u", "\\u0075ser_id": "v", ' + _ONE + b"}", True, True),
    # lone surrogates and invalid UTF-8, in a field that is read or in one that is skipped
    (b'{"user_id": "\\ud800", ' + _ONE + b"}", False, False),
    (b'{"user_id": "\\udc00x", ' + _ONE + b"}", False, False),
    (_with(b'"x": "\\ud800"'), False, False),
    (_with(b'"x": ["\\udbff\\u0041"]', "candidate"), False, False),
    (_with(b'"\\ud800": 1', "features"), False, False),
    (_with(b'"x": "\\ud83d\\ude00"'), True, True),
    (b'{"user_id": "\xff", ' + _ONE + b"}", False, False),
    (b'{"user_id": "\xed\xa0\x80", ' + _ONE + b"}", False, False),  # an encoded surrogate
    (_with(b'"x": "\xc0\xaf"'), False, False),  # overlong
    (_with(b'"\xff": 1', "context"), False, False),
    (_with(b'"x": {"y": ["\xe2\x82"]}', "candidate"), False, False),
    (_with('"x": "é😀", "ü": 1'.encode(), "features"), True, True),
    # other unknown fields are skipped as the model skips them
    (_with(b'"x": {"a": [1, -2.5e3, "s", null, true, false, {}]}'), True, True),
    (_with(b'"x": 1e400', "candidate"), True, True),
    (_with(b'"x": NaN'), True, None),  # pydantic reads NaN and Infinity, msgspec does not
    (_with(b'"x": -Infinity', "context"), True, None),
    (_with(b'"x": "\\q"'), False, False),
    (_with(b'"x": tru'), False, False),
    (_with(b'"x": 01'), False, False),
    (_with(b'"x": "a\nb"'), False, False),
    # nesting: pydantic refuses beyond 200 levels; msgspec skips any depth
    (_with(b'"x": ' + b"[" * 199 + b"]" * 199), True, None),
    (_with(b'"x": ' + b"[" * 200 + b"]" * 200), True, None),
    (_with(b'"x": ' + b"[" * 201 + b"]" * 201), False, False),
    (_with(b'"x": ' + b'{"a": ' * 199 + b"1" + b"}" * 199), True, None),
    (_with(b'"x": ' + b'{"a": ' * 200 + b"1" + b"}" * 200), False, False),
    (_with(b'"x": ' + b"[" * 5000 + b"]" * 5000), False, False),
    # long numbers: pydantic refuses more than 4300 characters of sign and integer digits
    (_with(b'"x": ' + b"9" * 4300), True, None),
    (_with(b'"x": -' + b"9" * 4300), False, False),
    (_with(b'"x": ' + b"9" * 4301, "candidate"), False, False),
    (_with(b'"x": ' + b"1" * 4301 + b".5e-9", "features"), False, False),
    (_age(b"1" * 4300 + b"e-4299"), True, None),
    (_age(b"1" * 4301 + b"e-4300"), False, False),
    (_age(b"-" + b"1" * 4300 + b".0e-4299"), False, False),
    (_age(b"0." + b"0" * 5000 + b"1e5000"), True, None),
    (_age(b"1." + b"0" * 5000), True, None),
    # zero's sign
    (_age(b"-0"), True, True),
    (_age(b"-0.0"), True, True),
    (_age(b"-0e0"), True, True),
    # NUL: the model lets it through, the core refuses it in an id or a source
    (b'{"user_id": "\\u0000", ' + _ONE + b"}", True, True),
    (
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "\\u0000", "source": "",'
        b' "source_id": "\\u0000"}]}',
        True,
        True,
    ),
    (_ONE_WITH.replace(b'"id": "a"', b'"id": "\\u0000"'), False, False),
    (_ONE_WITH.replace(b'"source": ""', b'"source": "a\\u0000"'), False, False),
]


@KINDS
@pytest.mark.parametrize(
    ("raw", "accepted", "read"),
    _PARSERS_DIFFER,
    ids=[f"{i}-{raw[-40:]!r:.50}" for i, (raw, _, _) in enumerate(_PARSERS_DIFFER)],
)
def test_reader_declines_where_msgspec_reads_json_differently(
    kind: str, raw: bytes, accepted: bool, read: bool | None
) -> None:
    """Each case at a difference between msgspec's and pydantic's JSON parsers (or close to
    it): what the model makes of it, and that the reader reads it alike or declines it."""
    parse, model_of = READERS[kind]
    model = model_of(raw)
    assert (model is not None) is accepted  # the case is what it claims to be
    parsed = parse(raw)
    if read is not None:
        assert (parsed is not None) is read
    if parsed is not None:
        assert same(parsed, model)


_JSON_NUMBER = r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?"


@KINDS
@settings(max_examples=500)
@given(st.from_regex(_JSON_NUMBER, fullmatch=True))
def test_reader_reads_numbers_as_the_model_does(kind: str, number: str) -> None:
    """Any JSON number as an age: accepted alike (in range), read to the same float."""
    parse, model_of = READERS[kind]
    raw = _age(number.encode())
    assert same(parse(raw), model_of(raw))


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text()
_JSON_VALUES = st.recursive(
    _JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_PLACES = ["top", "candidate", "features", "context"]


@KINDS
@settings(max_examples=300)
@given(st.text(), _JSON_VALUES, st.sampled_from(_PLACES), st.booleans())
def test_reader_skips_unknown_fields(
    kind: str, key: str, value: Any, where: str, ascii_only: bool
) -> None:
    """An unknown field holding any JSON value changes nothing (unless its key is a known one,
    in which case the model decides, and the reader reads the body alike or declines it)."""
    parse, model_of = READERS[kind]
    field = json.dumps({key: value}, ensure_ascii=ascii_only)[1:-1].encode()
    raw = _with(field, where)
    model = model_of(raw)
    read = parse(raw)
    if read is not None:
        assert same(read, model)
    if model is not None and model == model_of(_with(b'"-": 0', where)):
        assert read is not None  # skipped by msgspec too, and not declined for it


_TOKENS = [
    *"[]{},: ",
    '"a"',
    '"é"',
    '"\\u00e9"',
    '"\\ud83d\\ude00"',
    '"\\ud800"',
    '"\\udc00"',
    '"\\ud800\\u0041"',
    '"\\q"',
    '"\\u00"',
    '"\\u0000"',
    '"\t"',
    "0",
    "-0",
    "01",
    "1.",
    ".5",
    "1e",
    "1.5e+3",
    "-",
    "+1",
    "9" * 40,
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "tru",
    "null",
    "\x00",
    "\f",
]
_RAW_TOKENS = [b"\xff", b"\xc3", b"\xed\xa0\x80", b'"\xe2\x82"']


@KINDS
@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([t.encode() for t in _TOKENS] + _RAW_TOKENS), max_size=12),
    st.sampled_from(_PLACES),
)
def test_reader_never_reads_json_the_model_refuses(
    kind: str, tokens: list[bytes], where: str
) -> None:
    """Malformed and unusual JSON in an unknown field's value: the reader reads the body only
    when the model accepts it, and then alike."""
    parse, model_of = READERS[kind]
    raw = _with(b'"x": ' + b"".join(tokens), where)
    read = parse(raw)
    if read is not None:
        assert same(read, model_of(raw))


@KINDS
@settings(max_examples=100)
@given(st.integers(0, 5000), st.sampled_from([b"", b"-"]), st.integers(4290, 4310))
def test_reader_finds_a_long_number_anywhere(
    kind: str, padding: int, sign: bytes, digits: int
) -> None:
    """A number at the length pydantic refuses, after any amount of text: never read unless
    the model reads it."""
    parse, model_of = READERS[kind]
    raw = (
        b'{"user_id": "u", "candidates": [{"id": "a", "content": "'
        + b"c" * padding
        + b'", "source": "", "x": '
        + sign
        + b"7" * digits
        + b"}]}"
    )
    read = parse(raw)
    assert (model_of(raw) is not None) is (len(sign) + digits <= 4300)
    if read is not None:
        assert same(read, model_of(raw))
