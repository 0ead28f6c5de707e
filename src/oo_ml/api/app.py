"""The application factory: ``create_app(settings)`` builds a fresh app with its own store.

Nothing is created at import time, so every test (and every worker) gets its own database
connection, metrics registry and background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oo_ml import __version__
from oo_ml.admin import routes as admin_routes
from oo_ml.api.fast import ServiceApp
from oo_ml.api.metrics import Metrics
from oo_ml.api.routes import compat, decisions, ops, policies, simulations, users
from oo_ml.engine import Engine
from oo_ml.errors import (
    ConflictError,
    NotFoundError,
    PromotionRefusedError,
    StoreError,
    UnknownPolicyError,
    ValidationError,
)
from oo_ml.policies.kernels import warm_up
from oo_ml.settings import Settings, engine_config
from oo_ml.store.base import Store
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore

__all__ = ["create_app"]

log = logging.getLogger("oo_ml.api")


async def _settle_forever(engine: Engine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            settled = await run_in_threadpool(engine.settle)
        except Exception:
            log.exception("settling default rewards failed; will try again")
            continue
        if settled:
            log.info("settled %d decisions with the default reward", settled)


class _Timing:
    """Pure ASGI middleware recording latency per route template (cheaper than Starlette's
    ``BaseHTTPMiddleware``, which costs a task per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(scope["method"], template, f"{status // 100}xx").observe(
                time.perf_counter() - start
            )


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ValidationError)
    async def _invalid(_: Request, exc: ValidationError) -> JSONResponse:
        parts = exc.field.replace("[", ".").replace("]", "").split(".")
        loc = ["body", *(int(p) if p.isdigit() else p for p in parts if p)]
        return _error(422, [{"loc": loc, "msg": exc.message, "type": "value_error"}])

    @app.exception_handler(UnknownPolicyError)
    async def _unknown_policy(request: Request, exc: UnknownPolicyError) -> JSONResponse:
        where = "query" if request.method == "GET" else "body"
        return _error(422, [{"loc": [where, "policy"], "msg": str(exc), "type": "value_error"}])

    @app.exception_handler(NotFoundError)
    async def _missing(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(PromotionRefusedError)
    async def _refused(_: Request, exc: PromotionRefusedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "gate": exc.details}, status_code=409)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return _error(503, "the database is unavailable; try again")

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's default includes the offending input, which may be user data.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return _error(422, errors)


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """A new app. Without ``store`` it migrates ``settings.database_url`` and opens it."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        await run_in_threadpool(warm_up)  # compile the policies' kernels before any request
        if store is None:
            await run_in_threadpool(upgrade, settings.database_url)
            opened: Store = SqlStore(
                settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
            )
        else:
            opened = store
        # A server never makes a request wait for a population refit.
        config = dataclasses.replace(engine_config(settings), population_refit_background=True)
        app.state.engine = Engine(opened, config)
        settler = None
        if settings.default_reward_enabled:
            settler = asyncio.create_task(
                _settle_forever(app.state.engine, settings.settle_interval_seconds)
            )
        try:
            yield
        finally:
            if settler is not None:
                settler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await settler
            await run_in_threadpool(app.state.engine.wait_for_refits)
            if owned:
                await run_in_threadpool(opened.close)

    app = ServiceApp(
        title="oO ML",
        version=__version__,
        description="Contextual-bandit decisions for oO's tips: rank, feedback, stats, admin.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.add_middleware(_Timing, metrics=metrics)
    _install_error_handlers(app)
    for module in (compat, decisions, users, policies, simulations, ops, admin_routes):
        app.include_router(module.router)
    app.direct(decisions.router, decisions.DIRECT)
    app.direct(compat.router, compat.DIRECT)
    return app
