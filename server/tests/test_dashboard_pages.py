"""Dashboard pages rendered on the server: content, filters, paging, escaping, scoring, settings."""

from __future__ import annotations

import uuid

import pytest
from dashboard_helpers import csrf_of, sign_in_with_key
from server_test_data import hours_ago, make_score, make_trace
from sqlalchemy import event

from kaizen_server.dashboard import charts
from kaizen_server.dashboard.diff import side_by_side

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def browser(app, api):
    """A client signed in to the test's project."""
    return sign_in_with_key(app, api.key)


def test_empty_project_shows_the_snippet(browser):
    page = browser.get("/")
    assert page.status_code == 200
    assert "No traces yet" in page.text
    assert "kaizen_sdk.instrument(openai)" in page.text


def test_quiet_window_links_to_all_time(browser, api):
    api.ingest([make_trace(task="LAST_MONTH_PROMPT", started_at=hours_ago(24 * 20))])
    page = browser.get("/?window=24h")
    assert "No traces in the last 24 hours." in page.text
    assert "No traces yet" not in page.text
    assert "LAST_MONTH_PROMPT" in browser.get("/?window=all").text


def test_overview_lists_figures(browser, api):
    traces = [make_trace(latency_ms=100.0 + index) for index in range(4)]
    traces.append(make_trace(error="ValueError: bad", response_text=None))
    api.ingest(traces, [make_score(traces[0]["id"], 0.5), make_score(traces[1]["id"], 1.0)])
    page = browser.get("/?window=24h")
    assert page.status_code == 200
    assert ">SUMMARIZE_PROMPT</a>" in page.text
    assert "0.75" in page.text
    assert "2 scored" in page.text
    assert "20.0%" in page.text
    assert 'class="sparkline"' in page.text


def test_overview_sorts_and_windows(browser, api):
    api.ingest([make_trace(task="A_PROMPT"), make_trace(task="B_PROMPT"), make_trace(task="B_PROMPT")])
    api.ingest([make_trace(task="OLD_PROMPT", started_at=hours_ago(24 * 10))])
    page = browser.get("/?sort=trace_count&order=desc&window=7d")
    assert page.text.index("B_PROMPT") < page.text.index("A_PROMPT")
    assert "OLD_PROMPT" not in page.text
    ascending = browser.get("/?sort=task&order=asc&window=all")
    assert ascending.text.index("A_PROMPT") < ascending.text.index("B_PROMPT") < ascending.text.index("OLD_PROMPT")


def test_unknown_window_and_sort_fall_back(browser, api):
    api.ingest([make_trace()])
    page = browser.get("/?window=1y&sort=DROP%20TABLE&order=sideways")
    assert page.status_code == 200
    assert "SUMMARIZE_PROMPT" in page.text


def test_user_text_renders_as_text(browser, api):
    task = 'TASK_<b onmouseover="x">'
    trace = make_trace(
        task=task, messages=[{"role": "user", "content": HOSTILE}], prompt_text=HOSTILE, response_text=HOSTILE,
        model="<i>model</i>", inputs={"snippet": HOSTILE}, template="Explain {snippet}</textarea>",
    )
    api.ingest([trace])
    pages = [browser.get("/"), browser.get("/tasks/" + task.replace('"', "%22")), browser.get(f"/traces/{trace['id']}")]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "<b onmouseover" not in page.text
        assert "<i>model</i>" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[2].text


def test_long_text_has_expand_control(browser, api):
    long_prompt = "word " * 2000
    trace = make_trace(messages=[{"role": "user", "content": long_prompt}], prompt_text=long_prompt)
    api.ingest([trace])
    page = browser.get(f"/traces/{trace['id']}")
    assert "Show all 10,000 characters" in page.text
    assert '<details class="expand">' in page.text


def test_trace_page_shows_call_details(browser, api):
    trace = make_trace(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_ref", "media_type": "image/png", "bytes": 2048, "sha256": "ab" * 32}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        ],
        source_file="app/summarize.py", source_line=42, detection_rule="template", parameters={"temperature": 0.3},
        error="RateLimitError: slow down",
    )
    api.ingest([trace], [make_score(trace["id"], 0.4, comment="too long")])
    page = browser.get(f"/traces/{trace['id']}")
    assert page.status_code == 200
    for expected in (
        "app/summarize.py:42", "template rule", "image/png", "2,048 bytes", "lookup", "call_1",
        "RateLimitError: slow down", "&#34;temperature&#34;: 0.3", "too long", "Summarize: {ticket}",
        "the printer is on fire", "15 total",
    ):
        assert expected in page.text, expected


