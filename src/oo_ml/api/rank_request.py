"""A rank body in the engine's terms, and a quicker way to read the common one.

:class:`RankRequest` is what a ``/score``-shaped body (:class:`~oo_ml.api.schemas.ScoreIn`,
:class:`~oo_ml.api.schemas.RankIn`) becomes before the engine decides: core
:class:`~oo_ml.types.Context` and :class:`~oo_ml.types.Candidate` values and what is logged
beside them.

:func:`parse_rank` reads a ``/v1/rank`` body straight into one, for the direct path of
:mod:`oo_ml.api.fast`: msgspec decodes and checks it in C into structs that mirror ``RankIn``
(types as strict, the same ranges, lengths and defaults, unknown fields ignored), a fraction
of the time of pydantic's model and then one conversion per candidate. It accepts only a
body that ``RankIn`` accepts and converts to the very same request, and declines (``None``)
on any doubt — a JSON number where an integer is expected, a value out of range, anything
msgspec refuses, a candidate the core refuses — leaving that body to ``RankIn`` as before,
so every refusal is still the model's.

Where msgspec's JSON reading is laxer than pydantic's, the body is declined before it could
matter: a number with more than 4300 integer digits (pydantic: out of range), and, in the
values of unknown fields, which msgspec skips unread, invalid UTF-8 and nesting deeper than
200. So a body is first read refusing unknown fields (every value read, none skipped), and
only if that fails read again skipping them, after those checks. Both parsers let the last
of duplicate keys win. ``tests/api/test_rank_request.py`` checks all this against the model
on generated bodies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

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


class _Features(msgspec.Struct, frozen=True, gc=False):
    """``CandidateFeaturesIn`` (frozen: its default instance is shared)."""

    hour_of_day: Annotated[int, Meta(ge=0, le=23)] = 12  # checked by the model, then unused
    is_overdue: bool = False
    task_age_days: Annotated[float, Meta(ge=-MAX_TASK_AGE_DAYS, le=MAX_TASK_AGE_DAYS)] = 0.0
    priority: Annotated[int, Meta(ge=1, le=4)] = 1


class _Candidate(msgspec.Struct, gc=False):
    """``CandidateIn``."""

    id: Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    content: Annotated[str, Meta(max_length=CONTENT_MAX_LENGTH)]
    source: Annotated[str, Meta(max_length=MAX_ID_LENGTH)]
    source_id: Annotated[str, Meta(max_length=MAX_ID_LENGTH)] | None = None
    features: _Features = _Features()


class _Context(msgspec.Struct, frozen=True, gc=False):
    """``ContextIn``."""

    hour_of_day: Annotated[int, Meta(ge=0, le=23)] = 12
    day_of_week: Annotated[int, Meta(ge=0, le=6)] = 0


class _Rank(msgspec.Struct, gc=False):
    """``RankIn``; ``event_id`` is checked by the engine's ``check_event_id``."""

    user_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    candidates: Annotated[Sequence[_Candidate], Meta(max_length=HARD_MAX_CANDIDATES)]  # a list
    context: _Context = _Context()
    policy: Annotated[str, Meta(max_length=POLICY_MAX_LENGTH)] | None = None
    event_id: str | None = None


# The same, refusing unknown fields (the body's every value is then read, none skipped).
class _KnownFeatures(_Features, frozen=True, gc=False, forbid_unknown_fields=True):
    pass


class _KnownCandidate(_Candidate, gc=False, forbid_unknown_fields=True):
    features: _KnownFeatures = _KnownFeatures()


class _KnownContext(_Context, frozen=True, gc=False, forbid_unknown_fields=True):
    pass


class _KnownRank(_Rank, gc=False, forbid_unknown_fields=True):
    candidates: Annotated[Sequence[_KnownCandidate], Meta(max_length=HARD_MAX_CANDIDATES)]
    context: _KnownContext = _KnownContext()


_decode_known = msgspec.json.Decoder(_KnownRank).decode
_decode = msgspec.json.Decoder(_Rank).decode

_LONGEST_INTEGER = 4300
"""pydantic's JSON parser refuses a number whose sign and integer digits are longer than this
(``Invalid JSON: number out of range``), wherever it is, even ``1…1e-4400``; msgspec reads it."""
_DEEPEST = 200
"""pydantic's JSON parser refuses arrays and objects nested deeper than this; msgspec skips
the value of an unknown field whatever its depth."""
_digits_from = re.compile(rb"[0-9]*").match


def _long_number(body: bytes) -> bool:
    """Whether ``body`` may hold a number pydantic refuses for its length: a run of at least
    half the limit from one of the positions a half-limit apart (any longer run holds one)."""
    step = _LONGEST_INTEGER // 2
    for at in range(0, len(body), step):
        end = _digits_from(body, at).end()  # type: ignore[union-attr]  # [0-9]* always matches
        if end - at >= step:
            return True
    return False


def _with_unknown_fields(body: bytes) -> _Rank | None:
    """``body`` read skipping unknown fields, if msgspec's skipping cannot let through what
    pydantic's parser refuses: invalid UTF-8 (skipped strings are not decoded) or values
    nested too deep (at most as deep as there are brackets)."""
    if body.count(b"[") + body.count(b"{") > _DEEPEST:
        return None
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    try:
        return _decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


_CONTEXTS = tuple(tuple(Context(hour, day) for day in range(7)) for hour in range(24))
"""Every context, made once: a frozen value, shared by the requests that name it."""


def parse_rank(body: bytes) -> RankRequest | None:
    """The request of a ``/v1/rank`` body that ``RankIn`` accepts; ``None`` to leave it to
    ``RankIn`` (see the module's docstring)."""
    if len(body) > _LONGEST_INTEGER and _long_number(body):
        return None
    rank: _Rank | None
    try:
        rank = _decode_known(body)
    except msgspec.ValidationError:  # an unknown field, or a value the model refuses too
        rank = _with_unknown_fields(body)
        if rank is None:
            return None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    event_id = rank.event_id
    if event_id is not None:
        try:
            check_event_id(event_id)
        except ValidationError:
            return None
    items = rank.candidates
    candidates: list[Candidate] = []
    add = candidates.append
    for item in items:
        tip_id = item.id
        source = item.source
        if "\x00" in tip_id or "\x00" in source:  # the core refuses it: the model's path answers
            return None
        f = item.features
        add(checked_candidate(tip_id, f.is_overdue, f.task_age_days, f.priority, source))
    context = rank.context
    return RankRequest(
        rank.user_id,
        _CONTEXTS[context.hour_of_day][context.day_of_week],
        candidates,
        [item.source_id for item in items],
        [item.content for item in items],
        rank.policy,
        event_id,
    )
