"""The registered policies and which one is active."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from oo_ml.api.deps import AdminDep, EngineDep
from oo_ml.engine import MAX_SHADOW_POLICIES
from oo_ml.policies import POLICIES

router = APIRouter(prefix="/v1/policies", tags=["policies"])


class ActiveIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    policy: str = Field(min_length=1, max_length=64)


class ShadowIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    policies: list[str] = Field(
        description=f"Registered policy names, distinct, at most {MAX_SHADOW_POLICIES}; "
        "[] for none."
    )


class ShadowOut(BaseModel):
    shadow: list[str]


@router.get("")
def list_policies(engine: EngineDep) -> dict[str, Any]:
    """Every registered policy with its parameters, the active one and the shadow ones."""
    return {
        "active": engine.active_policy().name,
        "shadow": [p.name for p in engine.shadow_policies()],
        "policies": [
            {"name": p.name, "description": p.description, "params": p.params()}
            for p in POLICIES.values()
        ],
    }


@router.put(
    "/active",
    dependencies=[AdminDep],
    responses={409: {"description": "the promotion gate refused the challenger"}},
)
def set_active(body: ActiveIn, engine: EngineDep) -> dict[str, Any]:
    """Make ``policy`` serve every request that names none (admin).

    With a promotion gate configured (``OO_ML_PROMOTION_GATE``) the challenger is first
    evaluated off-policy on the decision log beside the active policy; it is refused (409, with
    the numbers) unless its lower 95% bound beats the active policy's estimate.
    """
    policy, verdict = engine.promote(body.policy)
    return {"active": policy.name, "gate": None if verdict is None else verdict.to_dict()}


@router.put("/shadow", dependencies=[AdminDep], response_model=ShadowOut)
def set_shadow(body: ShadowIn, engine: EngineDep) -> dict[str, list[str]]:
    """Score ``policies`` beside the served policy on every request and log what they would
    have done, never showing it (admin). A shadow is skipped on requests it serves itself."""
    return {"shadow": [p.name for p in engine.set_shadow_policies(body.policies)]}
