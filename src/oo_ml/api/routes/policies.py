"""The registered policies and which one is active."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from oo_ml.api.deps import AdminDep, EngineDep
from oo_ml.policies import POLICIES

router = APIRouter(prefix="/v1/policies", tags=["policies"])


class ActiveIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    policy: str = Field(min_length=1, max_length=64)


@router.get("")
def list_policies(engine: EngineDep) -> dict[str, Any]:
    """Every registered policy with its parameters, and the active one."""
    return {
        "active": engine.active_policy().name,
        "policies": [
            {"name": p.name, "description": p.description, "params": p.params()}
            for p in POLICIES.values()
        ],
    }


@router.put("/active", dependencies=[AdminDep])
def set_active(body: ActiveIn, engine: EngineDep) -> dict[str, str]:
    """Make ``policy`` serve every request that names none (admin)."""
    return {"active": engine.set_active_policy(body.policy).name}
