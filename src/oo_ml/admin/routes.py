"""The admin console's pages under ``/admin``: simulations, policies, users, decisions.

Server-rendered; the one script (``static/console.js``) only polls run status. Every page needs
the admin token: a session cookie from the login form, or a bearer header for scripts. Every
POST from a browser carries the session's CSRF token.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from oo_ml.admin.auth import ConsoleRoute, Viewer, ViewerDep, admin_token, safe_next
from oo_ml.admin.csrf import FIELD, FormError, csrf_matches, new_token, read_form
from oo_ml.admin.render import base_path, render
from oo_ml.admin.runs import ACTIVE, RunManager, console_runs, on_server
from oo_ml.admin.sessions import (
    LOGIN_COOKIE,
    clear_session,
    is_https,
    new_session,
    read_session,
    set_login_cookie,
    set_session_cookie,
)
from oo_ml.admin.views import (
    RunForm,
    judge_choices,
    latest_evidence,
    policy_rows,
    run_json,
)
from oo_ml.api.routes.decisions import decision_json
from oo_ml.charts import bar_chart
from oo_ml.engine import Engine
from oo_ml.errors import ConfigurationError, NotFoundError, PromotionRefusedError
from oo_ml.policies import POLICIES, get_policy
from oo_ml.settings import Settings
from oo_ml.sim.persona import shipped_personas
from oo_ml.sim.report import curve_svg, judge_text, persona_rows
from oo_ml.sim.runner import warm_up

__all__ = ["STATIC_DIR", "router"]

log = logging.getLogger("oo_ml.admin")

STATIC_DIR = Path(__file__).with_name("static")
RUNS_LISTED = 50
EVIDENCE_RUNS = 200
RECENT_DECISIONS = 50
POLL_IDS = 100
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

NOTICES = {
    "cancelling": "Cancelling: the run stops after its current batch of steps.",
    "cancelled": "Cancelled.",
    "remote": "Cancelling: the worker process that runs it stops it after its current batch.",
    "finished": "The run had already finished.",
    "foreign": "This run was not started from the console; stop it where it was started.",
}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the console's simulations for this app; mark failed what a dead server left."""
    engine: Engine = app.state.engine
    manager = RunManager(engine.store, app.state.settings)
    try:
        await run_in_threadpool(manager.recover)
    except Exception:
        log.exception("could not check for runs left unfinished by a stopped server")
    app.state.console_runs = manager
    # Compile the simulator before serving, so that the first simulation started here does not
    # wait for it. Not in a thread beside the requests: numba holds the GIL while it compiles
    # (about a second, once per process), and it swaps the process-wide warning filters
    # (``warnings.catch_warnings``), which races FastAPI doing the same when a request builds
    # its router's routes.
    await run_in_threadpool(warm_up)
    try:
        yield
    finally:
        await run_in_threadpool(manager.shutdown)


router = APIRouter(
    prefix="/admin", route_class=ConsoleRoute, include_in_schema=False, lifespan=lifespan
)
router.mount("/admin/static", StaticFiles(directory=STATIC_DIR), name="admin-static")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(base_path(request) + path, status_code=303)


# -- signing in ----------------------------------------------------------------------------


def _login_form(
    request: Request, next_path: str, *, error: str = "", status: int = 200
) -> Response:
    token = new_token()
    host = request.url.hostname or ""
    response = render(
        request,
        "login.html",
        status=status,
        csrf=token,
        signed_in=False,
        next_path=next_path,
        error=error,
        plain_http_on_network=not is_https(request) and host not in _LOOPBACK,
    )
    set_login_cookie(response, request, token)
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    token = admin_token(request)
    target = safe_next(request, next)
    if read_session(request, token) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_form(request, target)


@router.post("/login")
async def login(request: Request) -> Response:
    token = admin_token(request)
    form = await read_form(request, None)
    if not csrf_matches(form.get(FIELD), request.cookies.get(LOGIN_COOKIE)):
        raise FormError(403, "The sign-in form expired. Reload the page and sign in again.")
    target = safe_next(request, form.get("next"))
    if not csrf_matches(form.get("token").strip(), token):
        return _login_form(request, target, error="That is not the admin token.", status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, new_session(), token)
    response.delete_cookie(LOGIN_COOKIE, path=base_path(request))
    return response


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep) -> Response:
    await read_form(request, viewer.expected_csrf)
    response = _redirect(request, "/login")
    clear_session(response, request)
    return response


