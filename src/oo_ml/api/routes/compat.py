"""The existing service's contract, unchanged for valid requests (see shared/reference).

What changed behind it: state lives in the database and is the same from every worker; the
reward endpoints learn from the features logged when the tip was ranked, not from what the
client resends; the feature history persists; ``/reset`` forgets every policy; bad input is
refused with 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from oo_ml.api.deps import (
    ApiDep,
    EngineDep,
    UserIdPath,
    decode_segment,
    get_engine,
    get_metrics,
    path_tail,
)
from oo_ml.api.fast import DirectRoute, exact_json
from oo_ml.api.json_route import JsonBodyRoute
from oo_ml.api.metrics import Metrics
from oo_ml.api.rank_request import RankRequest, parse_score
from oo_ml.api.readers import Reward, parse_reward
from oo_ml.api.routes._common import decide, iso_time, note_feedback
from oo_ml.api.schemas import OkOut, RewardIn, ScoreIn, ScoreOut
from oo_ml.engine import Engine
from oo_ml.types import Candidate, Context

router = APIRouter(tags=["existing contract"], route_class=JsonBodyRoute)

LINUCB = "linucb-v1"
EGREEDY = "egreedy-v1"


@router.get("/health")
async def health() -> dict[str, bool]:
    """Liveness: the process answers."""
    return {"ok": True}


def _score_answer(
    policy: str,
) -> Callable[[Engine, Metrics, ScoreIn | RankRequest], Awaitable[dict[str, Any]]]:
    async def answer(
        engine: Engine, metrics: Metrics, body: ScoreIn | RankRequest
    ) -> dict[str, Any]:
        """The ``/score`` answer with ``policy`` to a valid body (or its request, read with
        that policy by :func:`parse_score`), for the route and for :mod:`oo_ml.api.fast`."""
        ranked = body if isinstance(body, RankRequest) else RankRequest.of(body, policy)
        record = await decide(engine, metrics, ranked)
        return {
            "tip_id": record.chosen_id,
            "score": float(record.scores[record.chosen]),
            "policy": policy,
        }

    return answer


linucb_score_json = _score_answer(LINUCB)
egreedy_score_json = _score_answer(EGREEDY)


@router.post("/score", response_model=ScoreOut, dependencies=[ApiDep])
async def score(body: ScoreIn, request: Request) -> JSONResponse:
    """Rank with ``linucb-v1`` (d=5)."""
    return JSONResponse(await linucb_score_json(get_engine(request), get_metrics(request), body))


@router.post("/score/egreedy", response_model=ScoreOut, dependencies=[ApiDep])
async def score_egreedy(body: ScoreIn, request: Request) -> JSONResponse:
    """Rank with ``egreedy-v1`` (d=7)."""
    return JSONResponse(await egreedy_score_json(get_engine(request), get_metrics(request), body))


def _reward_answer(
    policy: str,
) -> Callable[[Engine, Metrics, RewardIn | Reward], Awaitable[dict[str, Any]]]:
    async def answer(engine: Engine, metrics: Metrics, body: RewardIn | Reward) -> dict[str, Any]:
        """The ``/reward`` answer with ``policy`` to a valid body (or its values, read by
        :func:`parse_reward`), for the route and for :mod:`oo_ml.api.fast`."""
        f = body.features
        job = engine.legacy_reward_job(
            body.user_id,
            policy,
            body.tip_id,
            body.reward,
            client_candidate=Candidate(body.tip_id, f.is_overdue, f.task_age_days, f.priority),
            client_context=Context(f.hour_of_day, body.day_of_week),
        )
        note_feedback(metrics, await engine.run_async(job))
        return {"ok": True}

    return answer


linucb_reward_json = _reward_answer(LINUCB)
egreedy_reward_json = _reward_answer(EGREEDY)


@router.post("/reward", response_model=OkOut, dependencies=[ApiDep])
async def reward(body: RewardIn, request: Request) -> JSONResponse:
    """A numeric reward (−1…1) for a tip shown by ``/score``."""
    return JSONResponse(await linucb_reward_json(get_engine(request), get_metrics(request), body))


@router.post("/reward/egreedy", response_model=OkOut, dependencies=[ApiDep])
async def reward_egreedy(body: RewardIn, request: Request) -> JSONResponse:
    """A numeric reward (−1…1) for a tip shown by ``/score/egreedy``."""
    return JSONResponse(await egreedy_reward_json(get_engine(request), get_metrics(request), body))


# The direct path (oo_ml.api.fast) answers these routes' common requests itself, with the same
# JSON byte for byte (exact_json); each must keep exactly one body model and the API token check
# (ApiDep) as its only dependency.
DIRECT: dict[str, DirectRoute] = {
    "/score": DirectRoute(
        ScoreIn, linucb_score_json, partial(parse_score, policy=LINUCB), exact_json
    ),
    "/score/egreedy": DirectRoute(
        ScoreIn, egreedy_score_json, partial(parse_score, policy=EGREEDY), exact_json
    ),
    "/reward": DirectRoute(RewardIn, linucb_reward_json, parse_reward, exact_json),
    "/reward/egreedy": DirectRoute(RewardIn, egreedy_reward_json, parse_reward, exact_json),
}


def _stats_target(request: Request) -> tuple[str, str]:
    """(policy, user id) from the raw path: ``/stats/{id}`` or ``/stats/egreedy/{id}``."""
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    segments = raw.split("?", 1)[0][len("/stats/") :].split("/")
    if len(segments) == 2 and segments[0] == "egreedy":
        return EGREEDY, decode_segment(segments[1])
    if len(segments) == 1:
        return LINUCB, decode_segment(segments[0])
    raise HTTPException(404, "not found")


def _stats(engine: EngineDep, request: Request) -> dict[str, object]:
    policy, user_id = _stats_target(request)
    stats = engine.user_stats(user_id, policy)
    body: dict[str, object] = {
        "user_id": user_id,
        "pulls": stats.pulls,
        "reward_count": stats.reward_count,
        "cumulative_reward": stats.reward_sum,
        "estimated_mean_reward": stats.mean_reward,
        "theta": stats.theta,
        "last_updated": iso_time(stats.last_updated_ms),
    }
    if policy == EGREEDY:
        body["policy"] = EGREEDY
        body["exploration_rate"] = stats.explored / stats.pulls if stats.pulls else 0.0
        body["feature_labels"] = stats.labels
    return body


@router.get("/stats/egreedy/{user_id:path}", dependencies=[ApiDep])
def stats_egreedy(engine: EngineDep, request: Request, user_id: UserIdPath) -> dict[str, object]:
    """``egreedy-v1`` stats: pulls, rewards, θ with labels, and how often it explored
    (chose something other than its best-scoring tip)."""
    return _stats(engine, request)


@router.get("/stats/{user_id:path}", dependencies=[ApiDep])
def stats(engine: EngineDep, request: Request, user_id: UserIdPath) -> dict[str, object]:
    """``linucb-v1`` stats: pulls, rewards, θ."""
    return _stats(engine, request)


@router.get("/features/{user_id:path}", dependencies=[ApiDep])
def features(engine: EngineDep, request: Request, user_id: UserIdPath) -> dict[str, object]:
    """The user's last 100 ranked decisions (any policy), oldest first, since their last reset."""
    user_id = path_tail(request, "/features/")
    history = []
    for record in engine.history(user_id, limit=100):
        chosen = record.candidates[record.chosen]
        history.append(
            {
                "ts": iso_time(record.created_ms),
                "features": {
                    "hour_of_day": record.context.hour_of_day,
                    "is_overdue": chosen.is_overdue,
                    "task_age_days": chosen.task_age_days,
                    "priority": chosen.priority,
                    "day_of_week": record.context.day_of_week,
                    "exploring": record.explored,
                },
                "score": float(record.scores[record.chosen]),
                "tip_id": chosen.id,
                "policy": record.policy,
                "event_id": record.event_id,
            }
        )
    return {"user_id": user_id, "history": history}


@router.post("/reset/{user_id:path}", response_model=OkOut, dependencies=[ApiDep])
def reset(engine: EngineDep, request: Request, user_id: UserIdPath) -> dict[str, bool]:
    """Forget the user's models under every policy and clear their feature history."""
    engine.reset_user(path_tail(request, "/reset/"))
    return {"ok": True}
