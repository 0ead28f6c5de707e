"""Tokens and privacy: admin endpoints need the admin token, an optional API token guards the
rest, task texts are not kept unless configured, and weak tokens are refused at start-up."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from oo_ml.settings import Settings

from .conftest import ServerFactory
from .support import (
    ADMIN,
    ADMIN_TOKEN,
    API_TOKEN,
    LiveServer,
    candidate,
    live_server,
    make_settings,
    q,
    reward_body,
    score_body,
    three_tips,
)

API = {"Authorization": f"Bearer {API_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN_CALLS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "promote": ("PUT", "/v1/policies/active", {"policy": "ts-ix1"}),
    "shadow": ("PUT", "/v1/policies/shadow", {"policies": ["ts-ix1"]}),
    "forget": ("DELETE", "/v1/users/victim", None),
    "decisions": ("GET", "/v1/users/victim/decisions", None),
}

REFUSED_HEADERS = {
    "none": {},
    "wrong-token": bearer("wrong-" + ADMIN_TOKEN),
    "token-prefix": bearer(ADMIN_TOKEN[:-1]),
    "basic-scheme": {"Authorization": f"Basic {ADMIN_TOKEN}"},
    "bare-token": {"Authorization": ADMIN_TOKEN},
    "api-token": API,
}


def _add_victim(server: LiveServer) -> LiveServer:
    response = server.client.post("/v1/rank", json=score_body("victim", three_tips()), headers=API)
    assert response.status_code == 200
    return server


@pytest.fixture
def guarded(start_server: ServerFactory) -> LiveServer:
    """Admin and API tokens configured; the user ``victim`` has one decision."""
    return _add_victim(start_server(api_token=API_TOKEN))


@pytest.fixture(scope="module")
def guarded_module(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_file: Path
) -> Iterator[LiveServer]:
    """``guarded`` shared by the tests that change nothing or only their own user."""
    path = tmp_path_factory.mktemp("guarded") / "oo-ml.db"
    shutil.copyfile(migrated_sqlite_file, path)
    with live_server(make_settings(f"sqlite:///{path}", api_token=API_TOKEN)) as server:
        yield _add_victim(server)


def victim_state(client: httpx.Client) -> tuple[str, int]:
    active = client.get("/v1/policies").json()["active"]
    decisions = client.get("/v1/users/victim/decisions", headers=ADMIN).json()["decisions"]
    return active, len(decisions)


@pytest.mark.parametrize("call", ADMIN_CALLS.values(), ids=ADMIN_CALLS.keys())
@pytest.mark.parametrize("headers", REFUSED_HEADERS.values(), ids=REFUSED_HEADERS.keys())
def test_admin_endpoint_without_the_admin_token_is_401(
    guarded_module: LiveServer, call: tuple[str, str, Any], headers: dict[str, str]
) -> None:
    client = guarded_module.client
    method, path, body = call
    before = victim_state(client)
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert victim_state(client) == before


@pytest.mark.parametrize("call", ADMIN_CALLS.values(), ids=ADMIN_CALLS.keys())
def test_admin_endpoint_with_the_admin_token_works(
    guarded: LiveServer, call: tuple[str, str, Any]
) -> None:
    method, path, body = call
    response = guarded.client.request(method, path, json=body, headers=ADMIN)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("call", ADMIN_CALLS.values(), ids=ADMIN_CALLS.keys())
def test_admin_endpoints_are_403_when_no_admin_token_is_configured(
    start_server: ServerFactory, call: tuple[str, str, Any]
) -> None:
    server = start_server(admin_token=None)
    server.client.post("/v1/rank", json=score_body("victim", three_tips()))
    method, path, body = call
    for headers in ({}, ADMIN, bearer("anything-at-all-0123")):
        response = server.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, headers
    assert server.client.get("/v1/policies").json()["active"] == "egreedy-v1"
    assert server.client.get("/v1/users/victim/stats").json()["pulls"] == 1


def _api_calls(user: str, event: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    tips = three_tips()
    return {
        "score": ("POST", "/score", score_body(user, tips)),
        "score-egreedy": ("POST", "/score/egreedy", score_body(user, tips)),
        "reward": ("POST", "/reward", reward_body(user, "t-report", 1.0)),
        "reward-egreedy": ("POST", "/reward/egreedy", reward_body(user, "t-report", 1.0)),
        "stats": ("GET", f"/stats/{user}", None),
        "stats-egreedy": ("GET", f"/stats/egreedy/{user}", None),
        "features": ("GET", f"/features/{user}", None),
        "reset": ("POST", f"/reset/{user}", None),
        "rank": ("POST", "/v1/rank", score_body(user, tips)),
        "feedback": ("POST", "/v1/feedback", {"event_id": event, "action": "done"}),
        "decision": ("GET", f"/v1/decisions/{event}", None),
        "user-stats": ("GET", f"/v1/users/{user}/stats", None),
    }


API_CALL_NAMES = list(_api_calls("u", "e"))


@pytest.mark.parametrize("name", API_CALL_NAMES)
def test_api_token_guards_the_decision_and_existing_endpoints(
    guarded_module: LiveServer, name: str
) -> None:
    client, user = guarded_module.client, f"alice-{name}"
    ranked = client.post("/v1/rank", json=score_body(user, three_tips()), headers=API)
    assert ranked.status_code == 200
    method, path, body = _api_calls(user, ranked.json()["event_id"])[name]
    history = client.get(f"/features/{user}", headers=API).json()

    for headers in ({}, bearer("wrong-" + API_TOKEN), {"Authorization": f"Basic {API_TOKEN}"}):
        refused = client.request(method, path, json=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert user not in refused.text
    assert client.get(f"/features/{user}", headers=API).json() == history

    assert client.request(method, path, json=body, headers=API).status_code == 200
    # The admin token is the stronger one: it opens these endpoints too.
    if method == "GET":
        assert client.request(method, path, headers=ADMIN).status_code == 200


def test_without_an_api_token_the_existing_endpoints_stay_open(client: httpx.Client) -> None:
    assert client.post("/score", json=score_body("open", three_tips())).status_code == 200
    assert client.get("/stats/open").status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/v1/policies"])
def test_operational_endpoints_need_no_token(guarded_module: LiveServer, path: str) -> None:
    assert guarded_module.client.get(path).status_code == 200


# -- task content ----------------------------------------------------------------------------


def database_bytes(database_url: str) -> bytes:
    """The SQLite file with its write-ahead log and shared memory, as stored on disk."""
    path = Path(make_url(database_url).database or "")
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


@pytest.mark.parametrize("store_content", [False, True])
def test_task_content_is_kept_only_when_configured(
    start_server: ServerFactory, database_url: str, store_content: bool
) -> None:
    server = start_server(store_content=store_content)
    client = server.client
    secret = f"Call the lawyer about case {secrets.token_hex(8)}"
    tips = [candidate("t-secret", content=secret, priority=4), candidate("t-plain")]
    event = client.post("/v1/rank", json=score_body("private", tips)).json()["event_id"]
    client.post("/score", json=score_body("private", tips))
    client.post("/score/egreedy", json=score_body("private", tips))

    logged = client.get(f"/v1/decisions/{event}").json()
    contents = {c["tip_id"]: c["content"] for c in logged["candidates"]}
    listed = client.get(f"/v1/users/{q('private')}/decisions", headers=ADMIN).json()
    all_contents = {c["content"] for d in listed["decisions"] for c in d["candidates"]}
    on_disk = secret.encode() in database_bytes(database_url)
    if store_content:
        assert contents == {"t-secret": secret, "t-plain": "Write the quarterly report"}
        assert secret in all_contents
        assert on_disk
    else:
        assert contents == {"t-secret": None, "t-plain": None}
        assert all_contents == {None}
        assert not on_disk
    assert secret not in client.get("/features/private").text


# -- weak tokens -----------------------------------------------------------------------------

WEAK = {
    "empty": "",
    "short": "s3cr3t-t0k3n",
    "fifteen-chars": "k" * 15,
    "password-padded": "password12345678",
    "secret-padded": "Secret0000000000",
    "changeme-padded": "123changeme45678",
    "all-digits": "0000000000000000",
}


@pytest.mark.parametrize("token", WEAK.values(), ids=WEAK.keys())
@pytest.mark.parametrize("field", ["admin_token", "api_token"])
def test_weak_tokens_are_refused(field: str, token: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None, **{field: token})  # type: ignore[arg-type]


def test_weak_admin_token_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OO_ML_ADMIN_TOKEN", "changeme")
    with pytest.raises(ValidationError, match="16 characters"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_strong_tokens_are_accepted() -> None:
    settings = Settings(_env_file=None, admin_token=ADMIN_TOKEN, api_token=API_TOKEN)  # type: ignore[call-arg]
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == ADMIN_TOKEN
    assert ADMIN_TOKEN not in repr(settings)
