"""The existing service's HTTP contract, replayed as the oO app sends it, on SQLite and PostgreSQL.

The expected shapes below are written out from the existing service (shared/reference): every
field it answered must still be there with the same JSON type. Fields it did not have are
allowed only where listed in ``ADDED``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Set
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from oo_ml.types import Candidate, Context

from .conftest import BOTH_DATABASES, ServerFactory
from .support import (
    EGREEDY_LABELS,
    ISO_SECONDS,
    FakeClock,
    LiveServer,
    candidate,
    q,
    reward_body,
    score_body,
    three_tips,
    v1_features,
    v2_features,
)

pytestmark = BOTH_DATABASES

OPTIONAL_STR = (str, type(None))

SCORE = {"tip_id": str, "score": float, "policy": str}
STATS = {
    "user_id": str,
    "pulls": int,
    "reward_count": int,
    "cumulative_reward": float,
    "estimated_mean_reward": float,
    "theta": list,
    "last_updated": OPTIONAL_STR,
}
STATS_EGREEDY = {
    **STATS,
    "policy": str,
    "exploration_rate": float,
    "feature_labels": list,
}
FEATURES = {"user_id": str, "history": list}
HISTORY_LINUCB = {"ts": str, "features": dict, "score": float, "tip_id": str}
HISTORY_EGREEDY = {**HISTORY_LINUCB, "policy": str}
LOGGED_LINUCB = {"hour_of_day": int, "is_overdue": bool, "task_age_days": float, "priority": int}
LOGGED_EGREEDY = {**LOGGED_LINUCB, "day_of_week": int, "exploring": bool}

# Additions over the existing answers; a client that ignores unknown fields never sees them.
ADDED: dict[str, set[str]] = {
    "history_linucb": {"policy", "event_id"},
    "history_egreedy": {"event_id"},
    "logged_linucb": {"day_of_week", "exploring"},
}


def assert_shape(value: Any, shape: dict[str, Any], added: Set[str] = frozenset()) -> None:
    """Every field of ``shape`` with its JSON type (an int is not a float, a bool not an int)."""
    assert isinstance(value, dict), value
    missing = set(shape) - set(value)
    assert not missing, f"missing fields {missing} in {value}"
    extra = set(value) - set(shape) - added
    assert not extra, f"unexpected fields {extra} in {value}"
    for name, kind in shape.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        got = value[name]
        assert type(got) in kinds, f"{name}: {type(got).__name__} {got!r}, expected {kinds}"


def task_features(tip: dict[str, Any]) -> tuple[bool, float, int]:
    f = tip["features"]
    return f["is_overdue"], f["task_age_days"], f["priority"]


def post_ok(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


class ReferenceLinUCB:
    """The existing service's LinUCB (d=5, α=1, A=I, b=0), for the expected answers."""

    def __init__(self) -> None:
        self.A = np.identity(5)
        self.b = np.zeros(5)

    def choose(self, xs: list[list[float]]) -> tuple[int, float]:
        a_inv = np.linalg.inv(self.A)
        theta = a_inv @ self.b
        ucb = [float(theta @ x) + float(np.sqrt(np.array(x) @ a_inv @ x)) for x in xs]
        best = int(np.argmax(ucb))
        return best, ucb[best]

    def learn(self, x: list[float], reward: float) -> None:
        self.A += np.outer(x, x)
        self.b += reward * np.array(x)

    @property
    def theta(self) -> np.ndarray:
        return np.linalg.inv(self.A) @ self.b


# -- shapes and status codes ---------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_unseen_user_has_the_empty_answers(client: httpx.Client) -> None:
    stats = client.get("/stats/nobody")
    assert stats.status_code == 200
    assert_shape(stats.json(), STATS)
    assert stats.json() == {
        "user_id": "nobody",
        "pulls": 0,
        "reward_count": 0,
        "cumulative_reward": 0.0,
        "estimated_mean_reward": 0.0,
        "theta": [0.0] * 5,
        "last_updated": None,
    }
    egreedy = client.get("/stats/egreedy/nobody").json()
    assert_shape(egreedy, STATS_EGREEDY)
    assert egreedy["theta"] == [0.0] * 7
    assert egreedy["feature_labels"] == EGREEDY_LABELS
    assert egreedy["policy"] == "egreedy-v1"
    assert (egreedy["pulls"], egreedy["exploration_rate"], egreedy["last_updated"]) == (
        0,
        0.0,
        None,
    )
    assert client.get("/features/nobody").json() == {"user_id": "nobody", "history": []}


