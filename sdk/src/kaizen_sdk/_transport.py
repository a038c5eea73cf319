"""The HTTP transport that the exporter and `CTClient` share.

A thin wrapper over one `httpx.Client` so both callers send the same headers, use the same
timeouts and can be pointed at an `httpx.MockTransport` in tests. It classifies nothing and
retries nothing: the exporter decides about retries and the client maps statuses to errors.

httpx logs every request at INFO on the `httpx` logger. The exporter sends a batch every
few seconds for as long as the application runs, so its transport is created with
`log_requests=False`. A filter on the `httpx` logger then drops the records emitted on a
thread while that transport sends, and only those. The user's logging configuration is
left as it is, and the application's own httpx requests are still logged.
"""

from __future__ import annotations

import email.utils
import logging
import threading
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


_sending_quietly = threading.local()
_filter_lock = threading.Lock()
_filter_installed = False


class _QuietRequestFilter(logging.Filter):
    """Drop `httpx` records emitted while a transport with `log_requests=False` sends."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_sending_quietly, "active", False)


def _install_quiet_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if _filter_installed:
            return
        # NOTE: httpcore's DEBUG records (connection and HTTP/1.1 events) come from child
        # loggers of `httpcore` and are not filtered; they appear only at DEBUG level.
        logging.getLogger("httpx").addFilter(_QuietRequestFilter())
        _filter_installed = True


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
        log_requests: bool = True,
    ) -> None:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key

        self.base_url = base_url
        self._log_requests = log_requests
        if not log_requests:
            _install_quiet_filter()
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=http_transport,
        )

    def post_bytes(self, path: str, body: bytes) -> httpx.Response:
        """POST a JSON body that is already encoded, so the exporter serializes each item once."""
        if self._log_requests:
            return self._client.post(path, content=body, headers={"Content-Type": "application/json"})

        _sending_quietly.active = True
        try:
            return self._client.post(path, content=body, headers={"Content-Type": "application/json"})
        finally:
            _sending_quietly.active = False

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request; transport failures raise `httpx.TransportError` subclasses."""
        if self._log_requests:
            return self._client.request(method, path, params=params, json=json)

        _sending_quietly.active = True
        try:
            return self._client.request(method, path, params=params, json=json)
        finally:
            _sending_quietly.active = False

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
