"""The dashboard in Debian's Chromium, driven by Playwright, against a real `kaizen serve`.

A CT server of its own (a fresh SQLite file, so the pages show only this module's data) is
seeded through the real SDK: the real openai client, instrumented, calls the stub LLM, and the
exporter sends the traces. A few backdated traces go straight to the ingest API, because the
SDK stamps every call with the current time and the charts need more than one hour to show a
trend. The tests then sign in, browse, filter, score by hand, revoke a key, and save a
screenshot of every page: to a temporary folder, or to KAIZEN_SCREENSHOT_DIR when it is set
(`KAIZEN_SCREENSHOT_DIR=docs/screenshots` refreshes the images the docs show).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest

import kaizen_sdk
from e2e.conftest import CTServer, kaizen_command, start_ct_server, stop_ct_server
from kaizen_sdk import _exporter

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# A test run leaves the committed screenshots alone unless asked to refresh them.
SCREENSHOTS = Path(os.environ.get("KAIZEN_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "kaizen-screenshots")
USERNAME = "alice"
PASSWORD = "correct horse battery"

# Prompts held by module variables: task detection names the traces after them.
TICKET_SUMMARY_PROMPT = "Summarize this support ticket in one line: {ticket}"
REPLY_DRAFT_PROMPT = "Draft a short, friendly reply to this customer message: {message}"
SNIPPET_REVIEW_PROMPT = "Explain what this HTML snippet does: {snippet}"
HOSTILE_SNIPPET = '<script>window.__kaizen_xss = 1</script><img src="x" onerror="window.__kaizen_xss = 2">'

TICKETS = [
    "the printer on floor 3 jams on every duplex job",
    "cannot reset my password, the email never arrives",
    "invoice 4411 charged twice this month",
    "app crashes when I upload a PNG larger than 10 MB",
    "export to CSV drops the last column",
    "dark mode makes the chart labels unreadable",
]


def summarize(client: openai.OpenAI, ticket: str, *, second_version: bool = False):
    # The variable name is the task name and its value the template: a new text is a new version.
    if second_version:
        TICKET_SUMMARY_PROMPT = "Summarize this support ticket in one line.\nName the product first.\n\nTicket: {ticket}"
    else:
        TICKET_SUMMARY_PROMPT = globals()["TICKET_SUMMARY_PROMPT"]
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a support assistant. Be brief."},
            {"role": "user", "content": TICKET_SUMMARY_PROMPT.format(ticket=ticket)},
        ],
        temperature=0.2,
    )


def seed_through_sdk(server: CTServer, stub_llm) -> dict[str, str]:
    """Make real openai calls through the instrumented client; return notable trace ids."""
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="sk-test", max_retries=0)
    ids: dict[str, str] = {}
    for index, ticket in enumerate(TICKETS):
        response = summarize(client, ticket)
        if index % 2 == 0:
            response.ct_score(0.5 + index * 0.08)
    # The server numbers prompt versions in the order it first stores them.
    assert kaizen_sdk.flush(timeout=15)
    for index, ticket in enumerate(TICKETS[:4]):
        response = summarize(client, ticket, second_version=True)
        response.ct_score(0.9 if index % 2 == 0 else 0.8)
    for message in ("where is my parcel?", "thanks, that fixed it", "I want a refund"):
        response = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": REPLY_DRAFT_PROMPT.format(message=message)}]
        )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="error-500", messages=[{"role": "user", "content": REPLY_DRAFT_PROMPT.format(message="my order is late")}]
        )
    ids["error"] = kaizen_sdk.last_trace_id()
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": SNIPPET_REVIEW_PROMPT.format(snippet=HOSTILE_SNIPPET)}]
    )
    ids["hostile"] = response.ct_trace_id
    assert kaizen_sdk.flush(timeout=15)
    return ids


def seed_history(server: CTServer) -> None:
    """Backdate traces over the last 7 days through the ingest API, so the charts show a trend."""
    now = datetime.now(timezone.utc)
    traces, scores = [], []
    for hours in range(6, 7 * 24, 5):
        trace_id = str(uuid.uuid4())
        ticket = TICKETS[hours % len(TICKETS)]
        prompt = TICKET_SUMMARY_PROMPT.format(ticket=ticket)
        traces.append(
            {
                "id": trace_id, "task": "TICKET_SUMMARY_PROMPT", "messages": [{"role": "user", "content": prompt}],
                "prompt_text": prompt, "response_text": f"Summary: {ticket}.", "model": "gpt-4o-mini",
                "prompt_tokens": 24, "completion_tokens": 9, "total_tokens": 33,
                "latency_ms": 300.0 + (hours * 37) % 500, "started_at": (now - timedelta(hours=hours)).isoformat(),
                "error": None, "library": "openai", "template": TICKET_SUMMARY_PROMPT, "inputs": {"ticket": ticket},
                "source_variable": "TICKET_SUMMARY_PROMPT", "detection_rule": "template",
            }
        )
        scores.append({"id": str(uuid.uuid4()), "trace_id": trace_id, "score": round(0.85 - hours / 400 - (hours % 3) / 20, 2), "scored_by": "sdk"})
    response = httpx.post(
        f"{server.base_url}/api/v1/ingest", json={"traces": traces, "scores": scores},
        headers={"X-API-Key": server.api_key}, timeout=30,
    )
    response.raise_for_status()


def create_user(server: CTServer) -> None:
    completed = subprocess.run(
        [*kaizen_command(), "users", "create", "--db", server.db_url, USERNAME],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, stub_llm) -> Iterator[dict]:
    """A seeded CT server of this module, with the ids of its notable traces."""
    server = start_ct_server(tmp_path_factory.mktemp("dashboard-server"))
    try:
        create_user(server)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KAIZEN_API_KEY", server.api_key)
            patch.setenv("KAIZEN_BASE_URL", server.base_url)
            patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            kaizen_sdk.instrument(openai)
            try:
                ids = seed_through_sdk(server, stub_llm)
            finally:
                kaizen_sdk.uninstrument(openai)
                _exporter.reset()
        seed_history(server)
        yield {"server": server, **ids}
    finally:
        stop_ct_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium`")

    with playwright_sync.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, dashboard):
    """A signed-in page of a fresh browser context (its own cookies)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, dashboard["server"].base_url)
    yield page
    context.close()


