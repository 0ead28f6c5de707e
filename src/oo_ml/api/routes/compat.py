"""The existing service's contract, unchanged for valid requests (see shared/reference).

What changed behind it: state lives in the database and is the same from every worker; the
reward endpoints learn from the features logged when the tip was ranked, not from what the
client resends; the feature history persists; ``/reset`` forgets every policy; bad input is
refused with 422.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from oo_ml.api.deps import ApiDep, EngineDep, UserIdPath, decode_segment, get_engine, path_tail
from oo_ml.api.json_route import JsonBodyRoute
from oo_ml.api.routes._common import iso_time, log_feedback, rank_body
from oo_ml.api.schemas import OkOut, RewardIn, ScoreIn, ScoreOut
from oo_ml.types import Candidate, Context

router = APIRouter(tags=["existing contract"], route_class=JsonBodyRoute)

LINUCB = "linucb-v1"
EGREEDY = "egreedy-v1"


@router.get("/health")
async def health() -> dict[str, bool]:
    """Liveness: the process answers."""
    return {"ok": True}


async def _score(request: Request, body: ScoreIn, policy: str) -> JSONResponse:
    record = await rank_body(request, body, policy)
    return JSONResponse(
        {"tip_id": record.chosen_id, "score": float(record.scores[record.chosen]), "policy": policy}
    )


@router.post("/score", response_model=ScoreOut, dependencies=[ApiDep])
async def score(body: ScoreIn, request: Request) -> JSONResponse:
    """Rank with ``linucb-v1`` (d=5)."""
    return await _score(request, body, LINUCB)


@router.post("/score/egreedy", response_model=ScoreOut, dependencies=[ApiDep])
async def score_egreedy(body: ScoreIn, request: Request) -> JSONResponse:
    """Rank with ``egreedy-v1`` (d=7)."""
    return await _score(request, body, EGREEDY)


async def _reward(request: Request, body: RewardIn, policy: str) -> JSONResponse:
    engine = get_engine(request)
    f = body.features
    job = engine.legacy_reward_job(
        body.user_id,
        policy,
        body.tip_id,
        body.reward,
        client_candidate=Candidate(body.tip_id, f.is_overdue, f.task_age_days, f.priority),
        client_context=Context(f.hour_of_day, body.day_of_week),
    )
    log_feedback(request, await engine.run_async(job))
    return JSONResponse({"ok": True})


@router.post("/reward", response_model=OkOut, dependencies=[ApiDep])
async def reward(body: RewardIn, request: Request) -> JSONResponse:
    """A numeric reward (−1…1) for a tip shown by ``/score``."""
    return await _reward(request, body, LINUCB)


@router.post("/reward/egreedy", response_model=OkOut, dependencies=[ApiDep])
async def reward_egreedy(body: RewardIn, request: Request) -> JSONResponse:
    """A numeric reward (−1…1) for a tip shown by ``/score/egreedy``."""
    return await _reward(request, body, EGREEDY)


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
