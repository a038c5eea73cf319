"""Dashboard sign-in, sessions, CSRF and project isolation, through the FastAPI test client."""

from __future__ import annotations

import uuid

import pytest
from dashboard_helpers import csrf_of, sign_in_with_key, sign_in_with_password
from fastapi.testclient import TestClient
from server_test_data import make_trace

from kaizen_server.dashboard import accounts
from kaizen_server.store import run_write

PAGES = ["/", "/tasks/SUMMARIZE_PROMPT", f"/traces/{uuid.uuid4()}", "/settings"]


def new_user(store, project: str, password: str = "a long password") -> str:
    username = f"user-{uuid.uuid4().hex[:8]}"
    run_write(store.engine, lambda c: accounts.create_user(c, project, username, password))
    return username


@pytest.mark.parametrize("path", PAGES)
def test_page_requires_sign_in(app, path):
    response = TestClient(app).get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_key_sign_in_sets_safe_cookie(app, api):
    client = TestClient(app)
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "api_key": api.key, "next": "/settings"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/settings"
    cookie = next(value for value in response.headers.get_list("set-cookie") if value.startswith("kaizen_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert client.get("/settings").status_code == 200


def test_unknown_key_is_rejected(app):
    client = TestClient(app)
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "api_key": "kz_not-a-key"})
    assert response.status_code == 401
    assert "not a key of this server" in response.text
    assert "kaizen_session" not in client.cookies


def test_revoked_key_is_rejected(app, api, store):
    key, record = store.create_key(api.project, "to revoke")
    store.revoke_key(str(record.id))
    client = TestClient(app)
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "api_key": key})
    assert response.status_code == 401
    assert "was revoked" in response.text


def test_sign_in_without_csrf_cookie_fails(app, api):
    client = TestClient(app)
    form = client.get("/login")
    token = csrf_of(form.text)
    client.cookies.clear()
    response = client.post("/login", data={"csrf_token": token, "api_key": api.key})
    assert response.status_code == 400
    assert "expired" in response.text


def test_password_sign_in(app, api, store):
    username = new_user(store, api.project)
    client = TestClient(app)
    form = client.get("/login")
    wrong = client.post("/login", data={"csrf_token": csrf_of(form.text), "username": username, "password": "not the password"})
    assert wrong.status_code == 401
    assert "Wrong user name or password." in wrong.text

    signed_in = sign_in_with_password(app, username, "a long password")
    page = signed_in.get("/")
    assert page.status_code == 200
    assert username in page.text
    assert api.project in page.text


@pytest.mark.parametrize("field", ["username", "password", "api_key"])
def test_nul_in_sign_in_form_is_rejected(app, field):
    client = TestClient(app)
    form = client.get("/login")
    data = {"csrf_token": csrf_of(form.text), "username": "someone", "password": "whatever1", field: "a\x00b"}
    response = client.post("/login", data=data)
    assert response.status_code == 400
    assert "NUL character" in response.text


def test_unknown_user_is_rejected(app):
    client = TestClient(app)
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "username": "nobody-here", "password": "whatever1"})
    assert response.status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "settings", "/\r\nSet-Cookie: x=1"])
def test_next_never_leaves_the_server(app, api, target):
    client = TestClient(app)
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "api_key": api.key, "next": target}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_logout_ends_the_session(app, api):
    client = sign_in_with_key(app, api.key)
    cookie = client.cookies.get("kaizen_session")
    page = client.get("/")
    response = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert response.status_code == 303
    replay = TestClient(app)
    replay.cookies.set("kaizen_session", cookie)
    assert replay.get("/", follow_redirects=False).status_code == 303


def test_forged_session_cookie_is_ignored(app):
    client = TestClient(app)
    client.cookies.set("kaizen_session", "forged-token")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_revoking_the_sign_in_key_ends_the_session(app, api, store):
    key, record = store.create_key(api.project, "browser")
    client = sign_in_with_key(app, key)
    assert client.get("/", follow_redirects=False).status_code == 200
    store.revoke_key(str(record.id))
    assert client.get("/", follow_redirects=False).status_code == 303


def test_projects_stay_apart(app, api, store):
    hidden = make_trace(task="PROJECT_A_ONLY_PROMPT")
    api.ingest([hidden])
    other_key, _ = store.create_key(f"other-{uuid.uuid4().hex[:8]}", "other")
    other = sign_in_with_key(app, other_key)

    overview = other.get("/")
    assert "PROJECT_A_ONLY_PROMPT" not in overview.text
    assert other.get("/tasks/PROJECT_A_ONLY_PROMPT").status_code == 404
    trace = other.get(f"/traces/{hidden['id']}")
    assert trace.status_code == 404
    assert "Printer fire." not in trace.text

    score = other.post(f"/traces/{hidden['id']}/score", data={"csrf_token": csrf_of(overview.text), "score": "1"})
    assert score.status_code == 404
    assert api.get(f"/api/v1/traces/{hidden['id']}").json()["scores"] == []

    keys = store.list_keys(api.project)
    settings = other.get("/settings")
    assert keys[0].prefix not in settings.text
    revoke = other.post(f"/settings/keys/{keys[0].id}/revoke", data={"csrf_token": csrf_of(settings.text)})
    assert revoke.status_code == 404
    assert api.get("/api/v1/project").status_code == 200


def test_pages_send_security_headers(app, api):
    client = sign_in_with_key(app, api.key)
    response = client.get("/")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_password_hash_round_trip():
    stored = accounts.hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert accounts.verify_password("correct horse", stored)
    assert not accounts.verify_password("correct horsE", stored)
    assert not accounts.verify_password("correct horse", "md5$abc")


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [("", "long enough", "invalid username"), ("a b", "long enough", "invalid username"), ("bob", "short", "too short")],
)
def test_new_credentials_are_checked(username, password, message):
    with pytest.raises(ValueError, match=message):
        accounts.check_new_credentials(username, password)
