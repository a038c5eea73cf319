"""Trace, name and score the LLM calls an application makes.

``instrument(openai)``, ``instrument(litellm)`` or ``instrument(langchain)`` patches the
library in place. Every call then becomes a trace named after the variable that held its
prompt, and is sent to a CT server by a background exporter.
"""

from kaizen_sdk._instrument import instrument, uninstrument
from kaizen_sdk._exporter import flush, stats
from kaizen_sdk._detection import task
from kaizen_sdk._tracer import last_trace_id
from kaizen_sdk.client import CTClient
from kaizen_sdk.errors import (
    AuthenticationError,
    InvalidRequestError,
    KaizenError,
    NotFoundError,
    ServerError,
)

__all__ = [
    "instrument",
    "uninstrument",
    "flush",
    "stats",
    "task",
    "last_trace_id",
    "CTClient",
    "KaizenError",
    "AuthenticationError",
    "NotFoundError",
    "InvalidRequestError",
    "ServerError",
]
