"""Operations: readiness and Prometheus metrics (liveness is ``/health``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oo_ml.api.deps import EngineDep, get_metrics
from oo_ml.store.migrate import schema_status
from oo_ml.store.sql import SqlStore

router = APIRouter(tags=["operations"])


@router.get("/ready", responses={503: {"description": "Not ready"}})
def ready(engine: EngineDep) -> Any:
    """Ready when the database answers and its schema is the one this version expects."""
    store = engine.store
    if not isinstance(store, SqlStore):
        return {"ready": True, "database": "memory"}
    try:
        with store.engine.connect() as conn:
            current, head = schema_status(conn)
    except Exception as exc:
        return JSONResponse({"ready": False, "reason": f"database unreachable: {exc}"}, 503)
    if current != head:
        return JSONResponse(
            {"ready": False, "reason": f"schema at {current}, this version needs {head}"}, 503
        )
    return {"ready": True, "database": store.dialect, "schema": current}


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(get_metrics(request).registry), media_type=CONTENT_TYPE_LATEST)
