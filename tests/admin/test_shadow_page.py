"""The console's decision page shows what the shadow policies would have shown."""

from __future__ import annotations

from tests.api.support import candidate, score_body

from .conftest import ServerFactory
from .support import BEARER


def test_a_decision_page_lists_its_shadows(start_server: ServerFactory) -> None:
    server = start_server(shadow_policies=("ucb-ix1", "ts-ix1"))
    body = score_body(
        "shadowed-user",
        [candidate("t-report", is_overdue=True, priority=4), candidate("t-call", priority=1)],
    )
    body["policy"] = "egreedy-v1"
    decided = server.client.post("/v1/rank", json=body).json()
    html = server.client.get(f"/admin/decisions/{decided['event_id']}", headers=BEARER).text
    shadows = html[html.index('id="shadows"') : html.index('id="features"')]
    assert "<code>ts-ix1</code>" in shadows
    assert "<code>ucb-ix1</code>" in shadows
    assert shadows.count("<tr") == 3  # header and two shadows
    plain = server.client.post("/v1/rank", json={**body, "policy": "ucb-ix1"}).json()
    page = server.client.get(f"/admin/decisions/{plain['event_id']}", headers=BEARER).text
    assert "<code>ts-ix1</code>" in page[page.index('id="shadows"') :]
    assert (
        "<code>ucb-ix1</code>" not in page[page.index('id="shadows"') : page.index('id="features"')]
    )
