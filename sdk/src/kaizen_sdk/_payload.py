"""Payload hygiene: what a trace looks like before it leaves the process.

Three steps, run on the exporter's background thread so the caller never pays for them:

1. Base64 media (data URLs, OpenAI `input_audio` parts, Anthropic-style `source` blocks) is
   replaced by a reference `{"type", "media_type", "bytes", "sha256"}`: `image_ref` for
   images, `media_ref` for audio and files. A screenshot in a prompt would otherwise make a
   trace megabytes long, and the hash still lets two traces be matched on the same image.
   In the same pass
   every string longer than `max_field_chars` is cut to that length, marker included, and
   the marker records the original length.
2. The user's `redact` callable, if any, gets a copy of the result and may rewrite it or
   return None to drop the trace. It never has to wade through base64.
3. What `redact` returned is capped again, so a string it adds obeys the cap too.

The input is never modified. The pass copies a dict or list only when something inside it
changes, because a typical trace has nothing to replace and copying every container would
double the exporter's cost per trace.
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
    media_type = media_type or "application/octet-stream"
    return {
        "type": "image_ref" if media_type.startswith("image/") else "media_ref",
        "media_type": media_type,
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


# Leaves that never need cleaning.
_SCALARS = frozenset({int, float, bool, type(None)})


def clean(value: Any, max_chars: int) -> Any:
    """Return `value` with base64 media replaced and long strings cut; unchanged parts are shared, not copied."""
    kind = type(value)
    if kind is str:
        # Strings below MIN_MEDIA_CHARS are neither media nor (as max_chars >= 256) too long.
        if len(value) < MIN_MEDIA_CHARS:
            return value
        if value.startswith("data:"):
            reference = _data_url_reference(value)
            if reference is not None:
                return reference
        return truncate(value, max_chars)

    if kind is dict:
        if "type" in value or "source" in value:
            reference = _part_reference(value)
            if reference is not None:
                return reference
        changed: dict | None = None
        for key, item in value.items():
            # Inline test of the common leaves: a call per leaf would cost more than the check.
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is str and len(item) < MIN_MEDIA_CHARS):
                continue
            cleaned = clean(item, max_chars)
            if cleaned is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = cleaned
        return value if changed is None else changed

    if kind is list or kind is tuple:
        items: list | None = None
        for index, item in enumerate(value):
            # Inline test of the common leaves: a call per leaf would cost more than the check.
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is str and len(item) < MIN_MEDIA_CHARS):
                continue
            cleaned = clean(item, max_chars)
            if cleaned is not item:
                if items is None:
                    items = list(value)
                items[index] = cleaned
        return value if items is None else items

    # Subclasses (a str enum, an OrderedDict, a pydantic-free custom list) take the slow path.
    if isinstance(value, str):
        return clean(str(value), max_chars)
    if isinstance(value, dict):
        return clean(dict(value), max_chars)
    if isinstance(value, (list, tuple)):
        return clean(list(value), max_chars)

    return value


def may_need_cleaning(encoded: bytes, max_chars: int) -> bool:
    """Tell from an item's JSON whether `clean` might change the item; False means it would not.

    `clean` only changes base64 media and strings longer than `max_chars`. Each kind of
    media it replaces shows in the JSON as a string that starts with `data:`, an
    `input_audio` part or a `base64` source. A JSON string is at least as long as the text
    it encodes, so no string can need cutting in JSON shorter than `max_chars`. Other text
    that merely contains these marks only costs a needless cleaning.
    """
    if len(encoded) > max_chars:
        return True

    return b'"data:' in encoded or b'"input_audio"' in encoded or b'"base64"' in encoded


def copy_containers(value: Any) -> Any:
    """Copy every dict and list in `value` (leaves are shared), so `redact` may mutate freely."""
    if isinstance(value, dict):
        return {key: copy_containers(item) for key, item in value.items()}

    if isinstance(value, (list, tuple)):
        return [copy_containers(item) for item in value]

    return value


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to at most `max_chars` characters, ending in a marker with the original length."""
    if len(text) <= max_chars:
        return text

    marker = TRUNCATION_MARKER.format(length=len(text))
    return text[: max(0, max_chars - len(marker))] + marker


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
    """Apply media references, the field size cap and `redact`; None means `redact` dropped it.

    Raises `RedactError` when `redact` fails; the exporter then drops the trace rather than
    send it unredacted.
    """
    cleaned = clean(trace, max_field_chars)
    if redact is None:
        return cleaned

    redacted = apply_redact(copy_containers(cleaned), redact)
    if redacted is None:
        return None

    return clean(redacted, max_field_chars)


def prepare_score(score: dict, *, max_field_chars: int) -> dict:
    """Cap the free-text fields of a score (its comment may be long)."""
    return clean(score, max_field_chars)
