"""Payload hygiene: what a trace looks like before it leaves the process.

Three steps, run on the exporter's background thread so the caller never pays for them:

1. Base64 media (data URLs, OpenAI `input_audio` parts, Anthropic-style `source` blocks) is
   replaced by a reference `{"type": "image_ref", "media_type", "bytes", "sha256"}`. A
   screenshot in a prompt would otherwise make a trace megabytes long, and the hash still
   lets two traces be matched on the same image. The reference keeps the type name
   `image_ref` for every media type; `media_type` says what it really was.
2. The user's `redact` callable, if any, may rewrite the trace or return None to drop it.
   It runs after step 1 so it never has to wade through base64, and before step 3 so what it
   adds is capped too.
3. Every string longer than `max_field_chars` is cut to that length, marker included; the
   marker records the original length.

The input is never modified: each step builds new containers, because the caller's trace
dict may still be referenced by the result object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any, Callable

# data:[<media type>][;param=value]*;base64,<data>
_DATA_URL = re.compile(r"^data:(?P<media_type>[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)

# Short data URLs are left alone: a reference would not be smaller.
MIN_MEDIA_CHARS = 256

TRUNCATION_MARKER = "…[truncated by kaizen-sdk, original length {length} characters]"


class RedactError(Exception):
    """The user's redact callable raised or returned something other than a dict or None."""


def _decoded_digest(data: str) -> tuple[int, str]:
    """Return the decoded size in bytes and the SHA-256 of base64 `data`.

    Undecodable data is hashed as text, so the reference still identifies it.
    """
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raw = data.encode("utf-8", "surrogatepass")

    return len(raw), hashlib.sha256(raw).hexdigest()


def media_reference(media_type: str | None, data: str) -> dict:
    """Build the reference that replaces base64 `data` of `media_type`."""
    size, digest = _decoded_digest(data)
    return {
        "type": "image_ref",
        "media_type": media_type or "application/octet-stream",
        "bytes": size,
        "sha256": digest,
    }


def _data_url_reference(text: str) -> dict | None:
    if len(text) < MIN_MEDIA_CHARS or not text.startswith("data:"):
        return None

    match = _DATA_URL.match(text)
    if match is None:
        return None

    return media_reference(match.group("media_type"), text[match.end():])


def _part_reference(part: dict) -> dict | None:
    """Return the reference for a content part that carries base64 media, else None."""
    part_type = part.get("type")

    # OpenAI: {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}
    if part_type == "image_url":
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        if isinstance(url, str):
            return _data_url_reference(url)

    # OpenAI: {"type": "input_audio", "input_audio": {"data": "<base64>", "format": "wav"}}
    if part_type == "input_audio":
        audio = part.get("input_audio")
        if isinstance(audio, dict) and isinstance(audio.get("data"), str) and len(audio["data"]) >= MIN_MEDIA_CHARS:
            return media_reference(f"audio/{audio.get('format') or 'unknown'}", audio["data"])

    # OpenAI: {"type": "file", "file": {"file_data": "data:application/pdf;base64,..."}}
    if part_type == "file":
        file = part.get("file")
        if isinstance(file, dict) and isinstance(file.get("file_data"), str):
            return _data_url_reference(file["file_data"])

    # Anthropic style, as litellm and langchain pass it through:
    # {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "..."}}
    source = part.get("source")
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        if len(source["data"]) >= MIN_MEDIA_CHARS:
            return media_reference(source.get("media_type"), source["data"])

    return None


def replace_media(value: Any) -> Any:
    """Return a copy of `value` with base64 media replaced by references."""
    if isinstance(value, str):
        reference = _data_url_reference(value)
        return value if reference is None else reference

    if isinstance(value, dict):
        reference = _part_reference(value)
        if reference is not None:
            return reference

        return {key: replace_media(item) for key, item in value.items()}

    if isinstance(value, (list, tuple)):
        return [replace_media(item) for item in value]

    return value


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to at most `max_chars` characters, ending in a marker with the original length."""
    if len(text) <= max_chars:
        return text

    marker = TRUNCATION_MARKER.format(length=len(text))
    return text[: max(0, max_chars - len(marker))] + marker


def cap_fields(value: Any, max_chars: int) -> Any:
    """Return a copy of `value` in which every string, at any depth, is at most `max_chars` long."""
    if isinstance(value, str):
        return truncate(value, max_chars)

    if isinstance(value, dict):
        return {key: cap_fields(item, max_chars) for key, item in value.items()}

    if isinstance(value, (list, tuple)):
        return [cap_fields(item, max_chars) for item in value]

    return value


def apply_redact(trace: dict, redact: Callable[[dict], dict | None] | None) -> dict | None:
    """Run the user's `redact` on `trace`; raise `RedactError` if it fails or returns a non-dict."""
    if redact is None:
        return trace

    try:
        result = redact(trace)
    except Exception as exc:
        raise RedactError(f"redact raised {type(exc).__name__}: {exc}") from exc

    if result is not None and not isinstance(result, dict):
        raise RedactError(f"redact returned {type(result).__name__}; expected a dict or None")

    return result


def prepare_trace(
    trace: dict,
    *,
    max_field_chars: int,
    redact: Callable[[dict], dict | None] | None = None,
) -> dict | None:
    """Apply media references, `redact` and the field size cap; None means `redact` dropped it.

    Raises `RedactError` when `redact` fails; the exporter then drops the trace rather than
    send it unredacted.
    """
    cleaned = replace_media(trace)
    redacted = apply_redact(cleaned, redact)
    if redacted is None:
        return None

    return cap_fields(redacted, max_field_chars)


def prepare_score(score: dict, *, max_field_chars: int) -> dict:
    """Cap the free-text fields of a score (its comment may be long)."""
    return cap_fields(score, max_field_chars)
