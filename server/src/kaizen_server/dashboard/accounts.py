"""Dashboard users: creation, listing and password checks.

Passwords are hashed with scrypt from the standard library (N=2**14, r=8, p=1, 16-byte salt),
a memory-hard function suited to passwords, so the server needs no extra dependency. The
parameters are stored with each hash, so they can be raised later without breaking old users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from kaizen_server.dashboard.tables import users
from kaizen_server.store import keys as project_keys
from kaizen_server.store.schema import projects
from kaizen_server.wire import utc_now

logger = logging.getLogger("kaizen_server.dashboard.accounts")

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")

# Checked against when a username is unknown, so a failed sign-in takes the same time either way.
_DUMMY_HASH: str | None = None


class UserExists(ValueError):
    """A user with that name exists already."""


@dataclass(frozen=True)
class User:
    id: int
    project_id: int
    project: str
    username: str
    created_at: datetime
    disabled_at: datetime | None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """Return the stored form of `password`: `scrypt$N$r$p$salt$hash`."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check `password` against a hash made by `hash_password`; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False

        digest = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(base64.b64decode(expected)), maxmem=128 * int(n) * int(r) * 2,
        )
    except (ValueError, TypeError):
        return False

    return hmac.compare_digest(digest, base64.b64decode(expected))


def check_new_credentials(username: str, password: str) -> None:
    """Raise ValueError naming the problem when a new username or password is unacceptable."""
    if not USERNAME_PATTERN.match(username):
        raise ValueError(
            f"invalid username {username!r}: use 1 to 200 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )

    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password too short ({len(password)} characters): use at least {MIN_PASSWORD_CHARS}")

    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"password too long ({len(password)} characters): use at most {MAX_PASSWORD_CHARS}")

    if "\x00" in password:
        raise ValueError("password contains a NUL character; remove it")


def _user_query():
    return select(users, projects.c.name.label("project")).join(projects, projects.c.id == users.c.project_id)


def _to_user(row) -> User:
    return User(row["id"], row["project_id"], row["project"], row["username"], row["created_at"], row["disabled_at"])


def create_user(connection: Connection, project_name: str, username: str, password: str) -> User:
    """Create a user of `project_name` (the project is created if missing)."""
    check_new_credentials(username, password)
    project = project_keys.get_or_create_project(connection, project_name)
    now = utc_now()
    try:
        with connection.begin_nested():
            user_id = connection.execute(
                users.insert()
                .values(project_id=project.id, username=username, password_hash=hash_password(password), created_at=now)
                .returning(users.c.id)
            ).scalar_one()
    except IntegrityError:
        raise UserExists(f"user {username!r} exists already; pick another name") from None

    logger.info("created dashboard user id=%d %r in project %r", user_id, username, project.name)
    return User(user_id, project.id, project.name, username, now, None)


def list_users(connection: Connection, project_id: int | None = None) -> list[User]:
    query = _user_query().order_by(users.c.username)
    if project_id is not None:
        query = query.where(users.c.project_id == project_id)

    return [_to_user(row) for row in connection.execute(query).mappings()]


def authenticate_user(connection: Connection, username: str, password: str) -> User | None:
    """Return the user when the name and password match and the user is enabled, else None."""
    global _DUMMY_HASH

    row = connection.execute(_user_query().where(users.c.username == username)).mappings().first()
    if row is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
        verify_password(password, _DUMMY_HASH)
        return None

    if not verify_password(password, row["password_hash"]) or row["disabled_at"] is not None:
        return None

    return _to_user(row)
