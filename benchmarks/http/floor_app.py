"""The framework's floor: a bare FastAPI app with one ``async`` endpoint returning ``{"ok": true}``.

Served by the same server (uvicorn) as the service, so the difference is the service's own work.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def ok() -> dict[str, bool]:
    return {"ok": True}
