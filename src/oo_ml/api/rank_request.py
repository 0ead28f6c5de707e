"""A rank body in the engine's terms, and a quicker way to read the common one.

:class:`RankRequest` is what a ``/score``-shaped body (:class:`~oo_ml.api.schemas.ScoreIn`,
:class:`~oo_ml.api.schemas.RankIn`) becomes before the engine decides: core
:class:`~oo_ml.types.Context` and :class:`~oo_ml.types.Candidate` values and what is logged
beside them.

:func:`parse_rank` and :func:`parse_score` read a ``/v1/rank`` or ``/score`` body straight
into one, for the direct path of :mod:`oo_ml.api.fast`: msgspec decodes and checks it in C
(:mod:`oo_ml.api.readers`, whose docstring says how it keeps to what the model accepts), a
fraction of the time of pydantic's model, and then one conversion per candidate. Each accepts
only a body that its model accepts and converts to the very same request, and declines
(``None``) on any doubt — a JSON number where an integer is expected, a value out of range,
anything msgspec refuses, a candidate the core refuses — leaving that body to the model as
before, so every refusal is still the model's. ``tests/api/test_rank_request.py`` checks them
against the models on generated bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

from oo_ml.api.readers import Score, event_id_ok, read_rank, read_score
from oo_ml.api.schemas import ScoreIn
from oo_ml.types import Candidate, Context, checked_candidate, shared_context

__all__ = ["RankRequest", "parse_rank", "parse_score"]


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


def parse_rank(body: bytes) -> RankRequest | None:
    """The request of a ``/v1/rank`` body that ``RankIn`` accepts; ``None`` to leave it to
    ``RankIn`` (see the module's docstring)."""
    rank = read_rank(body)
    if rank is None:
        return None
    event_id = rank.event_id
    if event_id is not None and not event_id_ok(event_id):
        return None
    return _request(rank, rank.policy, event_id)


def parse_score(body: bytes, policy: str) -> RankRequest | None:
    """The request of a ``/score`` body that ``ScoreIn`` accepts, ranked with ``policy``;
    ``None`` to leave it to ``ScoreIn``. A ``policy`` or ``event_id`` in the body is an
    unknown field there, skipped unread."""
    score = read_score(body)
    return None if score is None else _request(score, policy, None)


def _request(score: Score, policy: str | None, event_id: str | None) -> RankRequest | None:
    """The request of a read body; ``None`` if the core refuses a candidate."""
    items = score.candidates
    candidates: list[Candidate] = []
    add = candidates.append
    for item in items:
        tip_id = item.id
        source = item.source
        if "\x00" in tip_id or "\x00" in source:  # the core refuses it: the model's path answers
            return None
        f = item.features
        add(checked_candidate(tip_id, f.is_overdue, f.task_age_days, f.priority, source))
    context = score.context
    return RankRequest(
        score.user_id,
        shared_context(context.hour_of_day, context.day_of_week),
        candidates,
        [item.source_id for item in items],
        [item.content for item in items],
        policy,
        event_id,
    )
