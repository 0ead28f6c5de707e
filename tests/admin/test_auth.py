"""Signing in to the console: the token, the session cookie, CSRF, and scripts' bearer header."""

from __future__ import annotations

import time

import httpx
import pytest

from oo_ml.admin.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    decode_session,
    encode_session,
)
from tests.api.support import LiveServer

from .conftest import ServerFactory
from .support import ADMIN_TOKEN, BEARER, csrf_of, login

PAGES = [
    "/admin/simulations",
    "/admin/policies",
    "/admin/users",
    "/admin/users?user_id=u1",
    "/admin/decisions",
    "/admin/policies/ucb-ix1/promote",
]


def _set_cookie_headers(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def test_login_refuses_a_wrong_token(client: httpx.Client) -> None:
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"csrf_token": csrf_of(page.text), "token": "not-the-admin-token-at-all"},
    )
    assert response.status_code == 401
    assert "That is not the admin token." in response.text
    assert not any(h.startswith(SESSION_COOKIE) for h in _set_cookie_headers(response))
    assert client.get("/admin/simulations").status_code == 303


def test_login_sets_an_httponly_samesite_strict_cookie_scoped_to_the_console(
    client: httpx.Client,
) -> None:
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"csrf_token": csrf_of(page.text), "token": ADMIN_TOKEN, "next": "/admin/policies"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/policies"
    [cookie] = [h for h in _set_cookie_headers(response) if h.startswith(SESSION_COOKIE + "=")]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/admin" in flags
    assert "secure" not in flags  # plain http on localhost: a Secure cookie would never return
    assert ADMIN_TOKEN not in cookie
    assert client.get("/admin/policies").status_code == 200


def test_cookie_is_secure_when_the_request_came_over_https(server: LiveServer) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as it would from a local TLS proxy.
    https = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=server.base_url, trust_env=False) as client:
        page = client.get("/admin/login", headers=https)
        [login_cookie] = [h for h in _set_cookie_headers(page) if h.startswith(LOGIN_COOKIE + "=")]
        assert "secure" in login_cookie.lower()
        client.cookies.clear()  # a Secure cookie: httpx keeps it for https, so pass it by hand
        response = client.post(
            "/admin/login",
            data={"csrf_token": csrf_of(page.text), "token": ADMIN_TOKEN},
            headers={**https, "Cookie": login_cookie.split(";", 1)[0]},
        )
    assert response.status_code == 303
    [cookie] = [h for h in _set_cookie_headers(response) if h.startswith(SESSION_COOKIE + "=")]
    assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}


def test_login_form_without_its_csrf_cookie_is_refused(server: LiveServer) -> None:
    page = server.client.get("/admin/login")
    with httpx.Client(base_url=server.base_url, trust_env=False) as other:
        response = other.post(
            "/admin/login", data={"csrf_token": csrf_of(page.text), "token": ADMIN_TOKEN}
        )
    assert response.status_code == 403
    assert not any(h.startswith(SESSION_COOKIE) for h in _set_cookie_headers(response))


@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_login_without_a_session(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=/admin/")


def test_login_brings_the_browser_back_where_it_was_going(client: httpx.Client) -> None:
    target = client.get("/admin/users?user_id=u1").headers["location"]
    page = client.get(target)
    next_field = 'name="next" value="/admin/users?user_id=u1"'
    assert next_field in page.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/docs", "/admin"])
def test_login_never_redirects_off_the_console(client: httpx.Client, target: str) -> None:
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"csrf_token": csrf_of(page.text), "token": ADMIN_TOKEN, "next": target},
    )
    assert response.headers["location"] == "/admin/simulations"


def test_status_endpoint_answers_401_without_a_session(client: httpx.Client) -> None:
    assert client.get("/admin/runs.json").status_code == 401


def test_forged_or_expired_sessions_are_refused(client: httpx.Client) -> None:
    forged = encode_session(Session(int(time.time()) + 3600, "x" * 20), "another-token-123456")
    client.cookies.set(SESSION_COOKIE, forged, path="/admin")
    assert client.get("/admin/policies").status_code == 303
    expired = encode_session(Session(int(time.time()) - 1, "x" * 20), ADMIN_TOKEN)
    client.cookies.set(SESSION_COOKIE, expired, path="/admin")
    assert client.get("/admin/policies").status_code == 303


def test_session_decoding_rejects_tampering() -> None:
    session = Session(2_000_000_000, "csrf-token-value")
    value = encode_session(session, ADMIN_TOKEN)
    assert decode_session(value, ADMIN_TOKEN, now=1_900_000_000) == session
    assert decode_session(value, ADMIN_TOKEN, now=2_000_000_001) is None
    payload, signature = value.split(".")
    assert decode_session(payload + "x." + signature, ADMIN_TOKEN, now=0) is None
    assert decode_session(payload + "." + signature[:-2], ADMIN_TOKEN, now=0) is None
    assert decode_session("garbage", ADMIN_TOKEN, now=0) is None
    assert decode_session("é.é", ADMIN_TOKEN, now=0) is None


@pytest.mark.parametrize("path", PAGES)
def test_bearer_header_opens_every_page_for_scripts(client: httpx.Client, path: str) -> None:
    assert client.get(path, headers=BEARER).status_code == 200


def test_wrong_bearer_gets_401_not_a_login_page(client: httpx.Client) -> None:
    response = client.get("/admin/policies", headers={"Authorization": "Bearer wrong-token-xyz"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_scripts_post_with_the_bearer_header_and_no_csrf_token(server: LiveServer) -> None:
    response = server.client.post(
        "/admin/policies/ucb-ix1/promote", headers=BEARER, data={"anything": "1"}
    )
    assert response.status_code == 303
    assert server.engine.active_policy().name == "ucb-ix1"


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_posts_without_the_session_csrf_token_are_refused(
    server: LiveServer, csrf: str, token: str | None
) -> None:
    data = {} if token is None else {"csrf_token": token}
    response = server.client.post("/admin/policies/ucb-ix1/promote", data=data)
    assert response.status_code == 403
    assert "another site" in response.text
    assert server.engine.active_policy().name == "egreedy-v1"
    accepted = server.client.post("/admin/policies/ucb-ix1/promote", data={"csrf_token": csrf})
    assert accepted.status_code == 303
    assert server.engine.active_policy().name == "ucb-ix1"


def test_csrf_token_of_another_session_is_refused(server: LiveServer, csrf: str) -> None:
    with httpx.Client(base_url=server.base_url, trust_env=False) as other:
        other_csrf = login(other)
    assert other_csrf != csrf
    response = server.client.post(
        "/admin/policies/ucb-ix1/promote", data={"csrf_token": other_csrf}
    )
    assert response.status_code == 403


def test_sign_out_clears_the_session(client: httpx.Client, csrf: str) -> None:
    response = client.post("/admin/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert client.get("/admin/simulations").status_code == 303


def test_console_is_disabled_without_an_admin_token(start_server: ServerFactory) -> None:
    server = start_server(admin_token=None)
    response = server.client.get("/admin/login")
    assert response.status_code == 403
    assert "OO_ML_ADMIN_TOKEN" in response.text
    assert server.client.get("/admin/policies", headers=BEARER).status_code == 403


def test_console_pages_carry_security_headers(client: httpx.Client) -> None:
    headers = client.get("/admin/login").headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
