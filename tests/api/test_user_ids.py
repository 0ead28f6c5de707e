"""User ids are any string of 1 to 256 characters; two different ids never share state, whatever
characters they hold and whichever path carries them (percent-encoded as one segment)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import BOTH_DATABASES, ServerFactory
from .support import ADMIN, LiveServer, q, reward_body, score_body, three_tips

IDS = {
    "dot": "a.b",
    "underscore": "a_b",
    "slash": "a/b",
    "space": "a b",
    "percent-2F": "a%2Fb",
    "egreedy": "egreedy",
    "egreedy-slash": "egreedy/x",
    "unicode": "José-Müller 用户 🙂",
    "256-chars": "u" * 255 + "é",
    "dot-dot": "..",
    "query-like": "a?b=c#d",
    "stats-path": "x/stats",
}


def segment(user_id: str) -> str:
    """One path segment; dots too, so that ``.`` and ``..`` are not read as dot-segments."""
    return q(user_id).replace(".", "%2E")


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.request.url, response.text)
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("user_id", IDS.values(), ids=IDS.keys())
def test_user_id_works_on_every_path(module_server: LiveServer, user_id: str) -> None:
    client, uid = module_server.client, segment(user_id)
    tips = three_tips()
    tip = ok(client.post("/score", json=score_body(user_id, tips)))["tip_id"]
    ok(client.post("/reward", json=reward_body(user_id, tip, 1.0)))
    tip7 = ok(client.post("/score/egreedy", json=score_body(user_id, tips)))["tip_id"]
    ok(client.post("/reward/egreedy", json=reward_body(user_id, tip7, -1.0)))
    event = ok(client.post("/v1/rank", json=score_body(user_id, tips)))["event_id"]
    ok(client.post("/v1/feedback", json={"event_id": event, "action": "snooze"}))

    stats = ok(client.get(f"/stats/{uid}"))
    assert (stats["user_id"], stats["pulls"], stats["reward_count"]) == (user_id, 1, 1)
    egreedy = ok(client.get(f"/stats/egreedy/{uid}"))
    assert (egreedy["user_id"], egreedy["pulls"], egreedy["reward_count"]) == (user_id, 2, 2)
    history = ok(client.get(f"/features/{uid}"))
    assert history["user_id"] == user_id
    assert [h["policy"] for h in history["history"]] == ["linucb-v1", "egreedy-v1", "egreedy-v1"]
    v1 = ok(client.get(f"/v1/users/{uid}/stats"))
    assert (v1["user_id"], v1["pulls"], v1["reward_count"]) == (user_id, 2, 2)
    decisions = ok(client.get(f"/v1/users/{uid}/decisions", headers=ADMIN))
    assert decisions["user_id"] == user_id
    assert {d["user_id"] for d in decisions["decisions"]} == {user_id}
    assert len(decisions["decisions"]) == 3
    assert ok(client.get(f"/v1/decisions/{event}"))["user_id"] == user_id

    assert ok(client.post(f"/reset/{uid}")) == {"ok": True}
    assert ok(client.get(f"/stats/{uid}"))["pulls"] == 0
    assert ok(client.get(f"/stats/egreedy/{uid}"))["reward_count"] == 0
    assert ok(client.get(f"/features/{uid}"))["history"] == []

    forgotten = ok(client.delete(f"/v1/users/{uid}", headers=ADMIN))
    assert forgotten["user_id"] == user_id
    assert ok(client.get(f"/v1/users/{uid}/decisions", headers=ADMIN))["decisions"] == []


def test_distinct_ids_never_share_state(client: httpx.Client) -> None:
    """Each id gets a different number of decisions; any two that collided would add up."""
    everyone = [*IDS.values(), "a", "a%252Fb", "EGREEDY", "a\\b"]
    for n, user_id in enumerate(everyone, start=1):
        for _ in range(n):
            ok(client.post("/score", json=score_body(user_id, three_tips())))
    for n, user_id in enumerate(everyone, start=1):
        uid = segment(user_id)
        assert ok(client.get(f"/stats/{uid}"))["pulls"] == n, user_id
        assert ok(client.get(f"/stats/egreedy/{uid}"))["pulls"] == 0, user_id
        assert len(ok(client.get(f"/features/{uid}"))["history"]) == n, user_id
        assert (
            ok(client.get(f"/v1/users/{uid}/stats", params={"policy": "linucb-v1"}))["pulls"] == n
        ), user_id


def test_resetting_one_id_leaves_its_look_alikes(client: httpx.Client) -> None:
    look_alikes = ["a/b", "a_b", "a.b", "a%2Fb", "a b"]
    for user_id in look_alikes:
        ok(client.post("/score", json=score_body(user_id, three_tips())))
    ok(client.post(f"/reset/{segment('a/b')}"))
    pulls = {u: ok(client.get(f"/stats/{segment(u)}"))["pulls"] for u in look_alikes}
    assert pulls == {"a/b": 0, "a_b": 1, "a.b": 1, "a%2Fb": 1, "a b": 1}


LONG = "u" * 257


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/stats/{uid}"),
        ("GET", "/stats/egreedy/{uid}"),
        ("GET", "/features/{uid}"),
        ("POST", "/reset/{uid}"),
        ("GET", "/v1/users/{uid}/stats"),
        ("GET", "/v1/users/{uid}/decisions"),
        ("DELETE", "/v1/users/{uid}"),
    ],
)
def test_257_character_id_in_a_path_is_422(
    module_server: LiveServer, method: str, path: str
) -> None:
    response = module_server.client.request(method, path.format(uid=LONG), headers=ADMIN)
    assert response.status_code == 422, response.text
    assert any(d["loc"][-1] == "user_id" for d in response.json()["detail"])


@pytest.mark.parametrize("path", ["/score", "/score/egreedy", "/v1/rank"])
def test_257_character_id_in_a_body_is_422(module_server: LiveServer, path: str) -> None:
    client = module_server.client
    response = client.post(path, json=score_body(LONG, three_tips()))
    assert response.status_code == 422
    assert ["body", "user_id"] in [d["loc"] for d in response.json()["detail"]]
    reward = client.post("/reward", json=reward_body(LONG, "t-report", 1.0))
    assert reward.status_code == 422


MALFORMED = [
    ("GET", "/stats/%FF"),
    ("GET", "/stats/egreedy/%FE"),
    ("GET", "/features/%FF"),
    ("POST", "/reset/%FF"),
    ("GET", "/v1/users/%C3/stats"),
    ("GET", "/v1/users/%FF/decisions"),
    ("DELETE", "/v1/users/%FF"),
    ("GET", "/v1/decisions/%FF"),
]


@pytest.mark.parametrize(("method", "path"), MALFORMED, ids=[f"{m} {p}" for m, p in MALFORMED])
def test_percent_encoding_that_is_not_utf8_is_refused(
    module_server: LiveServer, method: str, path: str
) -> None:
    """``%FF`` decodes to no character: the id is malformed, so 4xx — not a 500, and not the
    replacement character (which would make ``%FF`` and ``%FE`` the same user)."""
    # A fresh connection: a server error may close it.
    with httpx.Client(base_url=module_server.base_url, trust_env=False, headers=ADMIN) as fresh:
        response = fresh.request(method, path)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@BOTH_DATABASES
def test_user_id_with_a_nul_character_is_stored_or_refused_never_a_server_error(
    start_server: ServerFactory,
) -> None:
    """A NUL is a character: the service may refuse it (422) but must not answer 5xx, and must
    answer the same on every database."""
    server = start_server()
    user_id = "nul\x00user"
    with httpx.Client(base_url=server.base_url, trust_env=False) as fresh:
        scored = fresh.post("/score", json=score_body(user_id, three_tips()))
        assert scored.status_code in (200, 422), scored.text
    with httpx.Client(base_url=server.base_url, trust_env=False) as fresh:
        stats = fresh.get(f"/stats/{q(user_id)}")
        assert stats.status_code in (200, 422), stats.text
    if scored.status_code == 200:
        assert stats.json()["pulls"] == 1
