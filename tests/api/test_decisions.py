"""The decision API (``/v1``): rank, feedback, decisions, user stats and erasure, policies; on
SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .conftest import BOTH_DATABASES, ServerFactory
from .support import ADMIN, EGREEDY_LABELS, LINUCB_LABELS, q, score_body, snapshot, three_tips

pytestmark = BOTH_DATABASES

SECOND = 1000
MINUTE = 60 * SECOND


def rank(client: httpx.Client, user: str = "u-rank", **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/rank", json={**score_body(user, three_tips()), **extra})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def feedback(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_rank_answer(answer: dict[str, Any], candidate_ids: set[str]) -> None:
    assert set(answer) == {"event_id", "tip_id", "policy", "score", "probability", "ranking"}
    ranking = answer["ranking"]
    assert ranking[0]["tip_id"] == answer["tip_id"]
    assert sorted(r["tip_id"] for r in ranking) == sorted(candidate_ids)
    for r in ranking:
        assert set(r) == {"tip_id", "score", "probability"}
        assert 0.0 <= r["probability"] <= 1.0
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0, abs=1e-9)
    assert answer["probability"] == ranking[0]["probability"] > 0
    assert answer["score"] == ranking[0]["score"]
    rest = [r["score"] for r in ranking[1:]]
    assert rest == sorted(rest, reverse=True)


# -- rank ------------------------------------------------------------------------------------


def test_rank_answers_every_candidate_chosen_first(client: httpx.Client) -> None:
    answer = rank(client)
    assert_rank_answer(answer, {"t-report", "t-call", "t-inbox"})
    assert answer["policy"] == "egreedy-v1"  # the configured active policy
    assert len(answer["event_id"]) == 32


def test_rank_with_a_null_policy_uses_the_configured_active_one(
    start_server: ServerFactory,
) -> None:
    server = start_server(active_policy="squarecb-ix1")
    assert rank(server.client, policy=None)["policy"] == "squarecb-ix1"


@pytest.mark.parametrize("policy", ["linucb-v1", "egreedy-v1", "ucb-ix1", "squarecb-ix1", "ts-ix1"])
def test_rank_with_an_explicit_policy(client: httpx.Client, policy: str) -> None:
    answer = rank(client, policy=policy)
    assert answer["policy"] == policy
    assert_rank_answer(answer, {"t-report", "t-call", "t-inbox"})
    stats = client.get("/v1/users/u-rank/stats", params={"policy": policy}).json()
    assert stats["pulls"] == 1


def test_rank_keeps_a_client_event_id(client: httpx.Client) -> None:
    answer = rank(client, event_id="app:2026-11-26:0001")
    assert answer["event_id"] == "app:2026-11-26:0001"
    logged = client.get("/v1/decisions/app:2026-11-26:0001")
    assert logged.status_code == 200
    assert logged.json()["tip_id"] == answer["tip_id"]


def test_duplicate_event_id_is_409_and_changes_nothing(client: httpx.Client) -> None:
    rank(client, event_id="evt-dup-1")
    before = snapshot(client, "u-rank")
    decision_before = client.get("/v1/decisions/evt-dup-1").json()
    again = client.post(
        "/v1/rank",
        json={**score_body("u-rank", three_tips(), hour=23), "event_id": "evt-dup-1"},
    )
    assert again.status_code == 409
    other_user = client.post(
        "/v1/rank", json={**score_body("someone-else", three_tips()), "event_id": "evt-dup-1"}
    )
    assert other_user.status_code == 409
    assert snapshot(client, "u-rank") == before
    assert snapshot(client, "someone-else")["decisions"]["decisions"] == []
    assert client.get("/v1/decisions/evt-dup-1").json() == decision_before


# -- feedback --------------------------------------------------------------------------------


def test_feedback_in_snake_case(client: httpx.Client) -> None:
    event = rank(client)["event_id"]
    got = feedback(client, {"event_id": event, "action": "done", "dwell_ms": 30 * SECOND})
    assert got == {
        "event_id": event,
        "reward": 1.0,
        "reward_milli": 1000,
        "reward_rule": "dwell-v1",
        "duplicate": False,
    }


def test_feedback_in_camel_case(client: httpx.Client) -> None:
    event = rank(client)["event_id"]
    got = feedback(client, {"eventId": event, "action": "done", "dwellMs": 5 * MINUTE})
    assert (got["event_id"], got["reward"], got["duplicate"]) == (event, 0.6, False)


@pytest.mark.parametrize(
    ("action", "dwell_ms", "reward"),
    [
        ("done", None, 0.6),
        ("done", 0, -0.3),
        ("done", 15 * SECOND - 1, -0.3),
        ("done", 15 * SECOND, 1.0),
        ("done", 2 * MINUTE - 1, 1.0),
        ("done", 2 * MINUTE, 0.6),
        ("done", 10 * MINUTE - 1, 0.6),
        ("done", 10 * MINUTE, 0.3),
        ("snooze", None, 0.1),
        ("snooze", 40 * MINUTE, 0.1),
        ("dismiss", None, -1.0),
        ("dismiss", 30 * SECOND, -1.0),
    ],
    ids=lambda v: "none" if v is None else str(v),
)
def test_feedback_reward_follows_dwell_v1(
    client: httpx.Client, action: str, dwell_ms: int | None, reward: float
) -> None:
    event = rank(client, policy="linucb-v1")["event_id"]
    body: dict[str, Any] = {"event_id": event, "action": action}
    if dwell_ms is not None:
        body["dwell_ms"] = dwell_ms
    got = feedback(client, body)
    assert got["reward"] == reward
    assert got["reward_milli"] == round(reward * 1000)
    stats = client.get("/v1/users/u-rank/stats", params={"policy": "linucb-v1"}).json()
    assert stats["reward_sum"] == pytest.approx(reward)


def test_feedback_twice_counts_once(client: httpx.Client) -> None:
    event = rank(client, policy="egreedy-v1")["event_id"]
    first = feedback(client, {"event_id": event, "action": "done", "dwell_ms": 20 * SECOND})
    stats_after_first = client.get("/v1/users/u-rank/stats").json()
    second = feedback(client, {"eventId": event, "action": "dismiss"})
    assert first["duplicate"] is False
    assert second["duplicate"] is True
    assert second["reward"] == first["reward"] == 1.0  # the first outcome stands
    stats = client.get("/v1/users/u-rank/stats").json()
    assert stats == stats_after_first
    assert (stats["reward_count"], stats["reward_sum"], stats["model_updates"]) == (1, 1.0, 1)
    assert client.get(f"/v1/decisions/{event}").json()["feedback"]["action"] == "done"


def test_the_same_feedback_sent_to_two_workers_at_once_counts_once(
    start_server: ServerFactory,
) -> None:
    one, two = start_server(), start_server()
    event = rank(one.client, policy="linucb-v1")["event_id"]
    body = {"event_id": event, "action": "done", "dwell_ms": 30 * SECOND}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda s: s.client.post("/v1/feedback", json=body), [one, two] * 6))
    assert [a.status_code for a in answers] == [200] * 12
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 11
    stats = two.client.get("/v1/users/u-rank/stats", params={"policy": "linucb-v1"}).json()
    assert (stats["reward_count"], stats["reward_sum"], stats["model_updates"]) == (1, 1.0, 1)


def test_feedback_for_an_unknown_event_is_404(client: httpx.Client) -> None:
    response = client.post("/v1/feedback", json={"event_id": "never-ranked", "action": "done"})
    assert response.status_code == 404
    assert client.get("/v1/decisions/never-ranked").status_code == 404


# -- decisions, stats, erasure ---------------------------------------------------------------


def test_decision_is_returned_as_logged_with_its_feedback(client: httpx.Client) -> None:
    tips = three_tips()
    answer = rank(client, user="logged", policy="linucb-v1")
    event = answer["event_id"]
    logged = client.get(f"/v1/decisions/{event}").json()
    assert logged["event_id"] == event
    assert (logged["user_id"], logged["policy"], logged["tip_id"]) == (
        "logged",
        "linucb-v1",
        answer["tip_id"],
    )
    assert logged["context"] == {"hour_of_day": 9, "day_of_week": 2}
    assert logged["score"] == answer["score"]
    assert logged["probability"] == answer["probability"]
    assert logged["origin"] == "rank"
    assert logged["feedback"] is None
    by_id = {c["tip_id"]: c for c in logged["candidates"]}
    assert list(by_id) == [t["id"] for t in tips]  # in the order sent
    report = by_id["t-report"]
    assert (report["is_overdue"], report["task_age_days"], report["priority"]) == (True, 4.0, 4)
    assert (report["source"], report["source_id"]) == ("todoist", "td-1")
    assert len(report["features"]) == 5
    assert report["features"][2:] == pytest.approx([1.0, 4.0 / 30.0, 1.0])
    ranking = {r["tip_id"]: r for r in answer["ranking"]}
    for tip_id, c in by_id.items():
        assert c["score"] == ranking[tip_id]["score"]
        assert c["probability"] == ranking[tip_id]["probability"]

    feedback(client, {"event_id": event, "action": "snooze", "dwell_ms": 1234})
    fb = client.get(f"/v1/decisions/{event}").json()["feedback"]
    assert (fb["action"], fb["dwell_ms"], fb["reward"], fb["reward_milli"]) == (
        "snooze",
        1234,
        0.1,
        100,
    )
    assert (fb["reward_rule"], fb["origin"], fb["applied"]) == ("dwell-v1", "client", True)


def test_user_stats_by_policy(client: httpx.Client) -> None:
    for _ in range(2):
        event = rank(client, user="stats-user", policy="linucb-v1")["event_id"]
        feedback(client, {"event_id": event, "action": "dismiss"})
    rank(client, user="stats-user", policy="egreedy-v1")
    linucb = client.get("/v1/users/stats-user/stats", params={"policy": "linucb-v1"}).json()
    assert (linucb["user_id"], linucb["policy"], linucb["pulls"]) == ("stats-user", "linucb-v1", 2)
    assert (linucb["reward_count"], linucb["reward_sum"], linucb["mean_reward"]) == (2, -2.0, -1.0)
    assert [t["label"] for t in linucb["theta"]] == LINUCB_LABELS
    assert any(t["value"] != 0.0 for t in linucb["theta"])
    egreedy = client.get("/v1/users/stats-user/stats", params={"policy": "egreedy-v1"}).json()
    assert (egreedy["pulls"], egreedy["reward_count"], egreedy["mean_reward"]) == (1, 0, 0.0)
    assert [t["label"] for t in egreedy["theta"]] == EGREEDY_LABELS
    assert client.get("/v1/users/stats-user/stats").json() == egreedy  # the active policy
    unknown = client.get("/v1/users/stats-user/stats", params={"policy": "nope-v9"})
    assert unknown.status_code == 422


def test_delete_user_forgets_models_decisions_and_feedback(client: httpx.Client) -> None:
    kept = rank(client, user="keeper")["event_id"]
    events = [rank(client, user="leaver", policy=p)["event_id"] for p in ("linucb-v1", "ucb-ix1")]
    feedback(client, {"event_id": events[0], "action": "done", "dwell_ms": 60 * SECOND})
    keeper_before = snapshot(client, "keeper")

    response = client.delete("/v1/users/leaver", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["user_id"] == "leaver"
    assert response.json()["deleted_rows"] >= 3

    for event in events:
        assert client.get(f"/v1/decisions/{event}").status_code == 404
        assert (
            client.post("/v1/feedback", json={"event_id": event, "action": "done"}).status_code
            == 404
        )
    gone = snapshot(client, "leaver")
    assert gone["decisions"]["decisions"] == []
    assert gone["features"]["history"] == []
    assert gone["v1_stats_linucb"]["pulls"] == gone["v1_stats_linucb"]["reward_count"] == 0
    assert all(t["value"] == 0.0 for t in gone["v1_stats_linucb"]["theta"])
    assert snapshot(client, "keeper") == keeper_before
    assert client.get(f"/v1/decisions/{kept}").status_code == 200


# -- policies --------------------------------------------------------------------------------


def test_policies_lists_the_registered_ones_and_the_active(client: httpx.Client) -> None:
    listed = client.get("/v1/policies").json()
    names = [p["name"] for p in listed["policies"]]
    assert names[:2] == ["linucb-v1", "egreedy-v1"]
    assert {"ucb-ix1", "squarecb-ix1", "ts-ix1"} <= set(names)
    assert listed["active"] == "egreedy-v1"
    for p in listed["policies"]:
        assert p["description"]
        assert isinstance(p["params"], dict)


def test_promoting_a_policy_changes_what_null_uses(client: httpx.Client) -> None:
    response = client.put("/v1/policies/active", json={"policy": "ucb-ix1"}, headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"active": "ucb-ix1", "gate": None}
    assert client.get("/v1/policies").json()["active"] == "ucb-ix1"
    assert rank(client, policy=None)["policy"] == "ucb-ix1"
    assert rank(client)["policy"] == "ucb-ix1"
    assert client.get("/v1/users/u-rank/stats").json()["policy"] == "ucb-ix1"
    assert rank(client, policy="linucb-v1")["policy"] == "linucb-v1"
    unknown = client.put("/v1/policies/active", json={"policy": "nope-v9"}, headers=ADMIN)
    assert unknown.status_code == 422
    assert client.get("/v1/policies").json()["active"] == "ucb-ix1"


def test_promotion_is_stored_in_the_database(start_server: ServerFactory) -> None:
    first = start_server()
    assert (
        first.client.put(
            "/v1/policies/active", json={"policy": "ts-ix1"}, headers=ADMIN
        ).status_code
        == 200
    )
    first.stop()
    second = start_server()
    assert second.client.get("/v1/policies").json()["active"] == "ts-ix1"
    assert rank(second.client)["policy"] == "ts-ix1"


def test_user_ids_and_event_ids_in_paths_are_quoted(client: httpx.Client) -> None:
    answer = rank(client, user="a/b c", event_id="x.y:z-1_2")
    assert client.get("/v1/decisions/x.y:z-1_2").json()["user_id"] == "a/b c"
    stats = client.get(f"/v1/users/{q('a/b c')}/stats").json()
    assert (stats["user_id"], stats["pulls"]) == ("a/b c", 1)
    assert answer["event_id"] == "x.y:z-1_2"
