"""The settings page: the project's API keys (create, shown once; revoke), its users, and retention.

A new key is shown once through POST, redirect, GET: the POST stores the key text in a
short-lived HttpOnly cookie scoped to /settings, and the next GET shows it and deletes the
cookie. Reloading the page therefore neither shows the key again nor creates a second one.

Anyone signed in to a project may manage that project's keys and users.
NOTE: there are no roles yet; a dashboard user can revoke every key of the project.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kaizen_server.dashboard import accounts
from kaizen_server.dashboard.auth import Session, csrf_ok, current_session, redirect_to_login
from kaizen_server.dashboard.render import render
from kaizen_server.store import read, run_write

logger = logging.getLogger("kaizen_server.dashboard.settings")

router = APIRouter(include_in_schema=False)

NEW_KEY_COOKIE = "kaizen_new_key"
NEW_KEY_COOKIE_SECONDS = 120


def _settings_page(request: Request, session: Session, *, status_code: int = 200, **context) -> Response:
    store = request.app.state.store
    keys = store.list_keys(session.project)
    with read(store.engine) as connection:
        users = accounts.list_users(connection, session.project_id)

    return render(
        request, "settings.html", status_code=status_code, session=session, keys=keys, users=users,
        retention_days=request.app.state.settings.retention_days, **context,
    )


@router.get("/settings")
def settings_page(request: Request) -> Response:
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    revoked = request.query_params.get("revoked")
    new_key, new_key_record = _take_new_key(request, session)
    response = _settings_page(
        request, session, notice=f"Revoked API key {revoked[:20]}." if revoked else None,
        new_key=new_key, new_key_record=new_key_record,
    )
    if request.cookies.get(NEW_KEY_COOKIE):
        response.delete_cookie(NEW_KEY_COOKIE, path="/settings")
    return response


def _take_new_key(request: Request, session: Session):
    """Return the key created just before this page view and its record, or (None, None)."""
    key = request.cookies.get(NEW_KEY_COOKIE)
    if not key:
        return None, None

    record = request.app.state.store.find_key(key)
    if record is None or record.project_id != session.project_id or record.revoked_at is not None:
        return None, None

    return key, record


@router.post("/settings/keys")
def create_key(request: Request, csrf_token: str = Form(""), name: str = Form("")) -> Response:
    """Create a key in the session's project and show it once, on this response only."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    if not csrf_ok(session, csrf_token):
        return _settings_page(request, session, status_code=403, error="The form expired; reload the page and try again.")

    name = name.strip()
    if len(name) > 200 or "\x00" in name:
        return _settings_page(request, session, status_code=422, error="Key names are limited to 200 characters without NUL characters.")

    key, record = request.app.state.store.create_key(session.project, name or None)
    logger.info("dashboard created API key id=%d in project %r for %s", record.id, session.project, session.signed_in_as)
    response = RedirectResponse(f"/settings?created={record.id}", status_code=303)
    response.set_cookie(
        NEW_KEY_COOKIE, key, max_age=NEW_KEY_COOKIE_SECONDS, httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/settings",
    )
    return response


@router.post("/settings/keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: str, csrf_token: str = Form("")) -> Response:
    """Revoke a key of the session's project; keys of other projects are not found here."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    if not csrf_ok(session, csrf_token):
        return _settings_page(request, session, status_code=403, error="The form expired; reload the page and try again.")

    store = request.app.state.store
    record = next((key for key in store.list_keys(session.project) if str(key.id) == key_id), None)
    if record is None:
        return _settings_page(request, session, status_code=404, error=f"No API key with id {key_id[:20]!r} in this project.")

    store.revoke_key(str(record.id))
    logger.info("dashboard revoked API key id=%d of project %r for %s", record.id, session.project, session.signed_in_as)
    # Revoking the key this session signed in with ends the session, so the next page is the sign-in form.
    return RedirectResponse(f"/settings?revoked={record.prefix}", status_code=303)


@router.post("/settings/users")
def create_user(request: Request, csrf_token: str = Form(""), username: str = Form(""), password: str = Form("")) -> Response:
    """Create a dashboard user of the session's project."""
    session = current_session(request)
    if session is None:
        return redirect_to_login(request)

    if not csrf_ok(session, csrf_token):
        return _settings_page(request, session, status_code=403, error="The form expired; reload the page and try again.")

    try:
        user = run_write(
            request.app.state.store.engine, lambda c: accounts.create_user(c, session.project, username.strip(), password)
        )
    except ValueError as exc:
        return _settings_page(request, session, status_code=422, error=f"Could not create the user: {exc}.", username=username)

    return _settings_page(request, session, notice=f"Created user {user.username}; they can sign in now.")
