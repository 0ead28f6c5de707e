"""``parse_rank`` accepts only what ``RankIn`` accepts, and reads it to the same request.

The direct path reads ``/v1/rank`` bodies with ``parse_rank`` and leaves to the model every
body it declines; so the refusals stay the model's as long as ``parse_rank`` never accepts a
body the model (or the core, when converting it) refuses, and never reads an accepted one
differently. Bodies are generated around the schema: valid values, values at and beyond each
bound, wrong JSON types, missing and extra fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as ModelRefusal

from oo_ml.api.rank_request import RankRequest, parse_rank
from oo_ml.api.schemas import RankIn
from oo_ml.errors import ValidationError


def by_model(body: bytes) -> RankRequest | None:
    """What the model (and the core's conversion after it) makes of ``body``."""
    try:
        model = RankIn.model_validate_json(body)
        return RankRequest.of(model, model.policy, model.event_id)
    except (ModelRefusal, ValidationError):
        return None


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


@pytest.mark.parametrize(("path", "value"), CASES, ids=[f"{p}={v!r:.20}" for p, v in CASES])
def test_parse_rank_reads_each_field_as_the_model_does(path: tuple[Any, ...], value: Any) -> None:
    """One field at a time at its bounds, beyond them, of a wrong type, or left out: accepted
    by both, read alike, or declined where the model (or the core) refuses."""
    raw = json.dumps(_perturbed(path, value)).encode()
    assert parse_rank(raw) == by_model(raw)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(CASES), min_size=1, max_size=4), st.booleans())
def test_parse_rank_reads_bodies_with_several_odd_fields_as_the_model_does(
    cases: list[tuple[tuple[Any, ...], Any]], ascii_only: bool
) -> None:
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
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced the field's parent
    raw = json.dumps(body, ensure_ascii=ascii_only).encode()
    assert parse_rank(raw) == by_model(raw)


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
def test_parse_rank_agrees_with_the_model_on_unusual_json(raw: bytes) -> None:
    read = parse_rank(raw)
    if read is not None:
        assert read == by_model(raw)
