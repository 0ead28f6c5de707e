"""Per-user views: model statistics with feature labels, recent decisions, and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from oo_ml.api.deps import AdminDep, ApiDep, EngineDep, UserIdPath, path_tail
from oo_ml.api.routes._common import iso_time
from oo_ml.api.routes.decisions import decision_json

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/{user_id:path}/stats", dependencies=[ApiDep])
def user_stats(
    engine: EngineDep,
    request: Request,
    user_id: UserIdPath,
    policy: Annotated[str | None, Query(max_length=64, description="default: active")] = None,
) -> dict[str, Any]:
    """Pulls, rewards, mean reward and θ by feature label for one policy."""
    user_id = path_tail(request, "/v1/users/", "/stats")
    stats = engine.user_stats(user_id, policy or engine.active_policy().name)
    return {
        "user_id": user_id,
        "policy": stats.policy,
        "pulls": stats.pulls,
        "explored": stats.explored,
        "reward_count": stats.reward_count,
        "reward_sum": stats.reward_sum,
        "mean_reward": stats.mean_reward,
        "model_updates": stats.model_updates,
        "theta": [
            {"label": label, "value": value}
            for label, value in zip(stats.labels, stats.theta, strict=True)
        ],
        "last_updated": iso_time(stats.last_updated_ms),
    }


@router.get("/{user_id:path}/decisions", dependencies=[AdminDep])
def user_decisions(
    engine: EngineDep,
    request: Request,
    user_id: UserIdPath,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The user's newest decisions with their feedback and shadow decisions (admin)."""
    user_id = path_tail(request, "/v1/users/", "/decisions")
    records = engine.recent(user_id, limit)
    return {
        "user_id": user_id,
        "decisions": [decision_json(r, f, shadows=s) for r, f, s in records],
    }


@router.delete("/{user_id:path}", dependencies=[AdminDep])
def forget_user(engine: EngineDep, request: Request, user_id: UserIdPath) -> dict[str, Any]:
    """Erase the user: models, decisions and feedback (admin)."""
    user_id = path_tail(request, "/v1/users/")
    return {"user_id": user_id, "deleted_rows": engine.forget_user(user_id)}
