"""Projects and API keys.

A key is `kz_` followed by 43 URL-safe random characters (256 bits). Only its SHA-256 is
stored: a fast hash is enough because the key is random and long, unlike a password, and it
lets authentication look the key up by index in one query.

`KeyCache` keeps the keys that the API found recently, so most API requests skip that query.
A key revoked through the same process stops working at once. A key revoked by another
process (`kaizen keys revoke`, another server worker) keeps working in this process for at
most KEY_CACHE_TTL_S seconds.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from kaizen_server.store.schema import api_keys, projects
from kaizen_server.wire import utc_now

KEY_PREFIX = "kz_"
DEFAULT_PROJECT = "default"
# Characters of the key kept in clear, enough to tell keys apart in `kaizen keys list`.
SHOWN_PREFIX_CHARS = 10
# How long the API trusts a key found active without asking the database again: the longest
# time a key revoked by another process still works.
KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX_ENTRIES = 10_000


class NotFound(LookupError):
    """A named project or key does not exist."""


class AlreadyExists(ValueError):
    """A project with that name exists already."""


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: int
    project_id: int
    project: str
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_project(connection: Connection, name: str) -> Project:
    name = name.strip()
    if not name:
        raise ValueError("project name is empty; give a name such as 'support-bot'")

    now = utc_now()
    try:
        with connection.begin_nested():
            result = connection.execute(projects.insert().values(name=name, created_at=now).returning(projects.c.id))
            project_id = result.scalar_one()
    except IntegrityError:
        raise AlreadyExists(f"project {name!r} exists already; list projects with `kaizen projects list`") from None

    return Project(id=project_id, name=name, created_at=now)


def get_or_create_project(connection: Connection, name: str) -> Project:
    row = connection.execute(select(projects).where(projects.c.name == name)).mappings().first()
    if row is not None:
        return Project(id=row["id"], name=row["name"], created_at=row["created_at"])

    try:
        return create_project(connection, name)
    except AlreadyExists:
        # Another process created it between the SELECT and the INSERT.
        row = connection.execute(select(projects).where(projects.c.name == name)).mappings().one()
        return Project(id=row["id"], name=row["name"], created_at=row["created_at"])


def list_projects(connection: Connection) -> list[Project]:
    rows = connection.execute(select(projects).order_by(projects.c.name)).mappings()
    return [Project(id=row["id"], name=row["name"], created_at=row["created_at"]) for row in rows]


def create_key(connection: Connection, project_name: str, name: str | None) -> tuple[str, ApiKey]:
    """Create a key in `project_name` (created if missing); return the key text and its record."""
    project = get_or_create_project(connection, project_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = utc_now()
    prefix = key[:SHOWN_PREFIX_CHARS]
    key_id = connection.execute(
        api_keys.insert()
        .values(project_id=project.id, name=name, prefix=prefix, key_hash=hash_key(key), created_at=now)
        .returning(api_keys.c.id)
    ).scalar_one()
    return key, ApiKey(key_id, project.id, project.name, name, prefix, now, None)


def _key_query():
    return select(api_keys, projects.c.name.label("project")).join(projects, projects.c.id == api_keys.c.project_id)


def _to_key(row) -> ApiKey:
    return ApiKey(row["id"], row["project_id"], row["project"], row["name"], row["prefix"], row["created_at"], row["revoked_at"])


def list_keys(connection: Connection, project_name: str | None = None) -> list[ApiKey]:
    query = _key_query().order_by(api_keys.c.id)
    if project_name is not None:
        query = query.where(projects.c.name == project_name)

    return [_to_key(row) for row in connection.execute(query).mappings()]


def revoke_key(connection: Connection, key_ref: str) -> ApiKey:
    """Revoke the key whose id or shown prefix is `key_ref`; revoking twice changes nothing."""
    query = _key_query()
    if key_ref.isdigit():
        query = query.where(api_keys.c.id == int(key_ref))
    else:
        query = query.where(api_keys.c.prefix == key_ref[:SHOWN_PREFIX_CHARS])
    rows = connection.execute(query).mappings().all()
    if not rows:
        raise NotFound(f"no API key with id or prefix {key_ref!r}; see `kaizen keys list`")

    if len(rows) > 1:
        ids = ", ".join(str(row["id"]) for row in rows)
        raise NotFound(f"prefix {key_ref!r} matches several keys (ids {ids}); revoke by id instead")

    row = rows[0]
    if row["revoked_at"] is None:
        connection.execute(update(api_keys).where(api_keys.c.id == row["id"]).values(revoked_at=utc_now()))

    return _to_key(connection.execute(_key_query().where(api_keys.c.id == row["id"])).mappings().one())


def find_key(connection: Connection, key: str) -> ApiKey | None:
    """Return the record of `key` (revoked or not), or None when no such key exists."""
    row = connection.execute(_key_query().where(api_keys.c.key_hash == hash_key(key))).mappings().first()
    return None if row is None else _to_key(row)


class KeyCache:
    """Active API keys found recently, by key hash, each trusted for `ttl_s` seconds.

    Only active keys are cached, so an unknown or revoked key is looked up on every request,
    and a new key works at once. `clear()` after a revoke drops every entry. A lookup that
    started before that clear cannot put its older record back, because `put` takes the
    generation read before the lookup and ignores the record when a clear came in between.
    """

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, max_entries: int = KEY_CACHE_MAX_ENTRIES, clock=time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        # {key hash: (expiry time on `clock`, record)}
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, key_hash: str) -> ApiKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] <= self.clock():
            return None

        return entry[1]

    def put(self, key_hash: str, record: ApiKey, generation: int) -> None:
        if record.revoked_at is not None or self.ttl_s <= 0:
            return

        with self._lock:
            if generation != self._generation:
                return

            # Expired entries stay until the cache is full, and then it starts over.
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key_hash] = (self.clock() + self.ttl_s, record)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
