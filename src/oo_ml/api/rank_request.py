"""A rank body in the engine's terms, and a quicker way to read the common one.

:class:`RankRequest` is what a ``/score``-shaped body (:class:`~oo_ml.api.schemas.ScoreIn`,
:class:`~oo_ml.api.schemas.RankIn`) becomes before the engine decides: core
:class:`~oo_ml.types.Context` and :class:`~oo_ml.types.Candidate` values and what is logged
beside them.

:func:`parse_rank` reads a ``/v1/rank`` body straight into one, for the direct path of
:mod:`oo_ml.api.fast`: orjson and a few type and range checks instead of pydantic's model
and then one conversion per candidate (about a third of the time). It accepts only a body
that ``RankIn`` accepts and converts to the very same request, and declines (``None``) on
any doubt — a JSON number where an integer is expected, a value out of range, anything
orjson refuses, a candidate the core refuses — leaving that body to ``RankIn`` as before, so
every refusal is still the model's. ``tests/api/test_rank_request.py`` checks this against
the model on generated bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from oo_ml.api.schemas import (
    CONTENT_MAX_LENGTH,
    HARD_MAX_CANDIDATES,
    POLICY_MAX_LENGTH,
    ScoreIn,
)
from oo_ml.engine import check_event_id
from oo_ml.errors import ValidationError
from oo_ml.types import (
    MAX_ID_LENGTH,
    MAX_TASK_AGE_DAYS,
    Candidate,
    Context,
    checked_candidate,
)

__all__ = ["RankRequest", "parse_rank"]


@dataclass(frozen=True, slots=True)
class RankRequest:
    """What to rank, for whom, and what to log beside it."""

    user_id: str
    context: Context
    candidates: list[Candidate]
    source_ids: list[str | None]
    contents: list[str]
    policy: str | None = None
    event_id: str | None = None

    @classmethod
    def of(
        cls, body: ScoreIn, policy: str | None = None, event_id: str | None = None
    ) -> RankRequest:
        """The request of a parsed body (raises the core's ``ValidationError``)."""
        candidates = body.candidates
        return cls(
            body.user_id,
            body.context.to_core(),
            [c.to_core() for c in candidates],
            [c.source_id for c in candidates],
            [c.content for c in candidates],
            policy,
            event_id,
        )


_ABSENT: Any = object()


class _DeclinedError(Exception):
    """The body is left to the model."""


def _int(value: object, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:  # bool is not int here
        raise _DeclinedError
    return value


def _str(value: object, lo: int, hi: int) -> str:
    if type(value) is not str or not lo <= len(value) <= hi:
        raise _DeclinedError
    return value


def _dict(value: object) -> dict[str, Any]:
    if type(value) is not dict:
        raise _DeclinedError
    return value


def _optional_str(value: object, lo: int, hi: int) -> str | None:
    return None if value is None else _str(value, lo, hi)


def _candidates(items: list[Any]) -> tuple[list[Candidate], list[str | None], list[str]]:
    """The candidates of a list of JSON objects, with their source ids and contents.

    One loop with the checks written out: the helpers above cost a call each, and ten
    candidates make sixty of them. The checks are the helpers', and Candidate's own.
    """
    candidates: list[Candidate] = []
    source_ids: list[str | None] = []
    contents: list[str] = []
    add_candidate, add_source_id, add_content = (
        candidates.append,
        source_ids.append,
        contents.append,
    )
    max_age = MAX_TASK_AGE_DAYS
    for item in items:
        if type(item) is not dict:
            raise _DeclinedError
        get = item.get
        features = get("features", _ABSENT)
        if features is _ABSENT:
            overdue, age, priority = False, 0.0, 1
        else:
            if type(features) is not dict:
                raise _DeclinedError
            hour = features.get("hour_of_day", 12)  # checked by the model, then unused
            overdue = features.get("is_overdue", False)
            age = features.get("task_age_days", 0.0)
            priority = features.get("priority", 1)
            if type(age) is int:  # a JSON integer is a valid float
                age = float(age)
            if (
                type(hour) is not int  # bool is not int here
                or not 0 <= hour <= 23
                or type(priority) is not int
                or not 1 <= priority <= 4
                or type(overdue) is not bool
                or type(age) is not float
                or not -max_age <= age <= max_age  # also refuses NaN
            ):
                raise _DeclinedError
        tip_id = get("id")
        source = get("source")
        source_id = get("source_id")
        content = get("content")
        if (
            type(tip_id) is not str
            or not 1 <= len(tip_id) <= MAX_ID_LENGTH
            or "\x00" in tip_id
            or type(source) is not str
            or len(source) > MAX_ID_LENGTH
            or "\x00" in source
            or (
                source_id is not None
                and (type(source_id) is not str or len(source_id) > MAX_ID_LENGTH)
            )
            or type(content) is not str
            or len(content) > CONTENT_MAX_LENGTH
        ):
            raise _DeclinedError
        # Every check of Candidate's own is made above (NUL: the core's refusal, left to
        # the model's path, which answers it).
        add_candidate(checked_candidate(tip_id, overdue, age, priority, source))
        add_source_id(source_id)
        add_content(content)
    return candidates, source_ids, contents


def _request(data: dict[str, Any]) -> RankRequest:
    user_id = _str(data.get("user_id"), 1, MAX_ID_LENGTH)
    policy = _optional_str(data.get("policy"), 0, POLICY_MAX_LENGTH)
    event_id = data.get("event_id")
    if event_id is not None:
        check_event_id(event_id)  # its ValidationError declines the body, as any doubt does
    context = data.get("context", _ABSENT)
    if context is _ABSENT:
        hour, day = 12, 0
    else:
        context = _dict(context)
        hour = _int(context.get("hour_of_day", 12), 0, 23)
        day = _int(context.get("day_of_week", 0), 0, 6)
    items = data.get("candidates")
    if type(items) is not list or len(items) > HARD_MAX_CANDIDATES:
        raise _DeclinedError
    candidates, source_ids, contents = _candidates(items)
    return RankRequest(
        user_id, Context(hour, day), candidates, source_ids, contents, policy, event_id
    )


def parse_rank(body: bytes) -> RankRequest | None:
    """The request of a ``/v1/rank`` body that ``RankIn`` accepts; ``None`` to leave it to
    ``RankIn`` (see the module's docstring)."""
    try:
        return _request(_dict(orjson.loads(body)))
    # ValidationError: the core refuses what the model let through, and its path says so.
    except (_DeclinedError, orjson.JSONDecodeError, ValidationError):
        return None
