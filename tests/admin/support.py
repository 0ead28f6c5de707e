"""What the console tests share: signing in, starting runs through the form, waiting for them,
reading forms and labels out of pages, and judges that fail or wait on command."""

from __future__ import annotations

import re
import threading
import time
from html.parser import HTMLParser
from typing import Any

import httpx
import numpy as np

from oo_ml.settings import Settings
from oo_ml.sim.judges import Judge, Judgement, JudgeRequest, RuleJudge
from tests.api.support import ADMIN_TOKEN

__all__ = [
    "ADMIN_TOKEN",
    "BEARER",
    "ExplodingJudge",
    "GateJudge",
    "csrf_of",
    "fields_without_labels",
    "login",
    "start_run",
    "wait_for_run",
]

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FINISHED = ("done", "failed", "cancelled")


def csrf_of(html: str) -> str:
    """The CSRF token in the first form of a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def login(client: httpx.Client, token: str = ADMIN_TOKEN) -> str:
    """Sign ``client`` in through the login form; returns the session's CSRF token."""
    page = client.get("/admin/login")
    assert page.status_code == 200
    response = client.post(
        "/admin/login",
        data={"csrf_token": csrf_of(page.text), "token": token, "next": "/admin/simulations"},
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/admin/simulations").text)


def start_run(client: httpx.Client, csrf: str, **fields: Any) -> str:
    """Post the start form (a small comparison unless told otherwise); returns the run id."""
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "policies": ["egreedy-v1", "ucb-ix1"],
        "personas": ["morning-focused", "quick-wins"],
        "users": "2",
        "steps": "20",
        "judge": "rule",
        "seed": "3",
    }
    data.update(fields)
    response = client.post("/admin/simulations", data=data)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/admin/runs/run-")
    return location.rsplit("/", 1)[-1]


def wait_for_run(
    client: httpx.Client, run_id: str, statuses: tuple[str, ...] = FINISHED, timeout: float = 60
) -> dict[str, Any]:
    """Poll the status endpoint until the run reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        runs = client.get("/admin/runs.json", params={"id": run_id}).json()["runs"]
        if runs and runs[0]["status"] in statuses:
            return dict(runs[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not in {statuses} within {timeout} s: {runs}")
        time.sleep(0.05)


class ExplodingJudge:
    """A judge whose persona model breaks at its third tip."""

    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def judge(self, request: JudgeRequest, rng: np.random.Generator) -> Judgement:
        self.calls += 1
        if self.calls >= 3:
            raise RuntimeError("the persona model broke")
        return RuleJudge().judge(request, rng)


class GateJudge:
    """The rule judge, held at its first tip until the test opens the gate."""

    name = "gated"

    def __init__(self, timeout: float = 30) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.timeout = timeout

    def judge(self, request: JudgeRequest, rng: np.random.Generator) -> Judgement:
        self.entered.set()
        if not self.gate.wait(self.timeout):
            raise RuntimeError("the test never opened the gate")
        return RuleJudge().judge(request, rng)

    def factory(self, _name: str, _settings: Settings) -> Judge:
        return self


class _Fields(HTMLParser):
    """Form fields of a page and the labels that name them."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        elif tag in {"input", "select", "textarea"}:
            kind = (a.get("type") or "text").lower()
            if tag == "input" and (kind in {"hidden", "submit", "button"} or "hidden" in a):
                return
            self.fields.append({**a, "_tag": tag, "_wrapped": "1" if self._label_depth else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1


def fields_without_labels(html: str) -> list[dict[str, str | None]]:
    """The visible form fields of ``html`` that no label (nor aria-label) names."""
    parser = _Fields()
    parser.feed(html)
    return [
        f
        for f in parser.fields
        if not (f["_wrapped"] or f.get("aria-label") or (f.get("id") in parser.label_for))
    ]