def test_replayed_session_keeps_every_field_type_and_status(client: httpx.Client) -> None:
    user = "app-user-42"
    tips = three_tips()
    full = post_ok(client, "/score", score_body(user, tips, hour=9, day=2))
    assert_shape(full, SCORE)
    assert full["policy"] == "linucb-v1"
    assert full["tip_id"] in {t["id"] for t in tips}

    # Defaults omitted: no context, no source_id, no features.
    minimal = post_ok(
        client,
        "/score",
        {
            "user_id": user,
            "candidates": [
                {"id": "bare-1", "content": "Plan the week", "source": "todoist"},
                {"id": "bare-2", "content": "Water plants", "source": "calendar"},
            ],
        },
    )
    assert_shape(minimal, SCORE)
    assert minimal["tip_id"] in {"bare-1", "bare-2"}

    chosen = next(t for t in tips if t["id"] == full["tip_id"])
    features = {**chosen["features"], "hour_of_day": 9}
    assert post_ok(client, "/reward", reward_body(user, full["tip_id"], 1.0, **features)) == {
        "ok": True
    }
    assert post_ok(
        client,
        "/reward",
        {"user_id": user, "tip_id": "bare-1", "reward": -0.5, "features": {}},
    ) == {"ok": True}

    egreedy = post_ok(client, "/score/egreedy", score_body(user, tips, hour=20, day=5))
    assert_shape(egreedy, SCORE)
    assert egreedy["policy"] == "egreedy-v1"
    body = reward_body(user, egreedy["tip_id"], 0.5, hour_of_day=20, day_of_week=5)
    assert post_ok(client, "/reward/egreedy", body) == {"ok": True}

    stats = client.get(f"/stats/{user}")
    assert stats.status_code == 200
    assert_shape(stats.json(), STATS)
    s = stats.json()
    assert (s["user_id"], s["pulls"], s["reward_count"]) == (user, 2, 2)
    assert s["cumulative_reward"] == pytest.approx(0.5)
    assert s["estimated_mean_reward"] == pytest.approx(0.25)
    assert len(s["theta"]) == 5
    assert all(type(v) is float for v in s["theta"])
    assert re.match(ISO_SECONDS, s["last_updated"])

    e = client.get(f"/stats/egreedy/{user}").json()
    assert_shape(e, STATS_EGREEDY)
    assert (e["pulls"], e["reward_count"], e["policy"]) == (1, 1, "egreedy-v1")
    assert e["cumulative_reward"] == pytest.approx(0.5)
    assert e["feature_labels"] == EGREEDY_LABELS
    assert len(e["theta"]) == 7
    assert 0.0 <= e["exploration_rate"] <= 1.0

    history = client.get(f"/features/{user}")
    assert history.status_code == 200
    assert_shape(history.json(), FEATURES)
    items = history.json()["history"]
    assert [i["tip_id"] for i in items] == [full["tip_id"], minimal["tip_id"], egreedy["tip_id"]]
    for item in items[:2]:
        assert_shape(item, HISTORY_LINUCB, ADDED["history_linucb"])
        assert_shape(item["features"], LOGGED_LINUCB, ADDED["logged_linucb"])
        assert re.match(ISO_SECONDS, item["ts"])
    assert items[0]["features"]["hour_of_day"] == 9
    assert items[1]["features"]["hour_of_day"] == 12  # the default context
    assert items[0]["score"] == pytest.approx(full["score"])
    last = items[2]
    assert_shape(last, HISTORY_EGREEDY, ADDED["history_egreedy"])
    assert_shape(last["features"], LOGGED_EGREEDY)
    assert last["policy"] == "egreedy-v1"
    assert (last["features"]["hour_of_day"], last["features"]["day_of_week"]) == (20, 5)

    reset = client.post(f"/reset/{user}")
    assert reset.status_code == 200
    assert reset.json() == {"ok": True}


