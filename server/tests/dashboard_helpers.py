"""Helpers for the dashboard tests: signed-in test clients and form tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in_with_key(app, key: str) -> TestClient:
    """Return a new client (its own cookie jar) signed in with `key`."""
    client = TestClient(app)
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "api_key": key, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def sign_in_with_password(app, username: str, password: str) -> TestClient:
    client = TestClient(app)
    form = client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": csrf_of(form.text), "username": username, "password": password}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return client
