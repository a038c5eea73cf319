"""`kaizen users create` and `kaizen users list` on both databases."""

from __future__ import annotations

import io
import uuid

from kaizen_server.cli import main
from kaizen_server.dashboard import accounts
from kaizen_server.store import read


def run(monkeypatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_users_create_reads_password_from_stdin(monkeypatch, capsys, store):
    project = f"cli-{uuid.uuid4().hex[:8]}"
    username = f"dana-{uuid.uuid4().hex[:6]}"
    code = run(monkeypatch, ["users", "create", "--db", store.url, "--project", project, username], "s3cret password\n")
    assert code == 0
    assert f"created user {username!r}" in capsys.readouterr().out
    with read(store.engine) as connection:
        user = accounts.authenticate_user(connection, username, "s3cret password")
    assert user is not None
    assert user.project == project


def test_users_create_rejects_short_password(monkeypatch, capsys, store):
    code = run(monkeypatch, ["users", "create", "--db", store.url, f"eve-{uuid.uuid4().hex[:6]}"], "short\n")
    assert code == 1
    assert "password too short (5 characters)" in capsys.readouterr().err


def test_users_create_rejects_duplicate(monkeypatch, capsys, store):
    username = f"finn-{uuid.uuid4().hex[:6]}"
    assert run(monkeypatch, ["users", "create", "--db", store.url, username], "long enough pw\n") == 0
    assert run(monkeypatch, ["users", "create", "--db", store.url, username], "long enough pw\n") == 1
    assert "exists already" in capsys.readouterr().err


def test_users_list_shows_project(monkeypatch, capsys, store):
    project = f"cli-{uuid.uuid4().hex[:8]}"
    username = f"gus-{uuid.uuid4().hex[:6]}"
    run(monkeypatch, ["users", "create", "--db", store.url, "--project", project, username], "long enough pw\n")
    capsys.readouterr()
    assert run(monkeypatch, ["users", "list", "--db", store.url]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if username in line)
    assert project in line
    assert line.endswith("active")