def test_trace_page_shows_media_refs(browser, api):
    audio = {"type": "media_ref", "media_type": "audio/wav", "bytes": 4096, "sha256": "cd" * 32}
    document = {"type": "media_ref", "media_type": "application/pdf", "bytes": 1500, "sha256": "ef" * 32}
    trace = make_trace(messages=[{"role": "user", "content": [{"type": "text", "text": "Transcribe"}, audio, document]}])
    api.ingest([trace])
    page = browser.get(f"/traces/{trace['id']}")
    assert page.status_code == 200
    for expected in ("audio · audio/wav", "4,096 bytes", "sha256 " + "cd" * 8, "file · application/pdf", "1,500 bytes", "sha256 " + "ef" * 8):
        assert expected in page.text, expected
    assert "&#34;media_ref&#34;" not in page.text


def test_pages_declare_inline_favicon(browser):
    page = browser.get("/")
    assert '<link rel="icon" href="data:,">' in page.text
    assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]


def test_unknown_trace_is_not_found(browser):
    assert browser.get(f"/traces/{uuid.uuid4()}").status_code == 404
    assert browser.get("/traces/not-a-uuid").status_code == 404
    assert browser.get("/tasks/NO_SUCH_TASK").status_code == 404


def test_task_page_shows_versions_and_diff(browser, api):
    old = [make_trace(template="Summarize: {ticket}", started_at=hours_ago(3)) for _ in range(2)]
    api.ingest(old)
    new = [make_trace(template="Summarize briefly:\n{ticket}", started_at=hours_ago(1))]
    api.ingest(new, [make_score(new[0]["id"], 0.9)])
    page = browser.get("/tasks/SUMMARIZE_PROMPT")
    assert page.status_code == 200
    assert page.text.count('<tr class="diff-') >= 2
    assert "diff-replace" in page.text or "diff-insert" in page.text
    assert page.text.count('class="chart"') == 4
    assert "Summarize briefly:" in page.text


def test_task_page_filters(browser, api):
    traces = [
        make_trace(model="gpt-4o", response_text="alpha answer"),
        make_trace(model="gpt-4o-mini", response_text="beta answer"),
        make_trace(error="TimeoutError: slow", response_text=None),
        make_trace(response_text="scored high"),
    ]
    api.ingest(traces, [make_score(traces[3]["id"], 0.9), make_score(traces[0]["id"], 0.2)])
    ids = {index: trace["id"] for index, trace in enumerate(traces)}

    def listed(query: str) -> set[int]:
        page = browser.get(f"/tasks/SUMMARIZE_PROMPT?window=24h&{query}")
        assert page.status_code == 200
        return {index for index, trace_id in ids.items() if f"/traces/{trace_id}" in page.text}

    assert listed("") == {0, 1, 2, 3}
    assert listed("model=gpt-4o") == {0}
    assert listed("q=BETA") == {1}
    assert listed("errors=1") == {2}
    assert listed("unscored=1") == {1, 2}
    assert listed("min_score=0.5") == {3}
    assert listed("max_score=0.5") == {0}


def test_bad_filter_values_are_reported(browser, api):
    api.ingest([make_trace()])
    page = browser.get("/tasks/SUMMARIZE_PROMPT?min_score=abc&max_score=7&version=zz&cursor=garbage")
    assert page.status_code == 200
    assert "Ignored min score &#39;abc&#39;" in page.text
    assert "Ignored max score &#39;7&#39;" in page.text
    assert "Ignored the version filter" in page.text
    assert "Ignored the page cursor" in page.text


def test_task_page_pages_with_cursor(browser, api):
    traces = [make_trace(started_at=hours_ago(index / 60)) for index in range(60)]
    api.ingest(traces)
    first = browser.get("/tasks/SUMMARIZE_PROMPT?window=24h")
    assert first.text.count('href="/traces/') == 50
    assert 'rel="next"' in first.text
    next_link = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = browser.get("/tasks/SUMMARIZE_PROMPT" + next_link.split("#")[0])
    assert second.text.count('href="/traces/') == 10
    assert 'rel="next"' not in second.text
    seen = {trace["id"] for trace in traces if f"/traces/{trace['id']}" in first.text + second.text}
    assert len(seen) == 60


