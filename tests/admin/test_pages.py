"""Every console page: renders on an empty database and with data, loads nothing from other
hosts, labels every field, and shows what the operator came for."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import oo_ml.admin
from tests.api.support import LiveServer, candidate, score_body

from .support import BEARER, fields_without_labels, start_run, wait_for_run

ADMIN_DIR = Path(oo_ml.admin.__file__).parent
ASSETS = sorted(
    [*ADMIN_DIR.joinpath("templates").glob("*.html"), *ADMIN_DIR.joinpath("static").glob("*")]
)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
EMPTY_PAGES = [
    "/admin/simulations",
    "/admin/policies",
    "/admin/policies/ucb-ix1/promote",
    "/admin/policies/egreedy-v1/promote",
    "/admin/users",
    "/admin/users?user_id=nobody",
    "/admin/decisions",
]


def _rank_and_feedback(client: httpx.Client, user_id: str, rounds: int) -> list[str]:
    """Real decisions through the decision API, each answered but the last."""
    events = []
    for i in range(rounds):
        body = score_body(
            user_id,
            [
                candidate("t-report", is_overdue=True, task_age_days=3.0, priority=4),
                candidate("t-call", content="Call the dentist", priority=2),
                candidate("t-inbox", source="email", priority=1),
            ],
            hour=8 + i % 8,
        )
        body["policy"] = "ucb-ix1" if i % 2 else "egreedy-v1"
        decided = client.post("/v1/rank", json=body).json()
        events.append(decided["event_id"])
        if i < rounds - 1:
            action = "done" if decided["tip_id"] == "t-report" else "dismiss"
            client.post(
                "/v1/feedback",
                json={"event_id": decided["event_id"], "action": action, "dwell_ms": 40_000},
            ).raise_for_status()
    return events


@pytest.fixture
def with_data(server: LiveServer, csrf: str) -> dict[str, str]:
    """A finished comparison and a user with answered decisions."""
    run_id = start_run(server.client, csrf)
    assert wait_for_run(server.client, run_id)["status"] == "done"
    events = _rank_and_feedback(server.client, "alice@example.com", 8)
    return {"run_id": run_id, "answered": events[0], "open": events[-1]}


def test_login_page_labels_its_field(client: httpx.Client) -> None:
    response = client.get("/admin/login")
    assert response.status_code == 200
    assert '<label for="token">Admin token</label>' in response.text
    assert fields_without_labels(response.text) == []
    assert "plain HTTP" not in response.text  # localhost: no warning


@pytest.mark.parametrize("path", EMPTY_PAGES)
def test_pages_render_on_an_empty_database(client: httpx.Client, csrf: str, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert fields_without_labels(response.text) == []


def test_pages_render_with_data_and_every_field_has_a_label(
    client: httpx.Client, with_data: dict[str, str]
) -> None:
    pages = [
        *EMPTY_PAGES,
        "/admin/users?user_id=alice%40example.com",
        f"/admin/runs/{with_data['run_id']}",
        f"/admin/decisions/{with_data['answered']}",
        f"/admin/decisions/{with_data['open']}",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert fields_without_labels(response.text) == [], path
        assert "http://" not in response.text.replace(SVG_NAMESPACE, ""), path
        assert "https://" not in response.text, path


@pytest.mark.parametrize("asset", ASSETS, ids=lambda p: p.name)
def test_templates_and_static_files_load_nothing_from_other_hosts(asset: Path) -> None:
    text = asset.read_text()
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.I) == []
    assert "@import" not in text


def test_pages_load_only_the_console_own_script_and_stylesheet(
    client: httpx.Client, csrf: str
) -> None:
    html = client.get("/admin/simulations").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/admin/static/console.js" in sources
    assert "/admin/static/console.css" in sources
    for source in sources:
        assert source.startswith(("/admin/", "data:", "#")), source
    for asset in ("console.js", "console.css"):
        assert client.get(f"/admin/static/{asset}").status_code == 200


def test_run_page_shows_curve_and_tables_per_policy(
    client: httpx.Client, with_data: dict[str, str]
) -> None:
    html = client.get(f"/admin/runs/{with_data['run_id']}").text
    curve = html[html.index('id="reward-curve"') :]
    assert curve.count("<polyline") == 4  # two policies, oracle, random
    for name in ("egreedy-v1", "ucb-ix1", "oracle", "random"):
        assert f"<title>{name}</title>" in curve
    summary = html[html.index('id="summary-table"') : html.index('id="action-table"')]
    number = r"[+-]\d\.\d{3}"
    # The paired difference from the first policy: a dash for it, a number and interval else.
    differences = re.findall(rf'<td class="num">(—|{number} \[{number}, {number}\])</td>', summary)
    assert differences[0] == "—"
    assert len(differences) == 2
    assert re.fullmatch(rf"{number} \[{number}, {number}\]", differences[1])
    actions = html[html.index('id="action-table"') : html.index('id="persona-table"')]
    assert re.findall(r"<code>([a-z0-9-]+)</code></th>", actions) == ["egreedy-v1", "ucb-ix1"]
    assert len(re.findall(r"\d+\.\d%", actions)) == 6
    personas = html[html.index('id="persona-table"') :]
    assert ">morning-focused<" in personas
    assert ">quick-wins<" in personas


def test_policies_page_shows_parameters_active_policy_and_evidence(
    client: httpx.Client, with_data: dict[str, str]
) -> None:
    html = client.get("/admin/policies").text
    assert '<code id="active-policy">egreedy-v1</code>' in html
    ucb = html[html.index('id="policy-ucb-ix1"') : html.index('id="policy-squarecb-ix1"')]
    assert with_data["run_id"] in ucb
    assert "vs <code>egreedy-v1</code>" in ucb
    assert "Promote <code>ucb-ix1</code>" in ucb
    assert "alpha" in ucb
    squarecb = html[html.index('id="policy-squarecb-ix1"') :]
    assert "No finished simulation includes this policy yet" in squarecb


def test_promotion_asks_for_confirmation_then_switches_the_active_policy(
    server: LiveServer, with_data: dict[str, str], csrf: str
) -> None:
    client = server.client
    confirm = client.get("/admin/policies/ucb-ix1/promote").text
    assert "Promote <code>ucb-ix1</code>?" in confirm
    assert with_data["run_id"] in confirm
    assert server.engine.active_policy().name == "egreedy-v1"  # looking changes nothing
    response = client.post("/admin/policies/ucb-ix1/promote", data={"csrf_token": csrf})
    assert response.headers["location"] == "/admin/policies?promoted=ucb-ix1"
    assert server.engine.active_policy().name == "ucb-ix1"
    after = client.get(response.headers["location"]).text
    assert "<code>ucb-ix1</code> is now the active policy." in after


def test_promoting_an_unknown_policy_is_a_404(client: httpx.Client, csrf: str) -> None:
    assert client.get("/admin/policies/nope-v9/promote").status_code == 404
    response = client.post("/admin/policies/nope-v9/promote", data={"csrf_token": csrf})
    assert response.status_code == 404


def test_user_page_shows_stats_theta_and_recent_decisions(
    client: httpx.Client, with_data: dict[str, str]
) -> None:
    html = client.get("/admin/users", params={"user_id": "alice@example.com"}).text
    stats = html[html.index('id="user-stats"') : html.index('id="theta-heading"')]
    assert "<code>egreedy-v1</code>" in stats
    assert "<code>ucb-ix1</code>" in stats
    assert "θ under egreedy-v1 (7 features)" in html
    assert "θ under ucb-ix1 (44 features)" in html
    assert ">priority<" in html
    recent = html[html.index('id="recent-decisions"') :]
    assert with_data["answered"] in recent
    assert "none yet" in recent  # the last decision has no feedback


def test_unknown_user_page_says_nothing_is_stored(client: httpx.Client, csrf: str) -> None:
    html = client.get("/admin/users", params={"user_id": "nobody"}).text
    assert "Nothing is stored for this user" in html


def test_decision_page_shows_candidates_features_scores_and_feedback(
    client: httpx.Client, with_data: dict[str, str]
) -> None:
    html = client.get(f"/admin/decisions/{with_data['answered']}").text
    assert "<dt>Policy</dt><dd><code>egreedy-v1</code></dd>" in html
    assert "updates seen when it decided" in html
    candidates = html[html.index('id="candidates"') : html.index('id="features"')]
    assert candidates.count("<tr") == 4  # header and three candidates
    assert '<th scope="col">Expected reward</th>' in candidates
    # ε-greedy ranks by what its model expects: each row shows the same number twice.
    for row in candidates.split("<tr")[2:]:
        cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
        assert cells[3] == cells[4] != "—", cells  # #, age, priority, expected, score
    features = html[html.index('id="features"') :]
    for label in ("hour_sin", "is_overdue", "priority", "dow_cos"):
        assert f"<code>{label}</code>" in features
    feedback = html[html.index('id="decision-feedback"') :]
    assert "dwell-v1" in feedback
    opened = client.get(f"/admin/decisions/{with_data['open']}").text
    assert "No feedback yet." in opened


def test_decision_search_goes_to_the_decision(client: httpx.Client, csrf: str) -> None:
    response = client.get("/admin/decisions", params={"event_id": " abc123 "})
    assert response.headers["location"] == "/admin/decisions/abc123"
    missing = client.get("/admin/decisions/abc123")
    assert missing.status_code == 404
    assert "no decision with event id" in missing.text
    invalid = client.get("/admin/decisions/bad%20id%21")
    assert invalid.status_code == 422


def test_status_endpoint_reports_progress_for_scripts(
    client: httpx.Client, with_data: dict[str, str]
) -> None:
    body = client.get("/admin/runs.json", headers=BEARER).json()
    [run] = body["runs"]
    assert run["run_id"] == with_data["run_id"]
    assert run["status"] == "done"
    assert run["done_steps"] == run["total_steps"] == 80
