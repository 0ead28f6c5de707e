"""Simulation runs over the API (admin): start a comparison, follow it, read its results, cancel.

The same runs as the console's: they execute in the background on this server
(:class:`~oo_ml.admin.runs.RunManager`), are stored in ``sim_runs``/``sim_events`` and show in
the console. Personas are the shipped ones, by name: a file path from a request would let the
API read files on the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from oo_ml.admin.runs import MAX_TOTAL_STEPS, console_runs, on_server, settings_of
from oo_ml.api.deps import AdminDep, EngineDep
from oo_ml.api.routes._common import iso_time
from oo_ml.errors import ConfigurationError, NotFoundError, ValidationError
from oo_ml.policies import POLICIES
from oo_ml.sim.persona import shipped_personas
from oo_ml.sim.runner import DEFAULT_STEPS, DEFAULT_USERS, MAX_PERSONA_DEFINITIONS, SimConfig
from oo_ml.store.base import RunRecord

router = APIRouter(prefix="/v1/sim", tags=["simulation"], dependencies=[AdminDep])

RUNS_LISTED = 200


class SimRunIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    policies: list[str] = Field(
        min_length=1,
        max_length=16,
        description="Registered policies, distinct; the first is the baseline of lift and "
        "of the paired differences.",
    )
    personas: list[str] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Personas by name: shipped (GET /v1/sim/personas) or defined in"
        " persona_definitions; when left out, every shipped persona and every one defined.",
    )
    persona_definitions: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_PERSONA_DEFINITIONS,
        description="Personas of your own, each a persona file's data as JSON (the layout of"
        " `oo-ml sim personas --json`: name, description, awake, response, prefer, when,"
        " drift); a drift names a shipped persona or another one defined here. Stored with"
        " the run.",
    )
    users: int = Field(DEFAULT_USERS, ge=1, le=100_000, description="Simulated users per policy.")
    steps: int = Field(DEFAULT_STEPS, ge=1, le=100_000, description="Tips per user.")
    judge: Literal["rule", "llm", "command"] = "rule"
    seed: int = Field(0, ge=0, le=2**63 - 1)


class SimRunOut(BaseModel):
    run_id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created: str = Field(description="ISO 8601, UTC")
    updated: str = Field(description="ISO 8601, UTC")
    config: dict[str, Any] = Field(description="The run's settings (SimConfig's fields).")
    on_server: bool = Field(
        description="Executed by the service (started here or in the console); false for a "
        "run started with `oo-ml sim` on the command line, which only that process can cancel."
    )
    done_steps: int
    total_steps: int
    error: str | None = Field(description="Why a failed run failed.")
    summary: dict[str, Any] | None = Field(
        None,
        description="Per policy (mean reward and its interval, normalized score, regret, "
        "lift, paired difference from the first policy), per persona, the curve, and for "
        "llm/command judges what the judge did; the summary so far while the run runs. "
        "Only on GET /v1/sim/runs/{run_id}.",
    )


class SimRunsOut(BaseModel):
    runs: list[SimRunOut]


class PersonaOut(BaseModel):
    name: str
    description: str
    drift_at: int | None = Field(description="The step its preferences change at, if they do.")
    awake: tuple[int, int] = Field(
        description="The hours it asks for tips, first and last, both included (from > to spans"
        " midnight)."
    )


class PersonasOut(BaseModel):
    personas: list[PersonaOut]


class CancelOut(BaseModel):
    run_id: str
    outcome: Literal["cancelling", "remote", "cancelled", "finished", "foreign"]


def _run_json(run: RunRecord, *, summary: bool) -> dict[str, Any]:
    found: dict[str, Any] = {
        "run_id": run.run_id,
        "status": run.status,
        "created": iso_time(run.created_ms),
        "updated": iso_time(run.updated_ms),
        # Which server process executes it is the service's own bookkeeping.
        "config": settings_of(run),
        "on_server": on_server(run),
        "done_steps": run.done_steps,
        "total_steps": run.total_steps,
        "error": run.error,
    }
    if summary:
        found["summary"] = run.summary
    return found


def _config(body: SimRunIn) -> SimConfig:
    """The run's settings, every name checked and named in the error when refused."""
    for i, name in enumerate(body.policies):
        if name not in POLICIES:
            raise ValidationError(f"policies[{i}]", f"unknown policy {name!r}")
        if name in body.policies[:i]:
            raise ValidationError(f"policies[{i}]", f"{name!r} is listed twice")
    defined = [d.get("name") for d in body.persona_definitions]
    known = [*shipped_personas(), *(name for name in defined if isinstance(name, str))]
    personas = known if body.personas is None else body.personas
    for i, name in enumerate(personas):
        if name not in known:  # nor a file: the service reads none
            raise ValidationError(
                f"personas[{i}]", f"unknown persona {name!r}; known: {', '.join(known)}"
            )
    config = SimConfig(
        tuple(body.policies),
        tuple(personas),
        body.users,
        body.steps,
        judge=body.judge,
        seed=body.seed,
        persona_definitions=tuple(body.persona_definitions),
    )
    try:
        config.load_personas()
    except ConfigurationError as exc:
        raise ValidationError("persona_definitions", str(exc)) from None
    return config


