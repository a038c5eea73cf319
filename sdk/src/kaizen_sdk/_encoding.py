"""Encoding one trace or score as the JSON bytes of a batch item.

Encoding runs on the exporter's thread, but that thread shares the interpreter with the
application, so the application waits for every microsecond it takes. The standard
library's encoder took about half of the exporter's time per trace. orjson writes the same
JSON 6 to 13 times faster (a 1.4 KB trace, measured on the benchmark machine of
docs/benchmarks.md), so it is used when it is importable. It is not a dependency of
kaizen-sdk. langsmith 0.15 requires it, and langchain-core 1.x requires langsmith, so every
LangChain install has it. Without it, the standard encoder does the whole job.

Both paths send the same values:

- NaN and infinite floats become null, because the server rejects a request that contains
  them. orjson writes null by itself. The standard encoder raises, and the item is encoded
  again from a copy with those floats replaced.
- Objects that JSON cannot represent are sent as their ``str()``. The orjson options pass
  datetimes and dataclasses to that same fallback instead of converting them.
- What orjson rejects (a lone surrogate, a dict key that is not a string, an integer beyond
  64 bits, nesting deeper than 254 levels) is encoded by the standard encoder, which handles
  each case.

The standard encoder writes ASCII with \\u escapes. For mostly English text that is about
40 % faster than writing UTF-8, and it stays valid for lone surrogates. orjson writes UTF-8.
The server reads both.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kaizen_sdk import _tracer

try:
    import orjson
except ImportError:  # optional: the standard encoder does the same job, slower
    orjson = None  # type: ignore[assignment]

# check_circular is off because it costs about a tenth of the encoding time. A circular
# reference then raises RecursionError, and the exporter drops the item like any other that
# cannot be encoded.
_STANDARD = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str, allow_nan=False, check_circular=False)
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS if orjson is not None else 0


def encode(payload: dict) -> bytes:
    """Return ``payload`` as compact JSON bytes. Raises RecursionError for a circular reference."""
    if orjson is not None:
        try:
            return orjson.dumps(payload, default=str, option=_ORJSON_OPTIONS)
        except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
            pass

    return encode_standard(payload)


def encode_standard(payload: dict) -> bytes:
    """Encode with the standard library alone, as ``encode`` does when orjson is missing."""
    try:
        return _STANDARD.encode(payload).encode("ascii")
    except (ValueError, TypeError):
        # NaN or infinity (ValueError), or a dict key JSON cannot carry, such as a tuple
        # (TypeError): the tracer does not copy messages into JSON-safe form for the exporter.
        return _STANDARD.encode(_finite(_tracer._json_safe(payload))).encode("ascii")


def _finite(value: Any) -> Any:
    """Return a copy of ``value`` with NaN and infinite floats replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]

    return value