@router.get("")
def home(request: Request) -> Response:
    return _redirect(request, "/simulations")


# -- simulations ---------------------------------------------------------------------------


def _simulations_page(
    request: Request, viewer: ViewerDep, form: RunForm, status: int = 200
) -> Response:
    engine = _engine(request)
    runs = engine.store.read(lambda txn: txn.list_runs(RUNS_LISTED))
    return render(
        request,
        "simulations.html",
        status=status,
        csrf=viewer.csrf,
        section="simulations",
        form=form,
        runs=runs,
        active_statuses=ACTIVE,
        policies=list(POLICIES.values()),
        personas=shipped_personas(),
        judges=judge_choices(_settings(request)),
        active_policy=engine.active_policy().name,
    )


@router.get("/simulations")
def simulations(request: Request, viewer: ViewerDep) -> Response:
    active = _engine(request).active_policy().name
    return _simulations_page(request, viewer, RunForm.default(active))


@router.post("/simulations")
async def start_simulation(request: Request, viewer: ViewerDep) -> Response:
    posted = await read_form(request, viewer.expected_csrf)
    form = RunForm(
        policies=posted.getlist("policies"),
        personas=posted.getlist("personas"),
        users=posted.get("users"),
        steps=posted.get("steps"),
        judge=posted.get("judge"),
        seed=posted.get("seed"),
        own_persona=posted.get("own_persona"),
    )
    active = await run_in_threadpool(lambda: _engine(request).active_policy().name)
    config = form.config(baseline=active)
    if config is not None:
        try:
            run = await run_in_threadpool(console_runs(request).start, config)
        except ConfigurationError as exc:
            form.errors.append(str(exc))
        else:
            return _redirect(request, f"/runs/{quote(run.run_id)}")
    return await run_in_threadpool(_simulations_page, request, viewer, form, 422)


@router.get("/runs.json")
def runs_status(
    request: Request,
    viewer: ViewerDep,
    ids: Annotated[list[str] | None, Query(alias="id", max_length=POLL_IDS)] = None,
) -> JSONResponse:
    """Status and progress of the given runs (or the newest ones), for the live pages."""
    store = _engine(request).store
    if ids:
        wanted = list(dict.fromkeys(ids))[:POLL_IDS]
        found = store.read(lambda txn: [txn.get_run(i) for i in wanted])
        runs = [r for r in found if r is not None]
    else:
        runs = list(store.read(lambda txn: txn.list_runs(RUNS_LISTED)))
    return JSONResponse({"runs": [run_json(r) for r in runs]})


@router.get("/runs/{run_id}")
def run_page(request: Request, viewer: ViewerDep, run_id: str, notice: str = "") -> Response:
    run = _engine(request).store.read(lambda txn: txn.get_run(run_id))
    if run is None:
        raise NotFoundError(f"no simulation run {run_id!r}")
    summary: dict[str, Any] = run.summary or {}
    personas_policies, personas = persona_rows(summary)
    return render(
        request,
        "run.html",
        csrf=viewer.csrf,
        section="simulations",
        run=run,
        active_statuses=ACTIVE,
        notice=NOTICES.get(notice, ""),
        # The charts escape every text they draw, so their SVG is safe to insert as it is.
        curve=Markup(curve_svg(run)) if summary.get("curve") else None,
        rows=policy_rows(summary),
        persona_policies=personas_policies,
        personas=personas,
        measure=summary.get("curve", {}).get("measure", "reward"),
        from_console=on_server(run),
        judged=judge_text(run),
    )


@router.get("/runs/{run_id}/curve.svg")
def run_curve(request: Request, viewer: ViewerDep, run_id: str) -> Response:
    """The run's reward curves as they stand (a running run stores its summary so far every
    few seconds): what the run page swaps in while it follows the run."""
    run = _engine(request).store.read(lambda txn: txn.get_run(run_id))
    if run is None:
        raise NotFoundError(f"no simulation run {run_id!r}")
    if not (run.summary or {}).get("curve"):
        return Response(status_code=204)
    return Response(
        curve_svg(run), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, viewer: ViewerDep, run_id: str) -> Response:
    await read_form(request, viewer.expected_csrf)
    outcome = await run_in_threadpool(console_runs(request).cancel, run_id)
    if outcome == "missing":
        raise NotFoundError(f"no simulation run {run_id!r}")
    return _redirect(request, f"/runs/{quote(run_id)}?notice={outcome}")


# -- policies ------------------------------------------------------------------------------


