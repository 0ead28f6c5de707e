"""Quick readers of the direct path's request bodies: msgspec, exactly as strict as the models.

The direct path of :mod:`oo_ml.api.fast` reads each hot route's common body with msgspec
instead of the route's pydantic model: structs that mirror the model (types as strict, the
same ranges, lengths and defaults, unknown fields ignored) are decoded and checked in C, in a
fraction of the model's time. A reader accepts only a body that the model accepts, reads it
to the same values, and returns ``None`` (declines) on any doubt, leaving that body to the
model as before, so every refusal is still the model's.

Where msgspec's JSON reading is laxer than pydantic's parser, :func:`reader` declines the
body before it could matter: a number with more than 4300 integer digits (pydantic: out of
range), and, in the values of unknown fields, which msgspec skips unread, invalid UTF-8 and
nesting deeper than 200. So a body is first read refusing unknown fields (every value read,
none skipped), and only if that fails read again skipping them, after those checks. Both
parsers let the last of duplicate keys win. ``tests/api/test_rank_request.py`` and
``tests/api/test_readers.py`` check all this against the models on generated bodies.

The bodies: ``/score``'s (:class:`Score`, :class:`~oo_ml.api.schemas.ScoreIn`),
``/v1/rank``'s (:class:`Rank`, ``RankIn``; both become a
:class:`~oo_ml.api.rank_request.RankRequest` there), ``/reward``'s (:func:`parse_reward`,
``RewardIn``) and ``/v1/feedback``'s (:func:`parse_feedback`, ``FeedbackIn``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from oo_ml.api.schemas import CONTENT_MAX_LENGTH, HARD_MAX_CANDIDATES, POLICY_MAX_LENGTH
from oo_ml.engine import check_event_id
from oo_ml.errors import ValidationError
from oo_ml.types import MAX_DWELL_MS, MAX_ID_LENGTH, MAX_TASK_AGE_DAYS

__all__ = [
    "FeedbackRequest",
    "Rank",
    "Reward",
    "Score",
    "event_id_ok",
    "parse_feedback",
    "parse_reward",
    "read_rank",
    "read_score",
    "reader",
]

S = TypeVar("S", bound=msgspec.Struct)

_LONGEST_INTEGER = 4300
"""pydantic's JSON parser refuses a number whose sign and integer digits are longer than this
(``Invalid JSON: number out of range``), wherever it is, even ``1…1e-4400``; msgspec reads it."""
_DEEPEST = 200
"""pydantic's JSON parser refuses arrays and objects nested deeper than this; msgspec skips
the value of an unknown field whatever its depth."""
_digits_from = re.compile(rb"[0-9]*").match
_FAILED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _long_number(body: bytes) -> bool:
    """Whether ``body`` may hold a number pydantic refuses for its length: a run of at least
    half the limit from one of the positions a half-limit apart (any longer run holds one)."""
    step = _LONGEST_INTEGER // 2
    for at in range(0, len(body), step):
        end = _digits_from(body, at).end()  # type: ignore[union-attr]  # [0-9]* always matches
        if end - at >= step:
            return True
    return False


def _skipping_unknown_fields(body: bytes, decode: Callable[[bytes], S]) -> S | None:
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
        return decode(body)
    except _FAILED:
        return None


def event_id_ok(event_id: str) -> bool:
    """Whether the engine's ``check_event_id`` accepts ``event_id``: a reader declines a body
    whose id it refuses, and the model's path answers the refusal."""
    try:
        check_event_id(event_id)
    except ValidationError:
        return False
    return True


def reader(known: type[S], lenient: type[S]) -> Callable[[bytes], S | None]:
    """A reader of bodies into ``lenient`` (a struct that mirrors a model and skips unknown
    fields), through ``known`` (the same, refusing them; a subclass): the value, or ``None``
    where msgspec's reading could differ from pydantic's or the struct refuses the body."""
    decode_known = msgspec.json.Decoder(known).decode
    decode = msgspec.json.Decoder(lenient).decode

    def read(body: bytes) -> S | None:
        if len(body) > _LONGEST_INTEGER and _long_number(body):
            return None
        try:
            return decode_known(body)
        except msgspec.ValidationError:  # an unknown field, or a value the model refuses too
            return _skipping_unknown_fields(body, decode)
        except _FAILED:
            return None

    return read


# -- the structs: each mirrors its model; each Known* refuses unknown fields ------------------

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Hour = Annotated[int, Meta(ge=0, le=23)]
Day = Annotated[int, Meta(ge=0, le=6)]


class Features(msgspec.Struct, frozen=True, gc=False):
    """``CandidateFeaturesIn`` (frozen: its default instance is shared)."""

    hour_of_day: Hour = 12  # checked by the model, unused by ranking, the client's for /reward
    is_overdue: bool = False
    task_age_days: Annotated[float, Meta(ge=-MAX_TASK_AGE_DAYS, le=MAX_TASK_AGE_DAYS)] = 0.0
    priority: Annotated[int, Meta(ge=1, le=4)] = 1


