"""Template objects: the template text inside ``string.Template``, Jinja and LangChain objects.

LangChain is recognized by duck typing on the class's declared fields, never by importing it,
so the SDK imports and runs without LangChain installed. A class is classified once and the
verdict cached, so an ordinary object costs one dictionary lookup per detection.

Each template object yields its parts: the text of one message template, its syntax (None for
fixed text such as a chat template's system message without placeholders) and the chat role
it renders to. A chat template yields one part per message.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from typing import Any

from kaizen_sdk._detection._matchers import SYNTAX_DOLLAR, SYNTAX_FORMAT, SYNTAX_JINJA

logger = logging.getLogger("kaizen_sdk.detection")

KIND_STRING_TEMPLATE = "string.Template"
KIND_JINJA = "jinja2.Template"
KIND_PROMPT = "prompt template"
KIND_CHAT = "chat prompt template"
KIND_CHAIN = "chain"

# LangChain's `template_format` values and the matcher syntax for each.
_LANGCHAIN_FORMATS = {"f-string": SYNTAX_FORMAT, "jinja2": SYNTAX_JINJA, "mustache": SYNTAX_JINJA}
_LANGCHAIN_ROLES = {"human": "user", "user": "user", "system": "system", "ai": "assistant", "assistant": "assistant"}
_MAX_CHAT_MESSAGES = 64
_MAX_CACHED = 2048


@dataclass(frozen=True, slots=True)
class TemplatePart:
    """One message template of a template object."""

    text: str
    syntax: str | None  # None: fixed text without placeholders
    role: str | None  # "user", "system", "assistant" or None when unknown
    dollar_pattern: Any = None  # the placeholder pattern of a string.Template subclass


@dataclass(frozen=True, slots=True)
class TemplateObject:
    """The parts of a template object and the text that identifies its version."""

    parts: tuple[TemplatePart, ...]
    text: str
    via_chain: bool  # found as the first step of a chain (`prompt | llm`), not directly


_kind_by_type: dict[type, str | None] = {}
_parts_by_id: dict[int, tuple[Any, TemplateObject | None]] = {}


def template_kind(value: Any) -> str | None:
    """Return the template-object kind of ``value``'s class, or None for any other object."""
    cls = type(value)
    try:
        return _kind_by_type[cls]
    except KeyError:
        pass

    kind = _classify(cls)
    if len(_kind_by_type) >= _MAX_CACHED:
        _kind_by_type.clear()
    _kind_by_type[cls] = kind
    return kind


def _classify(cls: type) -> str | None:
    if issubclass(cls, string.Template):
        return KIND_STRING_TEMPLATE
    if cls.__module__.startswith("jinja2") and hasattr(cls, "render") and hasattr(cls, "environment_class"):
        return KIND_JINJA

    fields = _declared_fields(cls)
    if "template" in fields and "template_format" in fields:
        return KIND_PROMPT
    if "messages" in fields and "input_variables" in fields:
        return KIND_CHAT
    if "first" in fields and "last" in fields:
        return KIND_CHAIN
    return None


def _declared_fields(cls: type) -> set[str]:
    # Pydantic models (LangChain's prompt classes) list their fields in `model_fields`;
    # dataclasses and annotated classes in `__annotations__` along the MRO.
    fields: set[str] = set()
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict):
        fields.update(model_fields)
    for klass in cls.__mro__:
        annotations = klass.__dict__.get("__annotations__")
        if isinstance(annotations, dict):
            fields.update(annotations)
    return fields


def template_object(value: Any, kind: str) -> TemplateObject | None:
    """Return the parts of a template object, cached per object; None when it has no usable text."""
    if kind == KIND_CHAIN:
        # Chains are often built per call (`chain = PROMPT | llm`) and hold the model client,
        # so they are not cached; their prompt is.
        try:
            return _extract(value, kind)
        except Exception as exc:  # a foreign object may fail in any way; detection must not
            logger.debug("could not read the prompt of a %s chain: %r", type(value).__name__, exc)
            return None

    cached = _parts_by_id.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]

    try:
        result = _extract(value, kind)
    except Exception as exc:  # a foreign object may fail in any way; detection must not
        logger.debug("could not read the template text of a %s object: %r", type(value).__name__, exc)
        result = None
    if len(_parts_by_id) >= _MAX_CACHED:
        _parts_by_id.clear()
    _parts_by_id[id(value)] = (value, result)
    return result


