"""Jinja2 rendering for the dashboard pages, with the filters the templates share.

Autoescaping is on for every template, so prompts, responses, task names and any other text
from traced apps render as text, never as markup. Values that must stay markup (the SVG
charts) are built in `charts` from numbers and escaped text, and wrapped in `Markup` there.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kaizen_server import __version__

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
THEME_COOKIE = "kaizen_theme"
THEMES = ("light", "dark")

# Texts longer than this show their start and an expand control with the rest.
PREVIEW_CHARS = 1500

environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html", "svg"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def format_number(value: float | int | None, digits: int = 0) -> str:
    """Render a count or a measurement with thousands separators; "–" for unknown."""
    if value is None:
        return "–"

    if digits == 0:
        return f"{round(value):,}"

    return f"{value:,.{digits}f}"


def format_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def format_percent(value: float | None) -> str:
    if value is None:
        return "–"

    return f"{value * 100:.1f}%"


def format_ms(value: float | None) -> str:
    """Render a latency in ms as ms below one second and as seconds above."""
    if value is None:
        return "–"

    if value < 1000:
        return f"{value:.0f} ms"

    return f"{value / 1000:.2f} s"


def _parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    return datetime.fromisoformat(value)


def format_time(value: str | datetime | None) -> str:
    """Render a time as `YYYY-MM-DD HH:MM:SS` UTC."""
    moment = _parse_time(value)
    if moment is None:
        return "–"

    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_ago(value: str | datetime | None, now: datetime | None = None) -> str:
    """Render a past time relative to now: `42 s ago`, `5 min ago`, `3 h ago`, `12 d ago`."""
    moment = _parse_time(value)
    if moment is None:
        return "–"

    seconds = max(0.0, ((now or datetime.now(timezone.utc)) - moment).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"

    return f"{seconds // 86400:.0f} d ago"


def format_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def query_string(base: dict, **changes) -> str:
    """Return `?...` for `base` with `changes` applied; None or "" values are left out."""
    merged = {**base, **changes}
    pairs = [(name, value) for name, value in merged.items() if value is not None and value != ""]
    return "?" + urlencode(pairs) if pairs else ""


environment.filters.update(
    number=format_number,
    score=format_score,
    percent=format_percent,
    ms=format_ms,
    time=format_time,
    ago=format_ago,
    json=format_json,
)
environment.globals.update(query_string=query_string, preview_chars=PREVIEW_CHARS, version=__version__)


def theme_of(request: Request) -> str | None:
    """Return the theme chosen with the theme switch, or None to follow the browser's preference."""
    theme = request.cookies.get(THEME_COOKIE)
    return theme if theme in THEMES else None


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """Render a page template with the context every page needs (theme, session, path)."""
    html = environment.get_template(template).render(
        request_path=request.url.path, theme=theme_of(request), **context
    )
    response = HTMLResponse(html, status_code=status_code)
    # The pages show private data: no caching by shared proxies, and no framing by other sites.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    return response