class Candidate(msgspec.Struct, gc=False):
    """``CandidateIn``."""

    id: Id
    content: Annotated[str, Meta(max_length=CONTENT_MAX_LENGTH)]
    source: Annotated[str, Meta(max_length=MAX_ID_LENGTH)]
    source_id: Annotated[str, Meta(max_length=MAX_ID_LENGTH)] | None = None
    features: Features = Features()


class Context(msgspec.Struct, frozen=True, gc=False):
    """``ContextIn``."""

    hour_of_day: Hour = 12
    day_of_week: Day = 0


class Score(msgspec.Struct, gc=False):
    """``ScoreIn`` (``policy`` and ``event_id`` are unknown fields here, skipped)."""

    user_id: Id
    candidates: Annotated[Sequence[Candidate], Meta(max_length=HARD_MAX_CANDIDATES)]  # a list
    context: Context = Context()


class Rank(Score, gc=False):
    """``RankIn``; ``event_id`` is checked by the engine's ``check_event_id``."""

    policy: Annotated[str, Meta(max_length=POLICY_MAX_LENGTH)] | None = None
    event_id: str | None = None


class Reward(msgspec.Struct, gc=False):
    """``RewardIn``."""

    user_id: Id
    tip_id: Id
    reward: Annotated[float, Meta(ge=-1.0, le=1.0)]
    features: Features
    day_of_week: Day = 0


Dwell = Annotated[int, Meta(ge=0, le=MAX_DWELL_MS)] | None | UnsetType


class _Feedback(msgspec.Struct, gc=False):
    """``FeedbackIn``, each spelling of a field apart: the model reads ``eventId`` when it is
    there (whatever its value) and ``event_id`` only when it is not; ``dwellMs`` likewise."""

    action: Literal["done", "snooze", "dismiss"]
    event_id: str | UnsetType = UNSET  # checked by the engine's check_event_id
    event_id_alias: str | UnsetType = field(name="eventId", default=UNSET)
    dwell_ms: Dwell = UNSET
    dwell_ms_alias: Dwell = field(name="dwellMs", default=UNSET)


class _KnownFeatures(Features, frozen=True, gc=False, forbid_unknown_fields=True):
    pass


class _KnownCandidate(Candidate, gc=False, forbid_unknown_fields=True):
    features: _KnownFeatures = _KnownFeatures()


class _KnownContext(Context, frozen=True, gc=False, forbid_unknown_fields=True):
    pass


_KnownCandidates = Annotated[Sequence[_KnownCandidate], Meta(max_length=HARD_MAX_CANDIDATES)]


class _KnownScore(Score, gc=False, forbid_unknown_fields=True):
    candidates: _KnownCandidates
    context: _KnownContext = _KnownContext()


class _KnownRank(Rank, gc=False, forbid_unknown_fields=True):
    candidates: _KnownCandidates
    context: _KnownContext = _KnownContext()


class _KnownReward(Reward, gc=False, forbid_unknown_fields=True):
    features: _KnownFeatures


class _KnownFeedback(_Feedback, gc=False, forbid_unknown_fields=True):
    pass


read_score = reader(_KnownScore, Score)
"""A ``/score`` body as :class:`Score`, or ``None`` (see the module's docstring)."""
read_rank = reader(_KnownRank, Rank)
"""A ``/v1/rank`` body as :class:`Rank`, or ``None`` (its ``event_id`` is not checked yet)."""
parse_reward = reader(_KnownReward, Reward)
"""A ``/reward`` body that ``RewardIn`` accepts, as :class:`Reward` (its fields named and
valued as the model's); ``None`` to leave it to the model."""
_read_feedback = reader(_KnownFeedback, _Feedback)


class FeedbackRequest(msgspec.Struct, frozen=True, gc=False):
    """A ``/v1/feedback`` body as ``FeedbackIn`` reads it."""

    event_id: str
    action: str
    dwell_ms: int | None


def parse_feedback(body: bytes) -> FeedbackRequest | None:
    """The values of a ``/v1/feedback`` body that ``FeedbackIn`` accepts; ``None`` to leave it
    to the model."""
    read = _read_feedback(body)
    if read is None:
        return None
    event_id = read.event_id if read.event_id_alias is UNSET else read.event_id_alias
    if event_id is UNSET:
        return None  # neither spelling: the model refuses the body
    if not event_id_ok(event_id):
        return None
    dwell_ms = read.dwell_ms if read.dwell_ms_alias is UNSET else read.dwell_ms_alias
    return FeedbackRequest(event_id, read.action, None if dwell_ms is UNSET else dwell_ms)