def test_hand_score_is_stored_as_human(browser, api):
    trace = make_trace()
    api.ingest([trace])
    page = browser.get(f"/traces/{trace['id']}")
    response = browser.post(
        f"/traces/{trace['id']}/score", data={"csrf_token": csrf_of(page.text), "score": "0.8", "comment": "fine", "name": "quality"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/traces/{trace['id']}?scored=1"
    stored = api.get(f"/api/v1/traces/{trace['id']}").json()
    assert stored["score"] == 0.8
    assert stored["scored_by"] == "human"
    assert stored["scores"][-1]["comment"] == "fine"
    assert stored["scores"][-1]["name"] == "quality"
    listing = browser.get("/tasks/SUMMARIZE_PROMPT")
    assert "0.80<div class=\"sub\">human</div>" in listing.text


def test_hand_score_needs_csrf_token(browser, api):
    trace = make_trace()
    api.ingest([trace])
    response = browser.post(f"/traces/{trace['id']}/score", data={"csrf_token": "wrong", "score": "1"})
    assert response.status_code == 403
    assert api.get(f"/api/v1/traces/{trace['id']}").json()["scores"] == []


@pytest.mark.parametrize("value", ["", "abc", "1.5", "-0.1", "nan"])
def test_invalid_hand_score_is_rejected(browser, api, value):
    trace = make_trace()
    api.ingest([trace])
    page = browser.get(f"/traces/{trace['id']}")
    response = browser.post(f"/traces/{trace['id']}/score", data={"csrf_token": csrf_of(page.text), "score": value, "comment": "kept"})
    assert response.status_code == 422
    assert "enter a number from 0 to 1" in response.text
    assert "kept</textarea>" in response.text
    assert api.get(f"/api/v1/traces/{trace['id']}").json()["scores"] == []


def test_review_mode_opens_next_unscored(browser, api):
    newest, scored, older = make_trace(started_at=hours_ago(1)), make_trace(started_at=hours_ago(2)), make_trace(started_at=hours_ago(3))
    api.ingest([newest, scored, older], [make_score(scored["id"], 1.0)])
    page = browser.get(f"/traces/{newest['id']}")
    jump = browser.get(f"/traces/{newest['id']}/next-unscored?review=1", follow_redirects=False)
    assert jump.headers["location"] == f"/traces/{older['id']}?review=1"
    response = browser.post(
        f"/traces/{newest['id']}/score", data={"csrf_token": csrf_of(page.text), "score": "0.5", "review": "1"}, follow_redirects=False
    )
    assert response.headers["location"] == f"/traces/{older['id']}?review=1&scored=1"
    last = browser.post(
        f"/traces/{older['id']}/score", data={"csrf_token": csrf_of(page.text), "score": "0.5", "review": "1"}, follow_redirects=False
    )
    assert last.headers["location"] == f"/traces/{older['id']}?scored=1&review=1"
    none_left = browser.get(f"/traces/{older['id']}/next-unscored", follow_redirects=False)
    assert none_left.headers["location"] == f"/traces/{older['id']}?none=1"
    assert "No other unscored trace" in browser.get(none_left.headers["location"]).text


def test_settings_key_is_shown_once(browser, api):
    page = browser.get("/settings")
    created = browser.post("/settings/keys", data={"csrf_token": csrf_of(page.text), "name": "ci"}, follow_redirects=False)
    assert created.status_code == 303
    shown = browser.get(created.headers["location"])
    key = shown.text.split('id="new-key">')[1].split("<")[0]
    assert key.startswith("kz_")
    assert "shown only this once" in shown.text
    again = browser.get("/settings")
    assert key not in again.text
    assert browser.app.state.store.find_key(key).project == api.project


def test_settings_revokes_key(browser, api, store):
    key, record = store.create_key(api.project, "doomed")
    page = browser.get("/settings")
    response = browser.post(f"/settings/keys/{record.id}/revoke", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert response.status_code == 303
    rejected = browser.get("/api/v1/project", headers={"X-API-Key": key})
    assert rejected.status_code == 401
    assert "revoked" in browser.get("/settings").text


def test_settings_creates_user(browser, app):
    page = browser.get("/settings")
    username = f"carol-{uuid.uuid4().hex[:6]}"
    short = browser.post("/settings/users", data={"csrf_token": csrf_of(page.text), "username": username, "password": "short"})
    assert short.status_code == 422
    assert "too short" in short.text
    created = browser.post("/settings/users", data={"csrf_token": csrf_of(page.text), "username": username, "password": "long enough pw"})
    assert created.status_code == 200
    assert f"Created user {username}" in created.text
    duplicate = browser.post("/settings/users", data={"csrf_token": csrf_of(page.text), "username": username, "password": "long enough pw"})
    assert "exists already" in duplicate.text


def test_static_files_and_no_traversal(browser):
    assert browser.get("/static/dashboard.css").status_code == 200
    assert browser.get("/static/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert browser.get("/static/..%2Fcli.py").status_code == 404
    assert browser.get("/static/missing.css").status_code == 404


def count_statements(store, action) -> int:
    statements = []

    def record(*_args) -> None:
        statements.append(1)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return len(statements)


def test_statement_count_does_not_grow_with_data(browser, api, store):
    api.ingest([make_trace(task="ONE_PROMPT")])
    first = api.ingest([make_trace(task="ONE_PROMPT")])
    trace_id = first["items"][0]["id"]
    pages = ["/", "/tasks/ONE_PROMPT", f"/traces/{trace_id}"]
    small = [count_statements(store, lambda path=path: browser.get(path)) for path in pages]

    many = [make_trace(task=f"TASK_{index % 12}_PROMPT", template=f"v{index % 3}: {{x}}") for index in range(120)]
    many += [make_trace(task="ONE_PROMPT", template=f"v{index % 4}: {{x}}", model=f"m{index}") for index in range(60)]
    api.ingest(many[:100])
    api.ingest(many[100:], [make_score(trace["id"], 0.5) for trace in many[:50]])
    large = [count_statements(store, lambda path=path: browser.get(path)) for path in pages]
    assert large == small


def test_sparkline_escapes_label():
    svg = charts.sparkline([0.1, None, 0.5], label='<script>"x"</script>')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_empty_sparkline_has_no_line():
    assert "polyline" not in charts.sparkline([None, None], label="t")


def test_side_by_side_diff_pairs_lines():
    rows = side_by_side("a\nb\nc", "a\nB\nc\nd")
    assert [row.kind for row in rows] == ["equal", "replace", "equal", "insert"]
    assert rows[1].left == "b"
    assert rows[1].right == "B"
    assert rows[3].left is None
    assert rows[3].right_number == 4


def test_filtered_scan_is_bounded(store, api):
    from kaizen_server.dashboard import queries
    from kaizen_server.store import TraceFilter, read

    traces = [make_trace(started_at=hours_ago(index / 60), error="E: x" if index in (3, 17) else None) for index in range(30)]
    api.ingest(traces)
    project_id = store.find_key(api.key).project_id
    only_errors = TraceFilter(task="SUMMARIZE_PROMPT", has_error=True)
    with read(store.engine) as connection:
        first = queries.scan_traces(connection, project_id, only_errors, 50, None, scan=10)
        assert [item["id"] for item in first["items"]] == [traces[3]["id"]]
        assert first["capped"] is True
        second = queries.scan_traces(connection, project_id, only_errors, 50, first["next_cursor"], scan=10)
        assert [item["id"] for item in second["items"]] == [traces[17]["id"]]
        assert second["capped"] is True
        third = queries.scan_traces(connection, project_id, only_errors, 50, second["next_cursor"], scan=10)
        assert third["items"] == []
        assert third["capped"] is False
        assert third["next_cursor"] is None
        paged = queries.scan_traces(connection, project_id, TraceFilter(task="SUMMARIZE_PROMPT", has_error=False), 5, None, scan=10)
        assert len(paged["items"]) == 5
        assert paged["capped"] is False
        assert paged["next_cursor"] is not None


def test_capped_scan_offers_older_traces(browser, api, monkeypatch):
    from kaizen_server.dashboard import queries

    monkeypatch.setattr(queries, "FILTER_SCAN", 5)
    monkeypatch.setattr(queries.scan_traces, "__defaults__", (5,))
    api.ingest([make_trace(started_at=hours_ago(index / 60)) for index in range(12)])
    page = browser.get("/tasks/SUMMARIZE_PROMPT?errors=1")
    assert "Looked through 5 traces; 0 matched." in page.text
    assert "Look through older traces" in page.text


def test_score_histogram_bins(store, api):
    from kaizen_server.dashboard import queries
    from kaizen_server.store import read

    values = [0.0, 0.05, 0.1, 0.55, 0.99, 1.0, 1.0]
    traces = [make_trace(task="HISTOGRAM_PROMPT", started_at=hours_ago(index / 60)) for index in range(len(values) + 2)]
    api.ingest(traces, [make_score(trace["id"], value) for trace, value in zip(traces, values)])
    project_id = store.find_key(api.key).project_id
    with read(store.engine) as connection:
        full = queries.score_histogram(connection, project_id, "HISTOGRAM_PROMPT", None)
        newest = queries.score_histogram(connection, project_id, "HISTOGRAM_PROMPT", None, sample=3)
    assert full["bins"] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    assert full["scored"] == 7
    assert full["read"] == 9
    assert full["capped"] is False
    assert newest["bins"] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert newest["read"] == 3
    assert newest["capped"] is True