def test_empty_candidates_is_422_as_before(client: httpx.Client) -> None:
    for path in ("/score", "/score/egreedy"):
        response = client.post(path, json={"user_id": "u", "candidates": []})
        assert response.status_code == 422, path


def test_linucb_answers_what_the_existing_service_answers(client: httpx.Client) -> None:
    """Scores, choices and θ over a replayed sequence equal the existing LinUCB's."""
    user = "replay-linucb"
    reference = ReferenceLinUCB()
    rng = np.random.default_rng(7)
    for step in range(6):
        hour = int(rng.integers(0, 24))
        tips = [
            candidate(
                f"s{step}-t{i}",
                hour_of_day=hour,
                is_overdue=bool(rng.integers(0, 2)),
                task_age_days=round(float(rng.uniform(-5, 40)), 2),
                priority=int(rng.integers(1, 5)),
            )
            for i in range(4)
        ]
        xs = [v1_features(hour, *task_features(t)) for t in tips]
        best, ucb = reference.choose(xs)
        answer = post_ok(client, "/score", score_body(user, tips, hour=hour))
        assert answer["tip_id"] == tips[best]["id"], step
        assert answer["score"] == pytest.approx(ucb, rel=1e-9, abs=1e-12)
        reward = [1.0, -1.0, 0.5, 0.0, -0.5, 1.0][step]
        reference.learn(xs[best], reward)
        sent = reward_body(user, tips[best]["id"], reward, **tips[best]["features"])
        post_ok(client, "/reward", sent)
    stats = client.get(f"/stats/{user}").json()
    assert stats["theta"] == pytest.approx(reference.theta.tolist(), rel=1e-9, abs=1e-12)
    assert stats["pulls"] == 6
    assert stats["reward_count"] == 6
    assert stats["cumulative_reward"] == pytest.approx(1.0)


def test_every_reward_counts_as_before(client: httpx.Client) -> None:
    tip = candidate("t-twice", priority=2)
    post_ok(client, "/score", score_body("twice", [tip], hour=12))
    for reward in (1.0, 0.5):
        post_ok(client, "/reward", reward_body("twice", "t-twice", reward, priority=2))
    stats = client.get("/stats/twice").json()
    assert (stats["pulls"], stats["reward_count"], stats["cumulative_reward"]) == (1, 2, 1.5)
    x = np.array(v1_features(12, False, 0.0, 2))
    expected = np.linalg.solve(np.identity(5) + 2 * np.outer(x, x), 1.5 * x)
    assert stats["theta"] == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-12)


def test_reward_for_a_tip_never_scored_learns_the_features_sent(client: httpx.Client) -> None:
    """Nothing was logged for it, so the client's features are all there is, as before."""
    features = {"hour_of_day": 18, "is_overdue": True, "task_age_days": 45.0, "priority": 3}
    body = reward_body("newcomer", "t-elsewhere", -1.0, **features)
    post_ok(client, "/reward", body)
    x = np.array(v1_features(18, True, 45.0, 3))
    expected = np.linalg.solve(np.identity(5) + np.outer(x, x), -x)
    stats = client.get("/stats/newcomer").json()
    assert (stats["pulls"], stats["reward_count"]) == (0, 1)
    assert stats["theta"] == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-12)


# -- what changed behind the contract -------------------------------------------------------


def test_feature_history_survives_a_restart(start_server: ServerFactory) -> None:
    first = start_server()
    for hour in (7, 8):
        post_ok(first.client, "/score", score_body("persist", three_tips(), hour=hour))
    before = first.client.get("/features/persist").json()
    first.stop()

    second = start_server()
    after = second.client.get("/features/persist").json()
    assert after == before
    assert [i["features"]["hour_of_day"] for i in after["history"]] == [7, 8]
    assert second.client.get("/stats/persist").json()["pulls"] == 2