def _extract(value: Any, kind: str) -> TemplateObject | None:
    if kind == KIND_STRING_TEMPLATE:
        text = value.template
        if not isinstance(text, str):
            return None
        part = TemplatePart(text, SYNTAX_DOLLAR, None, type(value).pattern)
        return TemplateObject((part,), text, False)

    if kind == KIND_JINJA:
        text = _jinja_source(value)
        if text is None:
            return None
        return TemplateObject((TemplatePart(text, SYNTAX_JINJA, None),), text, False)

    if kind == KIND_PROMPT:
        part = _prompt_part(value, None)
        if part is None:
            return None
        return TemplateObject((part,), part.text, False)

    if kind == KIND_CHAT:
        return _chat_template(value)

    if kind == KIND_CHAIN:
        first = getattr(value, "first", None)
        first_kind = template_kind(first)
        if first_kind not in (KIND_PROMPT, KIND_CHAT, KIND_STRING_TEMPLATE, KIND_JINJA):
            return None
        inner = template_object(first, first_kind)
        if inner is None:
            return None
        return TemplateObject(inner.parts, inner.text, True)

    return None


def _jinja_source(template: Any) -> str | None:
    # A compiled jinja2.Template keeps no source text. One loaded through an Environment's
    # loader can be read back from that loader.
    # NOTE: a template built with jinja2.Template("...") or Environment.from_string() has no
    # recoverable text, so only the string constant it was built from can name the task.
    name = getattr(template, "name", None)
    environment = getattr(template, "environment", None)
    loader = getattr(environment, "loader", None)
    if not name or loader is None:
        return None

    source = loader.get_source(environment, name)
    return source[0] if isinstance(source, tuple) and isinstance(source[0], str) else None


def _prompt_part(prompt: Any, role: str | None) -> TemplatePart | None:
    text = getattr(prompt, "template", None)
    if not isinstance(text, str):
        return None

    syntax = _LANGCHAIN_FORMATS.get(getattr(prompt, "template_format", "f-string"), SYNTAX_FORMAT)
    return TemplatePart(text, syntax, role)


def _chat_template(chat: Any) -> TemplateObject | None:
    messages = getattr(chat, "messages", None)
    if not isinstance(messages, (list, tuple)):
        return None

    parts: list[TemplatePart] = []
    lines: list[str] = []
    for message in messages[:_MAX_CHAT_MESSAGES]:
        placeholder = getattr(message, "variable_name", None)
        if isinstance(placeholder, str):
            lines.append(f"placeholder: {{{placeholder}}}")
            continue

        prompt = getattr(message, "prompt", None)
        if prompt is not None:
            role = _message_template_role(message)
            prompts = prompt if isinstance(prompt, (list, tuple)) else [prompt]
            for item in prompts:
                part = _prompt_part(item, role)
                if part is not None:
                    parts.append(part)
                    lines.append(f"{role or 'message'}: {part.text}")
            continue

        content = getattr(message, "content", None)
        if isinstance(content, str):
            role = _LANGCHAIN_ROLES.get(getattr(message, "type", None), None)
            parts.append(TemplatePart(content, None, role))
            lines.append(f"{role or 'message'}: {content}")

    if not parts:
        return None
    return TemplateObject(tuple(parts), "\n\n".join(lines), False)


def _message_template_role(message: Any) -> str | None:
    role = getattr(message, "role", None)
    if isinstance(role, str):
        return _LANGCHAIN_ROLES.get(role, role)

    class_name = type(message).__name__
    for prefix, mapped in (("Human", "user"), ("System", "system"), ("AI", "assistant")):
        if class_name.startswith(prefix):
            return mapped
    return None
