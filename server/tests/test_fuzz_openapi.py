"""Property-based fuzzing of every operation in the OpenAPI document (schemathesis).

Requests are generated from the document itself, valid and invalid, and sent with a valid API
key to the in-process application. No request may produce a 5xx, and every response must
match the status codes, content types and schemas the document declares. The number of
examples per operation is bounded so the run takes seconds, not minutes.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from kaizen_server.api import create_app
from kaizen_server.config import Settings

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="session")
def fuzz_key(store) -> str:
    key, _ = store.create_key(f"fuzz-{uuid.uuid4().hex[:8]}", "fuzz")
    return key


# The OpenAPI document does not depend on the database, so the application is built once at
# import time and pointed at each backend's store by the `fuzz_app` fixture.
fuzz_application = create_app(Settings(database_url="sqlite:///unused.db", max_batch_items=200, max_request_bytes=1024 * 1024), store=object())
schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_application)


@pytest.fixture
def fuzz_app(store):
    fuzz_application.state.store = store
    return fuzz_application


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, fuzz_app, fuzz_key):
    case.call_and_validate(
        headers={"X-API-Key": fuzz_key},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