@router.get("/personas", response_model=PersonasOut)
def list_personas() -> dict[str, Any]:
    """The shipped personas a run can simulate, with what each is like."""
    return {
        "personas": [
            {"name": p.name, "description": p.description, "drift_at": p.drift_at, "awake": p.awake}
            for p in shipped_personas().values()
        ]
    }


@router.post(
    "/runs",
    status_code=202,
    response_model=SimRunOut,
    responses={422: {"description": "Refused settings"}},
)
def start_run(request: Request, body: SimRunIn) -> JSONResponse:
    """Start a run (a comparison when several policies are named) in the background; 202 with
    the queued run and its URL. Follow it with GET on that URL."""
    config = _config(body)
    try:
        run = console_runs(request).start(config)
    except ConfigurationError as exc:  # a run too large, or a judge this server lacks
        field = "steps" if config.total_steps > MAX_TOTAL_STEPS else "judge"
        raise ValidationError(field, str(exc)) from None
    location = f"/v1/sim/runs/{run.run_id}"
    return JSONResponse(
        _run_json(run, summary=False), status_code=202, headers={"Location": location}
    )


@router.get("/runs", response_model=SimRunsOut, response_model_exclude_unset=True)
def list_runs(
    engine: EngineDep, limit: Annotated[int, Query(ge=1, le=RUNS_LISTED)] = 20
) -> dict[str, Any]:
    """The newest runs (from the console, the API or the command line), without summaries."""
    runs = engine.store.read(lambda txn: txn.list_runs(limit))
    return {"runs": [_run_json(run, summary=False) for run in runs]}


@router.get(
    "/runs/{run_id}", response_model=SimRunOut, responses={404: {"description": "Unknown run"}}
)
def get_run(engine: EngineDep, run_id: Annotated[str, Path(max_length=128)]) -> dict[str, Any]:
    """One run with its summary: per policy mean reward with its interval, normalized score,
    regret, lift and the paired difference from the first policy; per persona; the curve
    (while it runs, the summary so far)."""
    run = engine.store.read(lambda txn: txn.get_run(run_id))
    if run is None:
        raise NotFoundError(f"no simulation run {run_id!r}")
    return _run_json(run, summary=True)


@router.post(
    "/runs/{run_id}/cancel",
    response_model=CancelOut,
    responses={404: {"description": "Unknown run"}},
)
def cancel_run(request: Request, run_id: Annotated[str, Path(max_length=128)]) -> dict[str, Any]:
    """Ask a queued or running run to stop. ``outcome``: ``cancelling`` (this server stops it),
    ``remote`` (another worker does), ``cancelled`` (its server was gone), ``finished``
    (nothing to stop) or ``foreign`` (a command-line run: stop it where it runs)."""
    outcome = console_runs(request).cancel(run_id)
    if outcome == "missing":
        raise NotFoundError(f"no simulation run {run_id!r}")
    return {"run_id": run_id, "outcome": outcome}
