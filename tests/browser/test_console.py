"""The console as an operator uses it, in headless Chromium: sign in, compare policies, read the
curve and the tables, promote a policy, look up a user and a decision; by keyboard and on a
phone. Screenshots of each page go to ``OO_ML_CONSOLE_SCREENSHOTS`` (the README's come from
here)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oo_ml.api.app import create_app
from oo_ml.sim.judges import Judgement, JudgeRequest, RuleJudge
from tests.admin.support import login, start_run
from tests.api.support import LiveServer, make_settings

from .conftest import Console
from .support import LAPTOP, PHONE, USER, WAIT_MS, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def errors() -> list[str]:
    """Script errors and console errors of the page; a test may remove ones it expects."""
    return []


@pytest.fixture
def page(browser: Any, errors: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield tab
    context.close()
    assert errors == [], "the page logged errors"


@pytest.mark.slow
def test_operator_compares_policies_promotes_one_and_opens_a_decision(
    page: Any, console: Console, shots: Path
) -> None:
    sign_in(page, console.url)
    assert page.url.endswith("/admin/simulations")
    nav = page.get_by_role("navigation", name="Console sections")

    # Start a small comparison: three policies, two personas.
    form = page.locator("#start-run")
    for box in form.locator("input[type=checkbox]").all():
        box.uncheck()
    for name in ("linucb-v1", "egreedy-v1", "ucb-ix1", "morning-focused", "quick-wins"):
        form.get_by_label(name).check()
    form.get_by_label("Users per policy").fill("8")
    form.get_by_label("Steps (tips per user)").fill("60")
    form.get_by_label("Seed").fill("7")
    with page.expect_navigation():
        form.get_by_role("button", name="Start run").click()
    assert re.search(r"/admin/runs/run-[0-9-]+-[0-9a-f]+$", page.url)
    run_id = page.url.rsplit("/", 1)[-1]

    # The page follows the run by itself and shows the results when it is done (while it
    # runs, the headings say "so far").
    page.locator("#summary-heading", has_text=re.compile(r"^Comparison$")).wait_for()
    assert page.locator("[data-role=status]").inner_text() == "done"
    curve = page.locator("#reward-curve svg")
    assert curve.locator("polyline").count() == 5  # three policies, oracle and random
    legend = curve.text_content()
    for name in ("egreedy-v1", "linucb-v1", "ucb-ix1", "oracle", "random"):
        assert name in legend
    actions = page.locator("#action-table tbody tr")
    assert actions.count() == 3
    assert re.fullmatch(r"egreedy-v1\s+\d+\.\d%\s+\d+\.\d%\s+\d+\.\d%", actions.first.inner_text())
    personas = page.locator("#persona-table tbody tr")
    assert [personas.nth(i).locator("th").inner_text() for i in range(2)] == [
        "morning-focused",
        "quick-wins",
    ]
    assert personas.first.locator("td").count() == 6  # reward and normalized per policy
    page.screenshot(path=str(shots / "console-run.png"), full_page=True)

    nav.get_by_role("link", name="Simulations").click()
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    assert row.get_attribute("data-status") == "done"
    page.screenshot(path=str(shots / "console-simulations.png"), full_page=True)

    # Promote ucb-ix1, with the evidence beside the button and a confirmation.
    nav.get_by_role("link", name="Policies").click()
    card = page.locator("#policy-ucb-ix1")
    assert run_id in card.inner_text()
    page.screenshot(path=str(shots / "console-policies.png"), full_page=True)
    card.get_by_role("link", name="Promote ucb-ix1…").click()
    assert page.get_by_role("heading", name="Promote ucb-ix1?").is_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Yes, make ucb-ix1 the active policy").click()
    assert page.get_by_role("status").inner_text() == "ucb-ix1 is now the active policy."
    assert page.locator("#active-policy").inner_text() == "ucb-ix1"
    assert console.server.engine.active_policy().name == "ucb-ix1"

    # Find the user, then open the decision that has no feedback yet.
    nav.get_by_role("link", name="Users").click()
    page.get_by_label("User id").fill(USER)
    with page.expect_navigation():
        page.get_by_label("User id").press("Enter")
    assert page.locator("#shown-user").inner_text() == USER
    assert page.locator("#user-stats tbody tr").count() == 2
    assert page.locator("figure.theta svg").count() == 2
    page.screenshot(path=str(shots / "console-user.png"), full_page=True)
    open_event = console.events[-1]
    page.get_by_role("link", name=open_event).click()
    assert page.locator("#decision-facts").get_by_text(open_event).is_visible()
    assert page.locator("#candidates tbody tr").count() == 5
    assert page.locator("#candidates tr.chosen").count() == 1
    assert page.locator("#features tbody tr").count() == 44  # ucb-ix1 sees v3 features
    assert page.locator("#decision-feedback").inner_text() == "No feedback yet."
    page.screenshot(path=str(shots / "console-decision.png"), full_page=True)

    # An answered decision shows its feedback and reward.
    page.get_by_label("Event id").fill(console.events[0])
    with page.expect_navigation():
        page.get_by_role("button", name="Open").click()
    feedback = page.locator("#decision-feedback").inner_text()
    assert "dwell-v1" in feedback
    assert re.search(r"Reward\s+[+-]\d\.\d{3}", feedback)


def test_wrong_token_is_refused_on_the_login_page(
    page: Any, console: Console, errors: list[str]
) -> None:
    sign_in(page, console.url, token="definitely-not-the-token")
    assert page.get_by_role("alert").inner_text() == "That is not the admin token."
    assert "/admin/login" in page.url
    assert errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    errors.clear()


def test_keyboard_reaches_the_content_and_every_section(page: Any, console: Console) -> None:
    page.goto(f"{console.url}/admin")
    assert page.evaluate("document.activeElement.id") == "token"  # the login field has focus
    page.keyboard.type("adm-3f9c1e7b2d4a6f80a1b2")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/admin/simulations")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    seen = []
    page.evaluate("document.querySelector('.brand').focus()")
    for _ in range(4):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.textContent"))
    assert seen == ["Simulations", "Policies", "Users", "Decision"]


def test_pages_fit_a_phone_without_sideways_scrolling(
    browser: Any, console: Console, shots: Path
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        sign_in(page, console.url)
        paths = [
            "/admin/simulations",
            "/admin/policies",
            f"/admin/users?user_id={USER}",
            f"/admin/decisions/{console.events[0]}",
        ]
        runs = console.server.engine.store.read(lambda txn: txn.list_runs(1))
        paths += [f"/admin/runs/{run.run_id}" for run in runs]
        for path in paths:
            page.goto(console.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
        page.goto(console.url + paths[-1])
        page.screenshot(path=str(shots / "console-phone.png"), full_page=True)
    finally:
        context.close()


class HeldJudge:
    """The rule judge, held at the first tip of each step in ``held`` until released."""

    name = "held"

    def __init__(self, *held: int) -> None:
        self.gates = {step: threading.Event() for step in held}

    def judge(self, request: JudgeRequest, rng: Any) -> Judgement:
        gate = self.gates.get(request.step)
        if gate is not None and not gate.wait(WAIT_MS / 1000):
            raise RuntimeError(f"step {request.step} was never released")
        return RuleJudge().judge(request, rng)

    def factory(self, _name: str, _settings: Any) -> Any:
        return self


def test_a_running_comparison_draws_its_curve_as_it_goes(page: Any, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'oo-ml.db'}", sim_live_seconds=0.0)
    server = LiveServer(create_app(settings)).start()
    held = HeldJudge(0, 3)
    try:
        server.app.state.console_runs.judge_factory = held.factory
        run_id = start_run(server.client, login(server.client), users="2", steps="6")
        sign_in(page, server.base_url)
        page.goto(f"{server.base_url}/admin/runs/{run_id}")
        curve = page.locator("#reward-curve")
        assert "The curve appears after the first steps." in curve.inner_text()
        assert curve.locator("svg").count() == 0

        # Steps 0 to 2 are played and their summary stored; the page draws it, still running.
        held.gates[0].set()
        curve.locator("svg polyline").first.wait_for()
        # Two policies; no oracle or random line: only the rule judge itself has a model.
        assert curve.locator("svg polyline").count() == 2
        assert page.locator("[data-role=status]").inner_text() == "running"

        # The rest, and the page reloads with the results.
        held.gates[3].set()
        page.locator("#summary-heading", has_text=re.compile(r"^Comparison$")).wait_for()
        assert page.locator("#reward-curve svg polyline").count() == 2
    finally:
        for gate in held.gates.values():
            gate.set()
        server.stop()