def test_every_worker_sees_the_same_history(start_server: ServerFactory) -> None:
    one, two = start_server(), start_server()
    post_ok(one.client, "/score", score_body("shared", three_tips(), hour=6))
    post_ok(two.client, "/score/egreedy", score_body("shared", three_tips(), hour=22))
    seen = [s.client.get("/features/shared").json()["history"] for s in (one, two)]
    assert seen[0] == seen[1]
    assert [(i["policy"], i["features"]["hour_of_day"]) for i in seen[0]] == [
        ("linucb-v1", 6),
        ("egreedy-v1", 22),
    ]
    for s in (one, two):
        assert s.client.get("/stats/shared").json()["pulls"] == 1
        assert s.client.get("/stats/egreedy/shared").json()["pulls"] == 1


def test_rewards_sent_to_two_workers_at_once_all_count(start_server: ServerFactory) -> None:
    one, two = start_server(), start_server()
    tip = candidate("t-busy", is_overdue=True, priority=3)
    post_ok(one.client, "/score", score_body("busy", [tip], hour=8, day=1))
    body = reward_body("busy", "t-busy", 0.5, hour_of_day=8, is_overdue=True, priority=3)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda s: s.client.post("/reward", json=body), [one, two] * 15))
    assert [a.status_code for a in answers] == [200] * 30
    stats = two.client.get("/stats/busy").json()
    assert (stats["pulls"], stats["reward_count"]) == (1, 30)
    assert stats["cumulative_reward"] == pytest.approx(15.0)
    x = np.array(v1_features(8, True, 0.0, 3))
    expected = np.linalg.solve(np.identity(5) + 30 * np.outer(x, x), 15.0 * x)
    assert stats["theta"] == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-12)


def test_history_keeps_the_last_100_decisions_oldest_first(server: LiveServer) -> None:
    """As the existing ring buffer did. Decisions are made in-process to keep the test fast."""
    engine, clock = server.engine, FakeClock()
    engine.clock = clock  # one decision per second: their order is their time
    for hour in range(24):
        for day in range(5):
            engine.rank("ring", Context(hour, day), [Candidate("t")], policy="linucb-v1")
            clock.advance(1)
    history = server.client.get("/features/ring").json()["history"]
    assert len(history) == 100
    logged = [(h["features"]["hour_of_day"], h["features"]["day_of_week"]) for h in history]
    assert logged == [(h, d) for h in range(24) for d in range(5)][20:]


def test_history_survives_many_rewards_for_tips_it_never_ranked(server: LiveServer) -> None:
    """Each such reward logs a single-candidate ``legacy`` record; those are not history and
    must not push the user's real decisions out of it."""
    client = server.client
    shown = [post_ok(client, "/score", score_body("crowded", three_tips()))["tip_id"]]
    engine = server.engine
    for _ in range(200):  # what 200 ``POST /reward`` for a tip ranked elsewhere would log
        job = engine.legacy_reward_job(
            "crowded",
            "linucb-v1",
            "t-ranked-elsewhere",
            1.0,
            client_candidate=Candidate("t-ranked-elsewhere"),
            client_context=Context(12, 0),
        )
        engine.store.write(job)
    post_ok(client, "/reward", reward_body("crowded", "t-ranked-elsewhere", 1.0))
    history = client.get("/features/crowded").json()["history"]
    assert [h["tip_id"] for h in history] == shown
    assert client.get("/stats/crowded").json()["reward_count"] == 201


def _train_everywhere(client: httpx.Client, user: str) -> None:
    for path, reward_path in (("/score", "/reward"), ("/score/egreedy", "/reward/egreedy")):
        answer = post_ok(client, path, score_body(user, three_tips(), hour=12))
        chosen = next(t for t in three_tips() if t["id"] == answer["tip_id"])
        post_ok(client, reward_path, reward_body(user, answer["tip_id"], 1.0, **chosen["features"]))
    ranked = post_ok(client, "/v1/rank", {**score_body(user, three_tips()), "policy": "ucb-ix1"})
    post_ok(client, "/v1/feedback", {"event_id": ranked["event_id"], "action": "dismiss"})


