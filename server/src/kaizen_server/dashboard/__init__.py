"""The first dashboard page at `/`: every project's tasks with their figures and recent traces.

Server-rendered with Jinja2 (autoescaping on, so prompts and responses that contain HTML or
script show as text), no JavaScript and no external assets.

NOTE: the page has no login and shows every project; run the server on a trusted network
or behind an authenticating proxy until the dashboard gets its own sign-in.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kaizen_server.store import TraceFilter, Window

RECENT_TRACES_PER_TASK = 5
PREVIEW_CHARS = 200

router = APIRouter(include_in_schema=False)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _preview(text: str | None) -> str:
    if not text:
        return ""

    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    """Render the overview; one task list per project and one short trace list per task."""
    store = request.app.state.store
    sections = []
    for project in store.list_projects():
        task_rows = store.list_tasks(project.id, Window())
        for task in task_rows:
            recent, _ = store.list_traces(project.id, TraceFilter(task=task["task"]), RECENT_TRACES_PER_TASK, None)
            task["recent"] = [
                {**trace, "prompt_preview": _preview(trace["prompt_text"]), "response_preview": _preview(trace["response_text"] or trace["error"])}
                for trace in recent
            ]
        sections.append({"project": project.name, "tasks": task_rows})

    html = _templates.get_template("dashboard.html").render(sections=sections)
    return HTMLResponse(html)
