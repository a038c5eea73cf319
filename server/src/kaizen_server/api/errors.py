"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error response has `title` (the HTTP reason), `status` and a `detail` sentence that
names the bad value and the fix. Validation errors add `errors`, one entry per bad field.
Unexpected exceptions are logged with the request path and answered 500 without internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kaizen_server.wire import with_expected_form

logger = logging.getLogger("kaizen_server.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error sent to the client as a problem document with `status` and `detail`."""

    def __init__(self, status: int, detail: str, *, errors: list[dict] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(status: int, detail: str, errors: list[dict] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors

    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            position = error.get("ctx", {}).get("error", "")
            return problem_response(400, f"the request body is not valid JSON ({position}); send a JSON document")

        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location[1:] if location and location[0] in ("query", "path", "header") else location) or "body"
        where = error.get("loc", ("body",))[0]
        message = with_expected_form(str(error.get("type", "")), str(error.get("msg", "invalid")))
        if error.get("type") == "missing":
            sentence = f"{where} field '{field}' is missing"
        else:
            sentence = f"{where} field '{field}' = {_shown(error.get('input'))}: {message}"
        errors.append({"field": field, "in": where, "message": sentence})

    detail = "; ".join(item["message"] for item in errors) or "the request is invalid"
    return problem_response(422, detail, errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
        if exc.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}; see /docs for the API"
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal server error; the server log has the details")
