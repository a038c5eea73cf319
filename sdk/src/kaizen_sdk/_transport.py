"""The HTTP transport that the exporter and `CTClient` share.

A thin wrapper over one `httpx.Client` so both callers send the same headers, use the same
timeouts and can be pointed at an `httpx.MockTransport` in tests. It classifies nothing and
retries nothing: the exporter decides about retries and the client maps statuses to errors.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

try:
    from importlib.metadata import PackageNotFoundError, version

    SDK_VERSION = version("kaizen-sdk")
except PackageNotFoundError:  # running from a source tree that was never installed
    SDK_VERSION = "0"

USER_AGENT = f"kaizen-sdk/{SDK_VERSION} httpx/{httpx.__version__}"
INGEST_PATH = "/api/v1/ingest"

# Statuses worth retrying: the server may accept the same request later.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Transport:
    """HTTP access to one CT server with one API key.

    Not shared between threads that send concurrently: the exporter owns one instance on its
    background thread and each `CTClient` owns another.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key

        self.base_url = base_url
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=http_transport,
        )

    def post_bytes(self, path: str, body: bytes) -> httpx.Response:
        """POST a JSON body that is already encoded, so the exporter serializes each item once."""
        return self._client.post(path, content=body, headers={"Content-Type": "application/json"})

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request; transport failures raise `httpx.TransportError` subclasses."""
        return self._client.request(method, path, params=params, json=json)

    def close(self) -> None:
        self._client.close()


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """Read `Retry-After` (delay in seconds or an HTTP date) as seconds from now, or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None

    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

    if when is None:
        return None

    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
