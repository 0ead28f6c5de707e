"""Shadow policies over HTTP: configuring them, what a logged decision shows of them, their
metrics and learning; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError as PydanticValidationError

from oo_ml.settings import Settings

from .conftest import BOTH_DATABASES, ServerFactory
from .support import ADMIN, q, score_body, three_tips
from .test_operations import sample, scrape

pytestmark = BOTH_DATABASES


def rank(client: httpx.Client, user: str = "u-shadow", **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/rank", json={**score_body(user, three_tips()), **extra})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def put_shadow(client: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    return client.put("/v1/policies/shadow", json=body, headers=headers or ADMIN)


def shadow_list(client: httpx.Client) -> list[str]:
    listed: list[str] = client.get("/v1/policies").json()["shadow"]
    return listed


def test_shadows_come_from_the_settings_until_set_in_the_database(
    start_server: ServerFactory,
) -> None:
    first = start_server(shadow_policies="linucb-v1,ucb-ix1")
    assert shadow_list(first.client) == ["linucb-v1", "ucb-ix1"]
    response = put_shadow(first.client, {"policies": ["ts-ix1"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"shadow": ["ts-ix1"]}
    assert shadow_list(first.client) == ["ts-ix1"]
    first.stop()
    second = start_server(shadow_policies="linucb-v1")
    assert shadow_list(second.client) == ["ts-ix1"]  # the stored choice outlives restarts
    assert put_shadow(second.client, {"policies": []}).json() == {"shadow": []}
    answer = rank(second.client)
    assert second.client.get(f"/v1/decisions/{answer['event_id']}").json()["shadows"] == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"policies": ["nope-v9"]}, ["body", "policies", 0]),
        ({"policies": ["ts-ix1", "ts-ix1"]}, ["body", "policies", 1]),
        (
            {"policies": ["linucb-v1", "ucb-ix1", "ts-ix1", "ucb-ix2", "egreedy-v1"]},
            ["body", "policies"],
        ),
        ({"policies": "ts-ix1"}, ["body", "policies"]),
        ({"policies": [1]}, ["body", "policies", 0]),
        ({}, ["body", "policies"]),
        ({"policies": [], "extra": 1}, ["body", "extra"]),
    ],
)
def test_bad_shadow_lists_are_422_naming_the_field_and_change_nothing(
    start_server: ServerFactory, body: dict[str, Any], loc: list[Any]
) -> None:
    client = start_server(shadow_policies="linucb-v1").client
    response = put_shadow(client, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert shadow_list(client) == ["linucb-v1"]


def test_setting_shadows_needs_the_admin_token(start_server: ServerFactory) -> None:
    client = start_server().client
    refused = put_shadow(client, {"policies": ["ts-ix1"]}, Authorization="Bearer not-the-token")
    assert refused.status_code == 401
    assert client.put("/v1/policies/shadow", json={"policies": ["ts-ix1"]}).status_code == 401
    assert shadow_list(client) == []
    closed = start_server(admin_token=None).client
    assert put_shadow(closed, {"policies": ["ts-ix1"]}).status_code == 403


def test_a_decision_shows_its_shadows_and_their_propensities(
    start_server: ServerFactory,
) -> None:
    client = start_server(shadow_policies="ucb-ix1,linucb-v1").client
    answer = rank(client)
    logged = client.get(f"/v1/decisions/{answer['event_id']}").json()
    assert logged["policy"] == "egreedy-v1"
    ids = [c["tip_id"] for c in logged["candidates"]]
    shadows = logged["shadows"]
    assert [s["policy"] for s in shadows] == ["linucb-v1", "ucb-ix1"]
    # A new user: every model's θ is 0, so it expects nothing of any candidate yet, and the
    # served ε-greedy's score is that expectation.
    for candidate in logged["candidates"]:
        assert candidate["expected_reward"] == candidate["score"] == 0.0
    for shadow in shadows:
        assert set(shadow) == {
            "policy",
            "chosen_id",
            "score",
            "probability",
            "probabilities",
            "expected_rewards",
        }
        assert len(shadow["expected_rewards"]) == len(ids)
        assert shadow["chosen_id"] in ids
        assert len(shadow["probabilities"]) == len(ids)
        assert sum(shadow["probabilities"]) == pytest.approx(1.0)
        assert shadow["probability"] == shadow["probabilities"][logged["chosen"]]
    # A request served by a shadow policy is not shadowed by it.
    served_by_shadow = rank(client, policy="ucb-ix1")
    again = client.get(f"/v1/decisions/{served_by_shadow['event_id']}").json()
    assert [s["policy"] for s in again["shadows"]] == ["linucb-v1"]
    # The user's decision list shows the same, newest first.
    listed = client.get("/v1/users/u-shadow/decisions", headers=ADMIN).json()["decisions"]
    assert [d["event_id"] for d in listed] == [served_by_shadow["event_id"], answer["event_id"]]
    assert listed[0]["shadows"] == again["shadows"]
    assert listed[1]["shadows"] == shadows


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``$ref``/``anyOf [X, null]``/``items`` followed to the object it means."""
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        elif schema.get("type") == "array":
            schema = schema["items"]
        else:
            return schema


