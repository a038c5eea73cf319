"""Dashboard sign-in: sessions in the database, a session cookie, CSRF tokens, login and logout.

A person signs in with a project API key or with a user name and password made by
`kaizen users create`. Either way the session belongs to one project, and every page reads
only that project's rows. The cookie contains a random token (HttpOnly, SameSite=Lax, Secure
over HTTPS); the database keeps only its SHA-256, so a leaked database contains no usable
session. A session signed in with an API key ends when that key is revoked, and one signed
in as a user ends when the user is disabled.

Every form that changes something carries the session's CSRF token in a hidden field, which
is compared with the stored one (the synchronizer token pattern). The sign-in form, which
has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection, delete, select

from kaizen_server.dashboard import accounts
from kaizen_server.dashboard.render import render
from kaizen_server.dashboard.tables import dashboard_sessions, users
from kaizen_server.store import read, run_write
from kaizen_server.store.schema import api_keys, projects
from kaizen_server.wire import utc_now

logger = logging.getLogger("kaizen_server.dashboard.auth")

SESSION_COOKIE = "kaizen_session"
LOGIN_CSRF_COOKIE = "kaizen_login_csrf"
SESSION_LIFETIME = timedelta(days=14)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its project, who signed in, and the CSRF token of its forms."""

    project_id: int
    project: str
    csrf_token: str
    username: str | None
    api_key_id: int | None
    api_key_prefix: str | None

    @property
    def signed_in_as(self) -> str:
        if self.username is not None:
            return self.username

        return f"API key {self.api_key_prefix}…"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_session(connection: Connection, project_id: int, *, user_id: int | None = None, api_key_id: int | None = None) -> str:
    """Store a new session and return its cookie token; expired sessions are deleted on the way."""
    now = utc_now()
    connection.execute(delete(dashboard_sessions).where(dashboard_sessions.c.expires_at < now))
    token = secrets.token_urlsafe(32)
    connection.execute(
        dashboard_sessions.insert().values(
            token_hash=_hash_token(token), project_id=project_id, user_id=user_id, api_key_id=api_key_id,
            csrf_token=secrets.token_urlsafe(32), created_at=now, expires_at=now + SESSION_LIFETIME,
        )
    )
    return token


def load_session(connection: Connection, token: str) -> Session | None:
    """Return the live session of `token` (one statement), or None when unknown, expired or ended."""
    row = connection.execute(
        select(
            dashboard_sessions.c.project_id,
            dashboard_sessions.c.csrf_token,
            dashboard_sessions.c.expires_at,
            dashboard_sessions.c.user_id,
            dashboard_sessions.c.api_key_id,
            projects.c.name.label("project"),
            users.c.username,
            users.c.disabled_at,
            api_keys.c.prefix,
            api_keys.c.revoked_at,
        )
        .join(projects, projects.c.id == dashboard_sessions.c.project_id)
        .outerjoin(users, users.c.id == dashboard_sessions.c.user_id)
        .outerjoin(api_keys, api_keys.c.id == dashboard_sessions.c.api_key_id)
        .where(dashboard_sessions.c.token_hash == _hash_token(token))
    ).first()
    if row is None or row.expires_at <= utc_now():
        return None

    if row.user_id is not None and (row.username is None or row.disabled_at is not None):
        return None

    if row.api_key_id is not None and (row.prefix is None or row.revoked_at is not None):
        return None

    return Session(row.project_id, row.project, row.csrf_token, row.username, row.api_key_id, row.prefix)


def current_session(request: Request) -> Session | None:
    """Return the session of the request's cookie, or None when it has no live one."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None

    with read(request.app.state.store.engine) as connection:
        return load_session(connection, token)


def redirect_to_login(request: Request) -> RedirectResponse:
    """Send the browser to the sign-in page, which brings it back to this page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def csrf_ok(session: Session, submitted: str) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf_token, submitted)


def _safe_next(target: str | None) -> str:
    """Return `target` when it is a path on this server, else `/`: no open redirects."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"

    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return "/"

    return target


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200, mode: str = "password", username: str = "") -> Response:
    csrf = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", status_code=status_code, session=None, csrf_token=csrf, error=error, mode=mode,
        username=username, next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/login"
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    if current_session(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)

    return _login_page(request)


@router.post("/login")
def login(
    request: Request,
    csrf_token: str = Form(""),
    api_key: str = Form(""),
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
) -> Response:
    """Check the credentials, start a session and redirect; show the form again with the reason otherwise."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf_token or not cookie or not hmac.compare_digest(cookie, csrf_token):
        return _login_page(request, error="The sign-in form expired. Please sign in again.", status_code=400)

    store = request.app.state.store
    api_key = api_key.strip()
    username = username.strip()
    if any("\x00" in text for text in (api_key, username, password)):
        # No stored key, user name or password contains NUL, and PostgreSQL rejects it in queries.
        return _login_page(request, error="The sign-in form contains a NUL character; remove it.", status_code=400)
    if api_key:
        record = store.find_key(api_key)
        if record is None or record.revoked_at is not None:
            reason = "was revoked" if record is not None else "is not a key of this server"
            logger.info("dashboard sign-in with API key %s... rejected: it %s", api_key[:10], reason)
            return _login_page(request, error=f"That API key {reason}. Create one with `kaizen keys create`.", status_code=401, mode="key")

        token = run_write(store.engine, lambda c: create_session(c, record.project_id, api_key_id=record.id))
        logger.info("dashboard sign-in with API key id=%d of project %r", record.id, record.project)
    elif username:
        with read(store.engine) as connection:
            user = accounts.authenticate_user(connection, username, password)
        if user is None:
            logger.info("dashboard sign-in as %r rejected: wrong user name or password", username)
            return _login_page(request, error="Wrong user name or password.", status_code=401, username=username)

        token = run_write(store.engine, lambda c: create_session(c, user.project_id, user_id=user.id))
        logger.info("dashboard sign-in as user id=%d %r of project %r", user.id, user.username, user.project)
    else:
        return _login_page(request, error="Enter a user name and password, or an API key.", status_code=400)

    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    """End the session (its row is deleted, so the cookie is useless even if copied)."""
    session = current_session(request)
    if session is not None and csrf_ok(session, csrf_token):
        token_hash = _hash_token(request.cookies.get(SESSION_COOKIE, ""))
        run_write(request.app.state.store.engine, lambda c: c.execute(delete(dashboard_sessions).where(dashboard_sessions.c.token_hash == token_hash)))
        logger.info("dashboard sign-out of %s in project %r", session.signed_in_as, session.project)

    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