def sign_in(page, base_url: str, username: str = USERNAME, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/")
    assert "/login" in page.url
    page.fill("#password-form input[name=username]", username)
    page.fill("#password-form input[name=password]", password)
    page.click("#password-form button[type=submit]")


def shot(page, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def test_sign_in_rejects_wrong_password(browser, dashboard):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    base_url = dashboard["server"].base_url
    page.goto(f"{base_url}/settings")
    assert "/login" in page.url
    shot(page, "login")

    sign_in(page, base_url, password="wrong password")
    assert page.locator(".alert.error").inner_text() == "Wrong user name or password."

    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert "kaizen_session" not in cookies
    context.close()


def test_overview_lists_tasks_in_both_themes(page, dashboard):
    rows = page.locator("table.tasks tbody tr")
    names = rows.locator("td.task-name a").all_inner_texts()
    assert set(names) == {"TICKET_SUMMARY_PROMPT", "REPLY_DRAFT_PROMPT", "SNIPPET_REVIEW_PROMPT"}
    assert page.locator("table.tasks svg.sparkline").count() == 3
    cookie = next(cookie for cookie in page.context.cookies() if cookie["name"] == "kaizen_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    shot(page, "overview-light")

    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    shot(page, "overview-dark")
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"

    page.click("#theme-toggle")
    page.click("text=24 hours")
    assert "window=24h" in page.url
    page.click("table.tasks th >> text=Traces")
    assert "sort=trace_count" in page.url
    assert page.locator("table.tasks td.task-name a").first.inner_text() == "TICKET_SUMMARY_PROMPT"


def test_task_page_filters_and_versions(page, dashboard):
    page.click("text=TICKET_SUMMARY_PROMPT")
    assert page.locator("h1.task-title").inner_text() == "TICKET_SUMMARY_PROMPT"
    assert page.locator("table.versions tbody tr").count() == 2
    assert page.locator("table.diff tr.diff-insert, table.diff tr.diff-replace").count() >= 1
    assert page.locator(".charts svg.chart").count() == 4
    page.set_viewport_size({"width": 1360, "height": 1700})
    shot(page, "task")
    page.set_viewport_size({"width": 1360, "height": 900})

    page.fill("input[name=q]", "invoice 4411")
    page.click("form.filters button[type=submit]")
    prompts = page.locator("table.traces tbody td.clip").all_inner_texts()
    assert prompts, "the text filter returned no rows"
    assert all("invoice 4411" in text for text in prompts[::2]), prompts

    page.click("text=Clear")
    page.check("input[name=unscored]")
    page.click("form.filters button[type=submit]")
    scores = page.locator("table.traces tbody td.score-cell").all_inner_texts()
    assert scores
    assert all(text.strip() == "–" for text in scores)


def test_errors_filter_shows_failed_call(page, dashboard):
    page.click("text=REPLY_DRAFT_PROMPT")
    page.check("input[name=errors]")
    page.click("form.filters button[type=submit]")
    rows = page.locator("table.traces tbody tr")
    assert rows.count() == 1
    assert "InternalServerError" in rows.first.inner_text()
    rows.first.locator("a").first.click()
    assert dashboard["error"] in page.url
    assert "InternalServerError" in page.locator(".alert.error").first.inner_text()


def test_score_by_hand_in_review_mode(page, dashboard):
    server = dashboard["server"]
    page.click("text=TICKET_SUMMARY_PROMPT")
    page.check("input[name=unscored]")
    page.click("form.filters button[type=submit]")
    first = page.locator("table.traces tbody tr a").first
    first.click()
    trace_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    assert page.locator(".big-score").inner_text().startswith("–")
    shot(page, "trace", full_page=True)

    # Keyboard: 4 picks 0.75, r turns review mode on, Enter saves and opens the next unscored trace.
    page.fill("textarea[name=comment]", "good summary, <b>names</b> the product")
    page.press("textarea[name=comment]", "Escape")
    page.keyboard.press("4")
    assert page.input_value("#score-input") == "0.75"
    page.keyboard.press("r")
    assert page.is_checked("input[name=review]")
    page.keyboard.press("Enter")
    page.wait_for_url("**review=1**")
    assert trace_id not in page.url
    assert page.locator(".alert.ok").inner_text() == "Score saved."

    api_trace = server.get_trace(trace_id)
    assert api_trace["score"] == 0.75
    assert api_trace["scored_by"] == "human"
    assert api_trace["scores"][-1]["comment"] == "good summary, <b>names</b> the product"

    page.goto(f"{server.base_url}/traces/{trace_id}")
    assert page.locator(".big-score").inner_text().startswith("0.75")
    assert page.locator(".history .comment").first.inner_text() == "good summary, <b>names</b> the product"
    page.click(".crumbs >> text=TICKET_SUMMARY_PROMPT")
    row = page.locator("table.traces tbody tr", has=page.locator(f"a[href='/traces/{trace_id}']"))
    assert row.locator("td.score-cell").inner_text().split() == ["0.75", "human"]


def test_hostile_prompt_renders_as_text(page, dashboard):
    page.goto(f"{dashboard['server'].base_url}/traces/{dashboard['hostile']}")
    transcript = page.locator(".transcript").inner_text()
    assert HOSTILE_SNIPPET in transcript
    assert page.evaluate("window.__kaizen_xss") is None
    assert page.locator(".transcript img, .transcript script").count() == 0

    page.goto(f"{dashboard['server'].base_url}/tasks/SNIPPET_REVIEW_PROMPT")
    assert HOSTILE_SNIPPET in page.locator("table.traces").inner_text()
    assert page.evaluate("window.__kaizen_xss") is None


def test_revoked_key_is_rejected(page, browser, dashboard):
    server = dashboard["server"]
    page.click("nav >> text=Settings")
    page.fill("input[name=name]", "browser test key")
    page.click("text=Create API key")
    new_key = page.locator("#new-key").inner_text().strip()
    assert new_key.startswith("kz_")
    assert httpx.get(f"{server.base_url}/api/v1/project", headers={"X-API-Key": new_key}).status_code == 200

    # A second browser signs in with the new key; revoking the key must end that session too.
    other = browser.new_context()
    other_page = other.new_page()
    other_page.goto(f"{server.base_url}/login")
    other_page.fill("#key-form input[name=api_key]", new_key)
    other_page.click("#key-form button[type=submit]")
    assert other_page.locator("table.tasks").count() == 1

    page.reload()
    assert page.locator(".new-key").count() == 0, "a new key must be shown only once"
    shot(page, "settings", full_page=True)
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.locator("table.keys tbody tr", has_text="browser test key")
    row.locator("button", has_text="Revoke").click()
    page.wait_for_url("**revoked=**")
    assert "revoked" in page.locator("table.keys tbody tr", has_text="browser test key").inner_text()

    response = httpx.get(f"{server.base_url}/api/v1/project", headers={"X-API-Key": new_key})
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    other_page.reload()
    assert "/login" in other_page.url
    other.close()