def test_the_decision_response_model_describes_every_field(start_server: ServerFactory) -> None:
    client = start_server(shadow_policies="ucb-ix1").client
    answer = rank(client)
    client.post("/v1/feedback", json={"event_id": answer["event_id"], "action": "done"})
    body = client.get(f"/v1/decisions/{answer['event_id']}").json()
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/decisions/{event_id}"]["get"]
    model = resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(body) == set(model["properties"])
    for name in ("context", "candidates", "feedback", "shadows"):
        value = body[name][0] if isinstance(body[name], list) else body[name]
        assert set(value) == set(resolve(spec, model["properties"][name])["properties"]), name


def test_shadows_learn_from_feedback_and_are_counted(start_server: ServerFactory) -> None:
    server = start_server(shadow_policies="linucb-v1")
    client = server.client
    answers = [rank(client, user="learner") for _ in range(3)]
    for answer in answers[:2]:
        response = client.post(
            "/v1/feedback", json={"event_id": answer["event_id"], "action": "done"}
        )
        assert response.status_code == 200
    # A duplicate counts once.
    client.post("/v1/feedback", json={"event_id": answers[0]["event_id"], "action": "dismiss"})
    stats = client.get(f"/v1/users/{q('learner')}/stats", params={"policy": "linucb-v1"}).json()
    assert stats["model_updates"] == 2
    assert stats["pulls"] == 0  # it never served
    m = scrape(client)
    assert sample(m, "oo_ml_shadow_decisions_total", policy="linucb-v1") == 3
    agreed = sum(
        client.get(f"/v1/decisions/{a['event_id']}").json()["shadows"][0]["chosen_id"]
        == a["tip_id"]
        for a in answers
    )
    if agreed:
        assert sample(m, "oo_ml_shadow_agreements_total", policy="linucb-v1") == agreed
    else:
        assert ("oo_ml_shadow_agreements_total", frozenset({("policy", "linucb-v1")})) not in m


def test_forgetting_a_user_erases_their_shadow_decisions(start_server: ServerFactory) -> None:
    client = start_server(shadow_policies="linucb-v1").client
    answer = rank(client, user="gone")
    kept = rank(client, user="kept")
    assert client.delete(f"/v1/users/{q('gone')}", headers=ADMIN).status_code == 200
    assert client.get(f"/v1/decisions/{answer['event_id']}").status_code == 404
    assert len(client.get(f"/v1/decisions/{kept['event_id']}").json()["shadows"]) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("linucb-v1,nope-v9", "OO_ML_SHADOW_POLICIES[1]: unknown policy 'nope-v9'"),
        ("ts-ix1, ts-ix1", "OO_ML_SHADOW_POLICIES[1]: 'ts-ix1' is listed twice"),
        ("linucb-v1,ucb-ix1,ts-ix1,ucb-ix2,egreedy-v1", "OO_ML_SHADOW_POLICIES: at most 4"),
    ],
)
def test_the_shadow_setting_is_checked_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str, database_url: str
) -> None:
    monkeypatch.setenv("OO_ML_SHADOW_POLICIES", value)
    with pytest.raises(PydanticValidationError, match=message.replace("[", r"\[")):
        Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]


def test_the_shadow_setting_reads_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("OO_ML_SHADOW_POLICIES", " linucb-v1 , ucb-ix1 ")
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    assert settings.shadow_policies == ("linucb-v1", "ucb-ix1")
