"""The web dashboard, served by the CT server itself at `/`.

The pages are server-rendered HTML (Jinja2 with autoescaping) with hand-written CSS. A small
script adds keyboard shortcuts and the theme switch, and charts are inline SVG built on the
server. Nothing is fetched from another host, so the dashboard works offline.

Modules: `auth` (sign-in, sessions, CSRF), `accounts` (users and passwords), `pages` (tasks,
task, trace, hand scoring), `settings` (keys, users, retention), `queries` (reads only the
dashboard needs), `charts` (SVG), `diff` (prompt version diff), `render` (templates).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from kaizen_server.dashboard import auth, pages, settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(css|js|svg|png|txt)$")

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(settings.router)
router.include_router(pages.router)


@router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    """Serve a file of kaizen_server/static by its plain name; no sub-folders, no other paths."""
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")

    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
