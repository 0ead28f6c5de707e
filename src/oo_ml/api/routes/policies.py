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


@router.put("/active", dependencies=[AdminDep])
def set_active(body: ActiveIn, engine: EngineDep) -> dict[str, str]:
    """Make ``policy`` serve every request that names none (admin)."""
    return {"active": engine.set_active_policy(body.policy).name}


@router.put("/shadow", dependencies=[AdminDep], response_model=ShadowOut)
def set_shadow(body: ShadowIn, engine: EngineDep) -> dict[str, list[str]]:
    """Score ``policies`` beside the served policy on every request and log what they would
    have done, never showing it (admin). A shadow is skipped on requests it serves itself."""
    return {"shadow": [p.name for p in engine.set_shadow_policies(body.policies)]}
