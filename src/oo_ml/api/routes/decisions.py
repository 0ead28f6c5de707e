"""The decision API: rank with an event id and propensities; feedback names the event id and
the raw outcome, and the server infers the reward from what it logged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from oo_ml.api.deps import ApiDep, EngineDep, EventIdPath, get_engine, get_metrics, path_tail
from oo_ml.api.fast import DirectRoute
from oo_ml.api.json_route import JsonBodyRoute
from oo_ml.api.metrics import Metrics
from oo_ml.api.rank_request import RankRequest, parse_rank
from oo_ml.api.readers import FeedbackRequest, parse_feedback
from oo_ml.api.routes._common import decide, iso_time, note_feedback
from oo_ml.api.schemas import DecisionOut, FeedbackIn, FeedbackOut, RankIn, RankOut
from oo_ml.engine import Engine
from oo_ml.store.base import DecisionRecord, FeedbackRecord, ShadowRecord
from oo_ml.types import Outcome

router = APIRouter(prefix="/v1", tags=["decisions"], route_class=JsonBodyRoute)


@router.post("/rank", response_model=RankOut, dependencies=[ApiDep])
async def rank(body: RankIn, request: Request) -> JSONResponse:
    """Choose the tip to show; the decision is logged before the answer is sent."""
    return JSONResponse(await rank_json(get_engine(request), get_metrics(request), body))


async def rank_json(engine: Engine, metrics: Metrics, body: RankIn | RankRequest) -> dict[str, Any]:
    """``/v1/rank``'s answer to a valid body (or its request, read by :func:`parse_rank`),
    for the route and for :mod:`oo_ml.api.fast`."""
    ranked = (
        body if isinstance(body, RankRequest) else RankRequest.of(body, body.policy, body.event_id)
    )
    return rank_answer(await decide(engine, metrics, ranked))


def rank_answer(record: DecisionRecord) -> dict[str, Any]:
    """``/v1/rank``'s answer for a decision: the chosen candidate, and the ranking of every
    candidate — the chosen one first, then by score, then by probability, highest first, ties
    in the candidates' order."""
    probs = record.probabilities
    assert probs is not None
    scores = record.scores.tolist()
    probabilities = probs.tolist()
    chosen = record.chosen
    candidates = record.candidates
    score = scores[chosen]
    probability = probabilities[chosen]
    tip_id = candidates[chosen].id
    ranking = [{"tip_id": tip_id, "score": score, "probability": probability}]
    # Sorted as (score, probability, -index) tuples, highest first: compared in C, where a key
    # function costs a call per candidate. (A NaN would sort anyhow, but the answer refuses it.)
    ranking += [
        {"tip_id": candidates[-minus_i].id, "score": s, "probability": p}
        for s, p, minus_i in sorted(
            zip(scores, probabilities, range(0, -len(scores), -1), strict=True), reverse=True
        )
        if minus_i != -chosen
    ]
    return {
        "event_id": record.event_id,
        "tip_id": tip_id,
        "policy": record.policy,
        "score": score,
        "probability": probability,
        "ranking": ranking,
    }


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    dependencies=[ApiDep],
    responses={404: {"description": "Unknown event id"}},
)
async def feedback(body: FeedbackIn, request: Request) -> JSONResponse:
    """What the person did with a tip. The same event twice counts once (``duplicate``)."""
    return JSONResponse(await feedback_json(get_engine(request), get_metrics(request), body))


async def feedback_json(
    engine: Engine, metrics: Metrics, body: FeedbackIn | FeedbackRequest
) -> dict[str, Any]:
    """``/v1/feedback``'s answer to a valid body (or its values, read by
    :func:`parse_feedback`), for the route and for :mod:`oo_ml.api.fast`."""
    job = engine.feedback_job(body.event_id, Outcome(body.action, body.dwell_ms))  # type: ignore[arg-type]
    result = await engine.run_async(job)
    note_feedback(metrics, result)
    fb = result.feedback
    return {
        "event_id": fb.event_id,
        "reward": fb.reward,
        "reward_milli": fb.reward_milli,
        "reward_rule": fb.reward_rule,
        "duplicate": result.duplicate,
    }


# The direct path (oo_ml.api.fast) answers these two routes' common requests itself; each must
# keep exactly one body model and the API token check (ApiDep) as its only dependency.
DIRECT: dict[str, DirectRoute] = {
    "/v1/rank": DirectRoute(RankIn, rank_json, parse_rank),
    "/v1/feedback": DirectRoute(FeedbackIn, feedback_json, parse_feedback),
}


def decision_json(
    record: DecisionRecord,
    feedback: FeedbackRecord | None,
    *,
    shadows: Sequence[ShadowRecord] | None = None,
) -> dict[str, Any]:
    """A logged decision with its feedback (and its shadow decisions when given), as the API
    and the console show it."""
    probs = None if record.probabilities is None else record.probabilities.tolist()
    means = None if record.means is None else record.means.tolist()
    candidates = []
    for i, c in enumerate(record.candidates):
        candidates.append(
            {
                "tip_id": c.id,
                "source": c.source,
                "source_id": record.source_ids[i],
                "is_overdue": c.is_overdue,
                "task_age_days": c.task_age_days,
                "priority": c.priority,
                "content": None if record.content is None else record.content[i],
                "features": record.features[i].tolist(),
                "score": float(record.scores[i]),
                "probability": None if probs is None else probs[i],
                "expected_reward": None if means is None else means[i],
            }
        )
    found: dict[str, Any] = {
        "event_id": record.event_id,
        "user_id": record.user_id,
        "policy": record.policy,
        "created": iso_time(record.created_ms),
        "created_ms": record.created_ms,
        "origin": record.origin,
        "context": {
            "hour_of_day": record.context.hour_of_day,
            "day_of_week": record.context.day_of_week,
        },
        "tip_id": record.chosen_id,
        "chosen": record.chosen,
        "score": float(record.scores[record.chosen]),
        "probability": None if probs is None else probs[record.chosen],
        "explored": record.explored,
        "seed": record.seed,
        "model_updates": record.model_updates,
        "candidates": candidates,
        "feedback": None
        if feedback is None
        else {
            "action": feedback.action,
            "dwell_ms": feedback.dwell_ms,
            "reward": feedback.reward,
            "reward_milli": feedback.reward_milli,
            "reward_rule": feedback.reward_rule,
            "origin": feedback.origin,
            "applied": feedback.applied,
            "created": iso_time(feedback.created_ms),
        },
    }
    if shadows is not None:
        found["shadows"] = [shadow_json(record, s) for s in shadows]
    return found


def shadow_json(record: DecisionRecord, shadow: ShadowRecord) -> dict[str, Any]:
    probabilities = shadow.probabilities.tolist()
    return {
        "policy": shadow.policy,
        "chosen_id": record.candidates[shadow.chosen].id,
        "score": float(shadow.scores[shadow.chosen]),
        "probability": probabilities[record.chosen],
        "probabilities": probabilities,
        "expected_rewards": None if shadow.means is None else shadow.means.tolist(),
    }


@router.get(
    "/decisions/{event_id:path}",
    dependencies=[ApiDep],
    response_model=DecisionOut,
    responses={404: {"description": "Unknown event id"}},
)
def get_decision(engine: EngineDep, request: Request, event_id: EventIdPath) -> dict[str, Any]:
    """The decision as logged — candidates, features, scores, probabilities — with feedback,
    and what each shadow policy would have done."""
    record, fb, shadows = engine.decision_detail(path_tail(request, "/v1/decisions/"))
    return decision_json(record, fb, shadows=shadows)
