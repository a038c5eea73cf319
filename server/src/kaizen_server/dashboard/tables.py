"""Tables of the dashboard's sign-in: users and sessions.

They are declared on the store's shared `MetaData`, so the schema seen by Alembic includes
them, but they are read and written only by the dashboard modules. Migration 0002d creates
them on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Table

from kaizen_server.store.schema import metadata

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    # A user signs in to one project and reads only that project's data.
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("username", String(200), nullable=False, unique=True),
    # "scrypt$N$r$p$salt$hash" with base64 salt and hash; see kaizen_server.dashboard.accounts.
    Column("password_hash", String(300), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("disabled_at", DateTime, nullable=True),
)

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    # SHA-256 of the random session token in the cookie; the token itself is never stored.
    Column("token_hash", String(64), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    # Exactly one of user_id and api_key_id is set: the user or the API key that signed in.
    Column("user_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("api_key_id", Integer, ForeignKey("api_keys.id"), nullable=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Index("ix_dashboard_sessions_expires_at", "expires_at"),
)