def test_reset_forgets_the_user_under_every_policy(server: LiveServer) -> None:
    client = server.client
    _train_everywhere(client, "resetme")
    _train_everywhere(client, "bystander")
    bystander_before = (
        client.get("/stats/bystander").json(),
        client.get("/stats/egreedy/bystander").json(),
        client.get("/features/bystander").json(),
    )
    assert client.get("/stats/resetme").json()["reward_count"] == 1

    assert post_ok(client, "/reset/resetme", {}) == {"ok": True}

    linucb = client.get("/stats/resetme").json()
    egreedy = client.get("/stats/egreedy/resetme").json()
    for stats, d in ((linucb, 5), (egreedy, 7)):
        assert (stats["pulls"], stats["reward_count"], stats["cumulative_reward"]) == (0, 0, 0.0)
        assert stats["theta"] == [0.0] * d
    ix = client.get("/v1/users/resetme/stats", params={"policy": "ucb-ix1"}).json()
    assert (ix["pulls"], ix["reward_count"], ix["model_updates"]) == (0, 0, 0)
    assert all(t["value"] == 0.0 for t in ix["theta"])
    assert client.get("/features/resetme").json()["history"] == []
    assert (
        client.get("/stats/bystander").json(),
        client.get("/stats/egreedy/bystander").json(),
        client.get("/features/bystander").json(),
    ) == bystander_before

    # A second later: a decision in the reset's own millisecond is the subject of the next test.
    later = time.time() + 1
    server.engine.clock = lambda: later
    post_ok(client, "/score", score_body("resetme", three_tips()))
    assert len(client.get("/features/resetme").json()["history"]) == 1
    assert client.get("/stats/resetme").json()["pulls"] == 1


def test_decision_in_the_same_millisecond_as_a_reset_still_counts(server: LiveServer) -> None:
    """A reset followed by a decision within the same clock millisecond (or from a worker whose
    clock lags) must not lose the decision."""
    client = server.client
    post_ok(client, "/score", score_body("same-ms", three_tips()))
    server.engine.clock = lambda: 1_900_000_000.0
    post_ok(client, "/reset/same-ms", {})
    answer = post_ok(client, "/score", score_body("same-ms", three_tips()))
    history = client.get("/features/same-ms").json()["history"]
    assert [i["tip_id"] for i in history] == [answer["tip_id"]]
    assert client.get("/stats/same-ms").json()["pulls"] == 1


def test_egreedy_reward_learns_the_logged_day_not_the_clients(client: httpx.Client) -> None:
    """The app sends no day_of_week with /reward/egreedy (so 0, Monday); the model must learn
    from the Saturday it logged when it scored the tip."""
    user = "weekend-user"
    tip = candidate("t-gym", is_overdue=True, task_age_days=3.0, priority=3, hour_of_day=10)
    answer = post_ok(client, "/score/egreedy", score_body(user, [tip], hour=10, day=5))
    assert answer["tip_id"] == "t-gym"
    # As the app sends it: the candidate's own features, day_of_week left at its default.
    post_ok(client, "/reward/egreedy", reward_body(user, "t-gym", 1.0, **tip["features"]))

    def ridge_theta(x: list[float]) -> list[float]:
        a = np.identity(7) + np.outer(x, x)
        return (np.linalg.solve(a, np.array(x) * 1.0)).tolist()

    logged = ridge_theta(v2_features(10, 5, True, 3.0, 3))
    client_sent = ridge_theta(v2_features(10, 0, True, 3.0, 3))
    theta = client.get(f"/stats/egreedy/{q(user)}").json()["theta"]
    assert theta == pytest.approx(logged, rel=1e-9, abs=1e-12)
    assert theta != pytest.approx(client_sent, abs=1e-3)
    assert theta[6] < 0  # dow_cos of Saturday is negative; Monday's would be positive


def test_egreedy_reward_ignores_other_client_features_too(client: httpx.Client) -> None:
    user = "stale-client"
    tip = candidate("t-tax", is_overdue=False, task_age_days=0.0, priority=1)
    post_ok(client, "/score/egreedy", score_body(user, [tip], hour=18, day=3))
    wrong = reward_body(
        user, "t-tax", -1.0, hour_of_day=3, is_overdue=True, task_age_days=29.0, priority=4
    )
    wrong["day_of_week"] = 0
    post_ok(client, "/reward/egreedy", wrong)
    x = np.array(v2_features(18, 3, False, 0.0, 1))
    expected = np.linalg.solve(np.identity(7) + np.outer(x, x), -x)
    theta = client.get(f"/stats/egreedy/{user}").json()["theta"]
    assert theta == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-12)
