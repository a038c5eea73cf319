"""Fixtures for the server tests: the same tests run on SQLite and on PostgreSQL.

Each backend gets one database for the whole session (a SQLite file in a temporary folder, or
a throwaway PostgreSQL database created on 127.0.0.1:5432 and dropped at the end), migrated
once. Each test then works in a project of its own, created with its own API key, so tests
stay independent without paying for a new database each time: the server's project isolation
is what keeps them apart.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from kaizen_server.api import create_app
from kaizen_server.config import Settings
from kaizen_server.store import Store

# Test modules import their data builders from server_test_data, next to this file; with
# --import-mode=importlib this folder is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(__file__))

from server_test_data import ApiClient  # noqa: E402

PG_ADMIN_URL = os.environ.get("KAIZEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _create_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"kaizen_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_pg_database(name: str) -> None:
    import psycopg

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated, empty database URL of each backend, for the whole session."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'kaizen.db'}"
        return

    name, url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(name)


@pytest.fixture(scope="session")
def store(database_url) -> Iterator[Store]:
    store = Store(database_url)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture(scope="session")
def app(store):
    return create_app(Settings(database_url=store.url, max_batch_items=200, max_request_bytes=8 * 1024 * 1024), store=store)


@pytest.fixture(scope="session")
def http(app) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def api(http, store) -> ApiClient:
    project = f"test-{uuid.uuid4().hex[:10]}"
    key, _ = store.create_key(project, "tests")
    return ApiClient(http=http, key=key, project=project)
