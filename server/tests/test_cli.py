"""The `kaizen` command: keys, projects, migrations, prune, export, serve."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from server_test_data import make_score, make_trace

from kaizen_server.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_keys_create_prints_key_once(capsys, store):
    project = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, err = run(capsys, "keys", "create", "--db", store.url, "--name", "ci", "--project", project)
    assert code == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("kz_")
    assert "shown only this once" in err
    assert "in database " in err
    record = store.find_key(key)
    assert record.project == project
    assert record.name == "ci"

    code, out, _ = run(capsys, "keys", "list", "--db", store.url, "--project", project)
    assert code == 0
    assert record.prefix in out
    assert key not in out


def test_keys_revoke_by_id(capsys, store):
    key, record = store.create_key(f"cli-{uuid.uuid4().hex[:8]}", "gone")
    code, out, _ = run(capsys, "keys", "revoke", "--db", store.url, str(record.id))
    assert code == 0
    assert "revoked" in out
    assert store.find_key(key).revoked_at is not None


def test_keys_revoke_unknown_fails(capsys, store):
    code, _, err = run(capsys, "keys", "revoke", "--db", store.url, "999999")
    assert code == 1
    assert "no API key" in err


def test_projects_create_and_list(capsys, store):
    name = f"proj-{uuid.uuid4().hex[:8]}"
    assert run(capsys, "projects", "create", "--db", store.url, name)[0] == 0
    code, _, err = run(capsys, "projects", "create", "--db", store.url, name)
    assert code == 1
    assert "exists already" in err
    code, out, _ = run(capsys, "projects", "list", "--db", store.url)
    assert name in out


def test_db_upgrade_twice(capsys, store):
    assert run(capsys, "db", "upgrade", "--db", store.url)[0] == 0
    assert run(capsys, "db", "upgrade", "--db", store.url)[0] == 0


def test_database_url_from_environment(capsys, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("KAIZEN_DATABASE_URL", url)
    assert run(capsys, "keys", "create")[0] == 0
    assert (tmp_path / "env.db").exists()


def test_bad_database_url_is_clear(capsys):
    code, _, err = run(capsys, "db", "upgrade", "--db", "mysql://x/y")
    assert code == 2
    assert "unsupported database URL" in err


def test_bad_duration_is_clear(capsys, store):
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "--db", store.url, "--older-than", "30 days"])
    assert exit_info.value.code == 2
    assert "invalid duration" in capsys.readouterr().err


def test_prune_deletes_old_traces(capsys, api, store):
    now = datetime.now(timezone.utc)
    old = make_trace(task="AGED", started_at=(now - timedelta(days=40)).isoformat())
    recent = make_trace(task="AGED", started_at=(now - timedelta(days=2)).isoformat())
    orphan = make_score(str(uuid.uuid4()), 0.5, created_at=(now - timedelta(days=40)).isoformat())
    api.ingest([old, recent], [make_score(old["id"], 1.0), make_score(recent["id"], 0.5), orphan])

    code, out, _ = run(capsys, "prune", "--db", store.url, "--older-than", "30d")
    assert code == 0
    assert "deleted" in out
    assert api.get(f"/api/v1/traces/{old['id']}").status_code == 404
    assert api.get(f"/api/v1/traces/{recent['id']}").status_code == 200
    task = api.get("/api/v1/tasks").json()["items"][0]
    assert task["trace_count"] == 1
    assert task["scored_count"] == 1
    assert task["mean_score"] == 0.5

    # The orphan score is gone too: a trace with its id arriving now gets no score.
    api.ingest([make_trace(id=orphan["trace_id"], task="AGED")])
    assert api.get(f"/api/v1/traces/{orphan['trace_id']}").json()["score"] is None


def test_export_command_writes_jsonl(capsys, api, store, tmp_path):
    trace = make_trace(task="EXPORTED")
    api.ingest([trace, make_trace(task="SKIPPED")], [make_score(trace["id"], 0.7)])
    output = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "export", "--db", store.url, "--project", api.project, "--task", "EXPORTED", "-o", str(output))
    assert code == 0
    assert "exported 1 traces" in err
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["id"] for line in lines] == [trace["id"]]
    assert lines[0]["scores"][0]["score"] == 0.7


def test_export_unknown_project_fails(capsys, store):
    code, _, err = run(capsys, "export", "--db", store.url, "--project", "no-such-project")
    assert code == 1
    assert "not found" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kaizen() -> list[str]:
    script = Path(sys.executable).parent / "kaizen"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kaizen_server.cli"]


def test_serve_with_workers(store, tmp_path):
    """Two worker processes on one database serve requests and lose no trace."""
    key, _ = store.create_key(f"serve-{uuid.uuid4().hex[:8]}", "serve")
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*_kaizen(), "serve", "--port", str(port), "--db", store.url, "--workers", "2"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"server did not start:\n{log_path.read_text()}")

        traces = [make_trace(task="WORKERS") for _ in range(200)]
        scores = [make_score(trace["id"], 0.5) for trace in traces]
        # Every batch goes out twice, from concurrent clients, as retrying SDKs would send it;
        # the scores travel separately and may overtake their traces.
        batches = [{"traces": traces[start:start + 20]} for start in range(0, 200, 20)] * 2
        batches += [{"scores": scores[start:start + 50]} for start in range(0, 200, 50)]
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            with ThreadPoolExecutor(max_workers=4) as pool:
                statuses = list(pool.map(lambda body: client.post("/api/v1/ingest", json=body).status_code, batches))
            tasks = client.get("/api/v1/tasks").json()["items"]
        assert statuses == [200] * len(batches)
        assert tasks[0]["trace_count"] == 200
        assert tasks[0]["scored_count"] == 200
        assert f"listening on http://127.0.0.1:{port}" in log_path.read_text()
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_retention_setting_prunes_at_start(store, api):
    from fastapi.testclient import TestClient

    from kaizen_server.api import create_app
    from kaizen_server.config import Settings

    now = datetime.now(timezone.utc)
    old = make_trace(task="RETAINED", started_at=(now - timedelta(days=10)).isoformat())
    recent = make_trace(task="RETAINED", started_at=now.isoformat())
    api.ingest([old, recent])

    app = create_app(Settings(database_url=store.url, retention_days=5), store=store)
    with TestClient(app):
        deadline = time.monotonic() + 10
        while api.get(f"/api/v1/traces/{old['id']}").status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.05)

    assert api.get(f"/api/v1/traces/{old['id']}").status_code == 404
    assert api.get(f"/api/v1/traces/{recent['id']}").status_code == 200


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_unreachable_database_is_one_line(capsys, tmp_path, dialect):
    if dialect == "postgres":
        url = f"postgresql+psycopg://postgres:secret-pw@127.0.0.1:{_free_port()}/test"
    else:
        # A directory where the database file should be cannot be opened.
        url = f"sqlite:///{tmp_path}"
    code, out, err = run(capsys, "keys", "create", "--db", url)
    assert code != 0
    assert out == ""
    assert err.startswith("error: cannot connect to the database ")
    assert err.strip().endswith("check --db or KAIZEN_DATABASE_URL")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert "secret-pw" not in err


def test_serve_on_busy_port_fails_clearly(store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*_kaizen(), "serve", "--port", str(port), "--db", store.url],
            capture_output=True, text=True, timeout=60, env={**os.environ},
        )
    assert result.returncode != 0
    assert f"error: cannot listen on 127.0.0.1:{port}: address already in use; pass --port N" in result.stderr
    assert "listening on" not in result.stderr
    assert "Traceback" not in result.stderr


def test_export_to_closed_pipe_is_quiet(api, store):
    # About 1 MB of JSON Lines, far more than a pipe buffer, so the writer meets the closed pipe.
    traces = [make_trace(task="PIPED", response_text="x" * 50_000) for _ in range(20)]
    api.ingest(traces)
    process = subprocess.Popen(
        [*_kaizen(), "export", "--db", store.url, "--project", api.project],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )
    first_line = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=60)
    assert json.loads(first_line)["task"] == "PIPED"
    assert code == 141
    assert "BrokenPipeError" not in stderr
    assert "Traceback" not in stderr


def test_sqlite_folder_creation_logged(capsys, caplog, tmp_path, monkeypatch):
    # sqlite:///a/b.db is relative to the current folder; the new folder must not go unnoticed.
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="kaizen_server.store")

    code, out, err = run(capsys, "keys", "create", "--db", "sqlite:///var/lib/kaizen/kaizen.db")

    assert code == 0
    assert (tmp_path / "var" / "lib" / "kaizen" / "kaizen.db").is_file()
    assert f"created folder {tmp_path / 'var' / 'lib' / 'kaizen'} for the SQLite database" in caplog.text
    assert "in database sqlite:///var/lib/kaizen/kaizen.db" in err
