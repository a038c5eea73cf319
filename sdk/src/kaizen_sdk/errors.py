"""Exceptions raised by `CTClient`.

One base class, `KaizenError`, lets callers catch everything the client raises. One subclass
per kind of failure lets them react to each differently: a bad or missing key, an id the
server does not have, a request the server rejected as invalid, and a server that failed or
could not be reached. The tracing path (instrument, exporter) never raises these into user
code: it logs and drops instead.
"""

from __future__ import annotations


class KaizenError(Exception):
    """Base class of every error `CTClient` raises.

    `status_code` is the HTTP status of the failed response, or None when no response came
    back (connection error, timeout, or a check made before sending).
    """

    def __init__(self, message: str, *, status_code: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body


class AuthenticationError(KaizenError):
    """The API key is missing, unknown or revoked (HTTP 401 or 403)."""


class NotFoundError(KaizenError):
    """The trace or other resource does not exist on the server (HTTP 404)."""


class InvalidRequestError(KaizenError, ValueError):
    """The request was rejected as invalid (HTTP 400, 413, 422) or failed a local check.

    It is also a `ValueError`, because a bad argument is what it usually means.
    """


class ServerError(KaizenError):
    """The server failed (HTTP 5xx, or another unexpected status) or could not be reached."""