def _evidence(request: Request) -> dict[str, Any]:
    runs = _engine(request).store.read(lambda txn: txn.list_runs(EVIDENCE_RUNS))
    return dict(latest_evidence(runs))


@router.get("/policies")
def policies_page(request: Request, viewer: ViewerDep, promoted: str = "") -> Response:
    active = _engine(request).active_policy().name
    return render(
        request,
        "policies.html",
        csrf=viewer.csrf,
        section="policies",
        policies=list(POLICIES.values()),
        active=active,
        evidence=_evidence(request),
        promoted=promoted if promoted in POLICIES and promoted == active else "",
    )


def _known_policy(name: str) -> str:
    get_policy(name)  # raises UnknownPolicyError (a NotFoundError)
    return name


def _promote_page(
    request: Request,
    viewer: Viewer,
    name: str,
    refusal: PromotionRefusedError | None = None,
    *,
    estimate: bool = False,
) -> Response:
    engine = _engine(request)
    policy = get_policy(_known_policy(name))
    active = engine.active_policy()
    evidence = _evidence(request)
    check = engine.check_promotion(policy.name, preview=True) if estimate else None
    return render(
        request,
        "promote.html",
        status=409 if refusal is not None else 200,
        csrf=viewer.csrf,
        section="policies",
        policy=policy,
        active=active,
        candidate_evidence=evidence.get(policy.name),
        active_evidence=evidence.get(active.name),
        gate=engine.config.promotion_gate,
        refusal=None if refusal is None else {"message": str(refusal), **refusal.details},
        estimate=None if check is None or policy.name == active.name else check.to_dict(),
    )


@router.get("/policies/{name}/promote")
def confirm_promotion(
    request: Request, viewer: ViewerDep, name: str, estimate: bool = False
) -> Response:
    """The confirmation page; ``estimate=true`` adds the off-policy comparison on the log."""
    return _promote_page(request, viewer, name, estimate=estimate)


@router.post("/policies/{name}/promote")
async def promote(request: Request, viewer: ViewerDep, name: str) -> Response:
    await read_form(request, viewer.expected_csrf)
    try:
        policy, _ = await run_in_threadpool(_engine(request).promote, _known_policy(name))
    except PromotionRefusedError as refusal:
        log.info("promotion refused by the gate", extra={"policy": name})
        return await run_in_threadpool(_promote_page, request, viewer, name, refusal)
    log.info("policy promoted from the console", extra={"policy": policy.name})
    return _redirect(request, f"/policies?promoted={quote(policy.name)}")


# -- users and decisions -------------------------------------------------------------------


@router.get("/users")
def users_page(request: Request, viewer: ViewerDep, user_id: str = "") -> Response:
    engine = _engine(request)
    context: dict[str, Any] = {"user_id": user_id, "stats": [], "charts": {}, "recent": []}
    if user_id:
        stats = [engine.user_stats(user_id, name) for name in POLICIES]
        used = [s for s in stats if s.pulls or s.reward_count or s.model_updates]
        context["stats"] = used
        context["charts"] = {
            s.policy: Markup(
                bar_chart(s.labels, s.theta, title=f"θ under {s.policy} ({len(s.labels)} features)")
            )
            for s in used
        }
        context["recent"] = [
            decision_json(d, f, shadows=s) for d, f, s in engine.recent(user_id, RECENT_DECISIONS)
        ]
    return render(
        request,
        "users.html",
        csrf=viewer.csrf,
        section="users",
        active=engine.active_policy().name,
        **context,
    )


@router.get("/decisions")
def find_decision(request: Request, viewer: ViewerDep, event_id: str = "") -> Response:
    event_id = event_id.strip()
    if event_id:
        return _redirect(request, f"/decisions/{quote(event_id, safe='')}")
    return render(request, "decision.html", csrf=viewer.csrf, section="decisions", decision=None)


@router.get("/decisions/{event_id}")
def decision_page(request: Request, viewer: ViewerDep, event_id: str) -> Response:
    record, feedback, shadows = _engine(request).decision_detail(event_id)
    data = decision_json(record, feedback, shadows=shadows)
    width = record.features.shape[1] if record.features.ndim == 2 else 0
    try:
        labels = list(get_policy(record.policy).encoder.labels)
    except NotFoundError:
        labels = []
    if len(labels) != width:
        labels = [f"x{i}" for i in range(width)]
    return render(
        request,
        "decision.html",
        csrf=viewer.csrf,
        section="decisions",
        decision=data,
        labels=labels,
    )
