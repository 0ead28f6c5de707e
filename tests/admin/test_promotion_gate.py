"""The console's promote button goes through the promotion gate and shows its numbers."""

from __future__ import annotations

from tests.api.test_promotion_gate import logged_store

from .conftest import ServerFactory
from .support import BEARER


def test_a_refused_promotion_shows_the_gate_numbers(start_server: ServerFactory) -> None:
    server = start_server(store=logged_store(), promotion_gate="snips", promotion_min_rounds=1000)
    page = server.client.get("/admin/policies/linucb-v1/promote", headers=BEARER)
    assert "A promotion gate is on" in page.text
    response = server.client.post("/admin/policies/linucb-v1/promote", headers=BEARER)
    assert response.status_code == 409
    assert "The promotion gate refused this" in response.text
    assert "does not beat" in response.text
    assert "1200 logged rounds were used" in response.text
    assert server.engine.active_policy().name == "egreedy-v1"


def test_an_accepted_promotion_redirects(start_server: ServerFactory) -> None:
    server = start_server(store=logged_store(), promotion_gate="dr", promotion_min_rounds=1000)
    response = server.client.post("/admin/policies/ucb-pop1/promote", headers=BEARER)
    assert response.status_code == 303
    assert server.engine.active_policy().name == "ucb-pop1"


def test_the_page_estimates_both_policies_from_the_log_on_request(
    start_server: ServerFactory,
) -> None:
    server = start_server(store=logged_store())  # no gate: the estimate uses DR
    page = server.client.get("/admin/policies/ucb-pop1/promote", headers=BEARER)
    assert "Estimate both policies from the decision log" in page.text
    assert "Estimated from the decision log" not in page.text
    estimated = server.client.get("/admin/policies/ucb-pop1/promote?estimate=true", headers=BEARER)
    assert estimated.status_code == 200
    assert "Estimated from the decision log" in estimated.text
    assert "The log supports this promotion" in estimated.text
    assert "dr estimate" in estimated.text
    assert "1200 logged rounds were used" in estimated.text
    assert server.engine.active_policy().name == "egreedy-v1"  # a preview changes nothing
