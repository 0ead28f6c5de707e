"""Operations: readiness against the schema revision, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config
from prometheus_client.parser import text_string_to_metric_families

import oo_ml.store.migrate

from .conftest import BOTH_DATABASES
from .support import ADMIN, LiveServer, q, reward_body, score_body, three_tips


def alembic_revision(database_url: str) -> str | None:
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                sqlalchemy.text("SELECT version_num FROM alembic_version")
            ).scalar()
    finally:
        engine.dispose()
    return None if value is None else str(value)


def set_revision(database_url: str, revision: str) -> None:
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        engine.dispose()


# -- readiness -------------------------------------------------------------------------------


@BOTH_DATABASES
def test_ready_names_the_database_and_its_schema_revision(
    client: httpx.Client, database_url: str
) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["database"] == sqlalchemy.engine.make_url(database_url).get_backend_name()
    revision = alembic_revision(database_url)
    assert revision
    assert body["schema"] == revision


@BOTH_DATABASES
def test_ready_is_503_while_the_schema_is_behind(client: httpx.Client, database_url: str) -> None:
    current = alembic_revision(database_url)
    assert current is not None
    set_revision(database_url, "0000_older")
    behind = client.get("/ready")
    assert behind.status_code == 503
    assert behind.json()["ready"] is False
    assert "0000_older" in behind.json()["reason"]
    set_revision(database_url, current)
    assert client.get("/ready").status_code == 200


def test_ready_is_503_after_a_downgrade_to_base(client: httpx.Client, database_url: str) -> None:
    config = Config()
    migrations = Path(oo_ml.store.migrate.__file__).with_name("migrations")
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", database_url)
    command.downgrade(config, "base")
    assert alembic_revision(database_url) is None
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    assert client.get("/health").json() == {"ok": True}  # alive, just not ready


# -- metrics ---------------------------------------------------------------------------------


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; a sample that is not exported fails the test."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} is not exported"
    return samples[key]


def traffic(client: httpx.Client, user: str) -> None:
    """3 + 1 scores, a legacy reward of -0.5, 2 ranks, 3 feedbacks (one a duplicate), a 422."""
    for _ in range(3):
        client.post("/score", json=score_body(user, three_tips()))
    tip = client.post("/score/egreedy", json=score_body(user, three_tips())).json()["tip_id"]
    client.post("/reward/egreedy", json=reward_body(user, tip, -0.5))
    events = [
        client.post(
            "/v1/rank", json={**score_body(user, three_tips()), "policy": "linucb-v1"}
        ).json()["event_id"]
        for _ in range(2)
    ]
    client.post("/v1/feedback", json={"event_id": events[0], "action": "done", "dwell_ms": 20_000})
    client.post("/v1/feedback", json={"event_id": events[0], "action": "done"})  # duplicate
    client.post("/v1/feedback", json={"event_id": events[1], "action": "snooze"})
    client.post("/v1/rank", json={**score_body(user, three_tips()), "policy": "nope-v9"})
    client.get(f"/stats/{q(user)}")
    client.get(f"/stats/{q('another user')}")


def test_metrics_count_requests_decisions_feedback_rewards_and_updates(
    server: LiveServer,
) -> None:
    client = server.client
    traffic(client, "metrics/user 1")
    m = scrape(client)
    latency = "oo_ml_request_seconds_count"
    assert sample(m, latency, method="POST", route="/score", status="2xx") == 3
    assert sample(m, latency, method="POST", route="/v1/rank", status="2xx") == 2
    assert sample(m, latency, method="POST", route="/v1/rank", status="4xx") == 1
    assert sample(m, latency, method="POST", route="/v1/feedback", status="2xx") == 3
    assert sample(m, latency, method="GET", route="/stats/{user_id:path}", status="2xx") == 2
    buckets = [
        labels
        for (name, labels) in m
        if name == "oo_ml_request_seconds_bucket" and ("route", "/score") in labels
    ]
    assert len(buckets) > 5  # a histogram, not just a counter
    # Routes are labelled by template: user ids never become label values.
    values = {value for (_, labels) in m for (_, value) in labels}
    assert not {v for v in values if "metrics/user" in v or "another user" in v}, values

    assert sample(m, "oo_ml_decisions_total", policy="linucb-v1") == 5
    assert sample(m, "oo_ml_decisions_total", policy="egreedy-v1") == 1
    assert sample(m, "oo_ml_feedback_total", action="done", origin="client") == 1
    assert sample(m, "oo_ml_feedback_total", action="snooze", origin="client") == 1
    assert sample(m, "oo_ml_feedback_total", action="none", origin="legacy") == 1
    assert sample(m, "oo_ml_reward_value_count", policy="linucb-v1") == 2
    assert sample(m, "oo_ml_reward_value_count", policy="egreedy-v1") == 1
    assert sample(m, "oo_ml_reward_value_bucket", policy="linucb-v1", le="0.1") == 1  # the snooze
    assert sample(m, "oo_ml_model_updates_total", policy="linucb-v1") == 2
    assert sample(m, "oo_ml_model_updates_total", policy="egreedy-v1") == 1


def test_metrics_export_the_reward_sum(server: LiveServer) -> None:
    """The reward histogram's help promises ``_sum`` as the reward sum; it must be exported."""
    traffic(server.client, "summed")
    m = scrape(server.client)
    assert sample(m, "oo_ml_reward_sum", policy="linucb-v1") == pytest.approx(1.1)  # 1.0 + 0.1
    assert sample(m, "oo_ml_reward_sum", policy="egreedy-v1") == pytest.approx(-0.5)


