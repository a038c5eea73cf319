"""API key authentication: `X-API-Key: <key>` or `Authorization: Bearer <key>`.

Both schemes are declared through FastAPI's security classes so the OpenAPI document lists
them. The key is looked up by its SHA-256 with one indexed query. The store caches an active
key for a few seconds (`KEY_CACHE_TTL_S` in kaizen_server.store.keys), and a request with a
cached key skips both the query and the trip to the thread pool. That is why this dependency
is `async`: on a cache miss it runs the query in the thread pool itself.
"""

from __future__ import annotations

import logging

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from kaizen_server.api.errors import Problem
from kaizen_server.store import ApiKey

logger = logging.getLogger("kaizen_server.auth")

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from `kaizen keys create`.")
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kaizen"'}


async def authenticate(
    request: Request,
    header_key: str | None = Depends(api_key_header),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> ApiKey:
    """Return the record of the request's API key, or raise a 401 problem with the reason."""
    key = header_key or (credentials.credentials if credentials is not None else None)
    if not key:
        raise Problem(401, "missing API key: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'; create one with `kaizen keys create`", headers=_CHALLENGE)

    store = request.app.state.store
    record = store.cached_key(key)
    if record is None:
        record = await run_in_threadpool(store.find_key, key)
    if record is None:
        raise Problem(401, f"invalid API key {key[:10]!r}...: no such key; create one with `kaizen keys create`", headers=_CHALLENGE)

    if record.revoked_at is not None:
        logger.info("rejected revoked key id=%d prefix=%s", record.id, record.prefix)
        raise Problem(401, f"API key {record.prefix}... was revoked at {record.revoked_at.isoformat()}Z; create a new one with `kaizen keys create`", headers=_CHALLENGE)

    return record
