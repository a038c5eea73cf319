"""The FastAPI application: JSON API under /api/v1, /health, OpenAPI at /docs, dashboard at /.

Endpoints that touch the database are plain `def` functions, which FastAPI runs in its thread
pool, because the store uses the synchronous SQLAlchemy engine. Each write commits inside the
endpoint, before the response exists, so a 2xx always means committed.
"""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from kaizen_server import __version__
from kaizen_server.api import ingest, tasks, traces
from kaizen_server.api.auth import authenticate
from kaizen_server.api.errors import install_error_handlers, problem_response
from kaizen_server.api.schemas import Health, IngestRequest, ProjectOut
from kaizen_server.config import Settings, settings_from_env
from kaizen_server.store import ApiKey, Store
from kaizen_server.wire import utc_now

logger = logging.getLogger("kaizen_server.app")

RETENTION_INTERVAL_S = 24 * 3600


def _retention_loop(store: Store, days: int, stop: threading.Event) -> None:
    """Prune once now and then every 24 hours until `stop` is set."""
    while not stop.is_set():
        try:
            store.prune(utc_now() - timedelta(days=days))
        except Exception:
            logger.exception("scheduled prune of data older than %d days failed; next try in 24 hours", days)
        stop.wait(RETENTION_INTERVAL_S)


class DeclaredBodyLimit:
    """Middleware that answers 413 when Content-Length exceeds `max_bytes`, before anything reads the body.

    Bodies without Content-Length are counted while the ingest endpoint reads them. This is a
    plain ASGI middleware because Starlette's `@app.middleware("http")` runs the rest of the
    application in a separate task and passes the response through a memory stream, which
    costs time on every request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name != b"content-length":
                    continue

                if value.isdigit() and int(value) > self.max_bytes:
                    detail = f"request body of {int(value)} bytes exceeds the limit of {self.max_bytes} bytes; send smaller batches"
                    await problem_response(413, detail)(scope, receive, send)
                    return

                break

        await self.app(scope, receive, send)


def _install_openapi(app: FastAPI) -> None:
    """Add the ingest request schema, which the endpoint validates item by item itself."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        request_schema = IngestRequest.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
        for name, definition in request_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["IngestRequest"] = request_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the application; `store` defaults to one opened on `settings.database_url`."""
    settings = settings or settings_from_env()
    store = store or Store(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        worker = None
        if settings.retention_days:
            worker = threading.Thread(
                target=_retention_loop, args=(store, settings.retention_days, stop), name="kaizen-retention", daemon=True
            )
            worker.start()
            logger.info("retention on: traces older than %d days are pruned every 24 hours", settings.retention_days)
        yield
        stop.set()
        if worker is not None:
            worker.join(timeout=5)

    app = FastAPI(
        title="Kaizen CT server",
        version=__version__,
        description="Stores LLM traces and scores sent by kaizen-sdk and serves them. Authenticate with `X-API-Key` or `Authorization: Bearer`; errors are `application/problem+json`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    install_error_handlers(app)

    app.add_middleware(DeclaredBodyLimit, max_bytes=settings.max_request_bytes)

    @app.get("/health", response_model=Health, summary="Liveness", tags=["health"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/api/v1/project", response_model=ProjectOut, summary="The project of the calling API key", responses={401: {"content": {"application/problem+json": {}}}})
    def project(key: ApiKey = Depends(authenticate)) -> dict:
        return {"project": key.project, "key_name": key.name, "key_prefix": key.prefix}

    app.include_router(ingest.router)
    app.include_router(traces.router)
    app.include_router(tasks.router)

    from kaizen_server.dashboard import router as dashboard_router

    app.include_router(dashboard_router)
    _install_openapi(app)
    return app


def create_app_from_env() -> FastAPI:
    """Application factory for uvicorn workers: settings come from the KAIZEN_* environment."""
    app = create_app(settings_from_env())

    # The objects that exist now (modules, the app, compiled schemas) live as long as the
    # process. Freezing moves them out of the collected generations, so the full garbage
    # collections that the objects of parsed batches set off no longer traverse them. Such a
    # collection took about 40 ms before, on the machine of docs/benchmarks.md.
    gc.freeze()
    return app