def test_metrics_belong_to_one_app(server: LiveServer, start_server: Any) -> None:
    server.client.post("/score", json=score_body("counted", three_tips()))
    other = start_server()
    assert ("oo_ml_decisions_total", frozenset({("policy", "linucb-v1")})) not in scrape(
        other.client
    )
    assert sample(scrape(server.client), "oo_ml_decisions_total", policy="linucb-v1") == 1


# -- OpenAPI ---------------------------------------------------------------------------------

ENDPOINTS = {
    ("get", "/health"),
    ("post", "/score"),
    ("post", "/score/egreedy"),
    ("post", "/reward"),
    ("post", "/reward/egreedy"),
    ("get", "/stats/{user_id}"),
    ("get", "/stats/egreedy/{user_id}"),
    ("get", "/features/{user_id}"),
    ("post", "/reset/{user_id}"),
    ("post", "/v1/rank"),
    ("post", "/v1/feedback"),
    ("get", "/v1/decisions/{event_id}"),
    ("get", "/v1/users/{user_id}/stats"),
    ("get", "/v1/users/{user_id}/decisions"),
    ("delete", "/v1/users/{user_id}"),
    ("get", "/v1/policies"),
    ("put", "/v1/policies/active"),
    ("put", "/v1/policies/shadow"),
    ("get", "/v1/sim/personas"),
    ("post", "/v1/sim/runs"),
    ("get", "/v1/sim/runs"),
    ("get", "/v1/sim/runs/{run_id}"),
    ("post", "/v1/sim/runs/{run_id}/cancel"),
    ("get", "/ready"),
    ("get", "/metrics"),
}


@pytest.fixture
def spec(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_openapi_lists_every_endpoint(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    listed = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert listed == ENDPOINTS
    rank = spec["paths"]["/v1/rank"]["post"]
    assert "requestBody" in rank
    assert "200" in rank["responses"]


def test_openapi_declares_every_path_parameter(spec: dict[str, Any]) -> None:
    """Each ``{name}`` in a path must be a declared path parameter (OpenAPI 3, "Path
    Templating"), or generated clients cannot fill it in."""
    missing = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            for name in re.findall(r"{(\w+)}", path):
                if name not in declared:
                    missing.append(f"{method.upper()} {path}: {name}")
    assert missing == []


def test_docs_page_serves_the_openapi_document(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text
    assert "swagger" in response.text.lower()


def test_openapi_is_the_same_with_or_without_a_token(client: httpx.Client) -> None:
    assert client.get("/openapi.json", headers=ADMIN).json() == client.get("/openapi.json").json()
