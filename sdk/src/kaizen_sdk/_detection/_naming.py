"""Naming: which message names the task, which candidate wins it, and the fallback names.

The message: the last user message whose text comes from a candidate; else the first system
or developer message that does; else any other message, newest first. The winner for that
message is the candidate with the smallest rank key:

    (template before fixed prompt,
     attribute / global before local before parameter,
     inner frame before outer frame,
     longer literal text before shorter (templates),
     plain name before attribute or dict value before a chain's prompt,
     first seen)

A fixed prompt is a string equal to the message text, ignoring differences in whitespace, and
only counts when bound to a global or an attribute: a local that equals the text is usually
the text itself. When no message has a candidate, the innermost named user function names the
task, or at module level the module.
"""

from __future__ import annotations

import os
import re
from types import FrameType
from typing import Any

from kaizen_sdk._detection._candidates import SCOPE_ATTRIBUTE, Candidate, Candidates, CodeInfo
from kaizen_sdk._detection._index import KIND_FIXED, KIND_TEMPLATE, part_matchers
from kaizen_sdk._detection._matchers import MIN_LITERAL_CHARS, matchers_for, normalize_whitespace
from kaizen_sdk._detection._template_objects import TemplatePart

MAX_USER_MESSAGES = 16
MAX_SYSTEM_MESSAGES = 8
MAX_OTHER_MESSAGES = 8

_TEXT_PART_TYPES = ("text", "input_text")
_SYSTEM_ROLES = ("system", "developer")


class Choice:
    """The winning candidate, the message it matched and the placeholder values."""

    __slots__ = ("candidate", "kind", "message_index", "inputs", "part")

    def __init__(
        self, candidate: Candidate, kind: int, message_index: int, inputs: dict | None, part: TemplatePart | None
    ) -> None:
        self.candidate = candidate
        self.kind = kind
        self.message_index = message_index
        self.inputs = inputs
        self.part = part


def message_texts(message: Any) -> list[str]:
    """Return the text parts of one normalized chat message."""
    if not isinstance(message, dict):
        return []

    content = message.get("content")
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        return []

    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in _TEXT_PART_TYPES:
            text = part.get("text")
            if isinstance(text, str) and text:
                texts.append(text)
    return texts


def message_order(messages: list[Any]) -> list[int]:
    """Return message indexes in the order rule 3 examines them, bounded per role."""
    users: list[int] = []
    systems: list[int] = []
    others: list[int] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            users.append(index)
        elif role in _SYSTEM_ROLES:
            systems.append(index)
        else:
            others.append(index)

    return users[::-1][:MAX_USER_MESSAGES] + systems[:MAX_SYSTEM_MESSAGES] + others[::-1][:MAX_OTHER_MESSAGES]


_MAX_CACHED_FORMS = 4096
# Candidate text -> (first word, last word, whitespace-normalized text).
_candidate_forms: dict[str, tuple[str, str, str]] = {}


def _candidate_form(text: str) -> tuple[str, str, str]:
    form = _candidate_forms.get(text)
    if form is None:
        words = text.split()
        form = (words[0], words[-1], " ".join(words)) if words else ("", "", "")
        if len(_candidate_forms) >= _MAX_CACHED_FORMS:
            _candidate_forms.clear()
        _candidate_forms[text] = form
    return form


def _similar_lengths(candidate_text: str, text: str) -> bool:
    return len(text) <= len(candidate_text) + 64 and 4 * len(text) >= len(candidate_text)


class _TextEquality:
    """Whitespace-insensitive equality; each message text is normalized at most once per call."""

    def __init__(self) -> None:
        self._normalized: dict[int, str] = {}

    def same(self, candidate_text: str, text: str) -> bool:
        if candidate_text == text:
            return True
        # Stripping and dedenting remove whitespace only: a text much longer or much shorter
        # than the candidate, or with other first and last words, cannot be it. These checks
        # spare normalizing the message text on nearly every call.
        if not _similar_lengths(candidate_text, text):
            return False
        first, last, normalized = _candidate_form(candidate_text)
        if not text.lstrip().startswith(first) or not text.rstrip().endswith(last):
            return False

        return normalized == self.normalized(text)

    def normalized(self, text: str) -> str:
        key = id(text)
        value = self._normalized.get(key)
        if value is None:
            value = normalize_whitespace(text)
            self._normalized[key] = value
        return value


def _best_for_texts(candidates: list[Candidate], texts: list[str], equality: _TextEquality) -> tuple | None:
    best: tuple | None = None
    for candidate in candidates:
        for key, inputs, part in _candidate_matches(candidate, texts, equality):
            if best is None or key < best[0]:
                best = (key, candidate, inputs, part)
    return best


def _best_in_groups(found: Candidates, texts: list[str], equality: _TextEquality, best: tuple | None) -> tuple | None:
    if not found.groups:
        return best

    first_words = [_first_word(text) for text in texts]
    for group in found.groups:
        for text, first_word in zip(texts, first_words):
            matches = group.index.matches(text, first_word, equality.normalized)
            if matches is None:
                continue
            for kind, literal, entry, part, inputs in matches:
                indirection = max(entry.indirection, group.indirection)
                key = (kind, SCOPE_ATTRIBUTE, group.frame_index, -literal, indirection, group.order + entry.order)
                if best is None or key < best[0]:
                    best = (key, (group, entry), inputs, part)
    return best


_FIRST_WORD = re.compile(r"\s*(\S+)")


def _first_word(text: str) -> str:
    found = _FIRST_WORD.match(text)
    return found.group(1) if found else ""


def _candidate_matches(candidate: Candidate, texts: list[str], equality: _TextEquality):
    scope = candidate.scope
    frame_index = candidate.frame_index
    indirection = candidate.indirection
    order = candidate.order

    text_value = candidate.text
    if text_value is not None:
        if any(equality.same(text_value, text) for text in texts):
            if scope == SCOPE_ATTRIBUTE:
                yield (KIND_FIXED, scope, frame_index, 0, indirection, order), None, None
            # A local or parameter that is the message text itself (raw input, a rendered
            # prompt passed down) is not where the prompt came from.
            return
        for matcher in matchers_for(text_value, volatile=scope != SCOPE_ATTRIBUTE):
            if matcher.literal_chars < MIN_LITERAL_CHARS:
                continue
            for text in texts:
                inputs = matcher.match(text)
                if inputs is not None:
                    yield (KIND_TEMPLATE, scope, frame_index, -matcher.literal_chars, indirection, order), inputs, None
                    return
        return

    template = candidate.template
    if template is None:
        return
    for part in template.parts:
        if any(equality.same(part.text, text) for text in texts):
            literal = len(normalize_whitespace(part.text)) if part.syntax is None else 0
            yield (KIND_TEMPLATE, scope, frame_index, -literal, indirection, order), None, part
            continue
        for matcher in part_matchers(part):
            if matcher.literal_chars < MIN_LITERAL_CHARS:
                continue
            for text in texts:
                inputs = matcher.match(text)
                if inputs is not None:
                    yield (KIND_TEMPLATE, scope, frame_index, -matcher.literal_chars, indirection, order), inputs, part
                    break


def choose(found: Candidates, messages: list[Any]) -> Choice | None:
    """Return the candidate that names the task, or None when no message has one."""
    if not found.volatile and not found.groups:
        return None

    equality = _TextEquality()
    for message_index in message_order(messages):
        texts = message_texts(messages[message_index])
        if not texts:
            continue
        best = _best_for_texts(found.volatile, texts, equality)
        best = _best_in_groups(found, texts, equality, best)
        if best is None:
            continue

        key, candidate, inputs, part = best
        if isinstance(candidate, tuple):
            candidate = found.materialize(*candidate)
        if candidate.template is not None:
            inputs = _chat_inputs(candidate, part, inputs, messages)
        return Choice(candidate, key[0], message_index, inputs, part)

    return None


def last_user_index(messages: list[Any]) -> int | None:
    """Return the index of the last user message, or None when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            return index
    return None


def rematch(candidate: Candidate, messages: list[Any]) -> Choice | None:
    """Return the choice ``candidate`` makes when it matches the last user message, else None.

    The last user message is the first one rule 3 examines, so a candidate that matches it
    names the task whatever the other messages hold.
    """
    index = last_user_index(messages)
    if index is None:
        return None
    texts = message_texts(messages[index])
    if not texts:
        return None

    best = _best_for_texts([candidate], texts, _TextEquality())
    if best is None:
        return None
    key, _candidate, inputs, part = best
    if candidate.template is not None:
        inputs = _chat_inputs(candidate, part, inputs, messages)
    return Choice(candidate, key[0], index, inputs, part)


def sole_matcher(candidate: Candidate) -> Any:
    """Return the one usable matcher of a string template candidate, else None.

    ``rematch_inputs`` can then check a cached winner with that matcher alone. A candidate
    with several usable matchers (text that is a template in two syntaxes) or a template
    object keeps the general path, which picks among them.
    """
    if candidate.text is None or candidate.template is not None:
        return None

    usable = [
        matcher
        for matcher in matchers_for(candidate.text, volatile=candidate.scope != SCOPE_ATTRIBUTE)
        if matcher.literal_chars >= MIN_LITERAL_CHARS
    ]
    return usable[0] if len(usable) == 1 else None


# Sentinel result of ``rematch_inputs``: only the general ``rematch`` can decide.
UNDECIDED = object()


def rematch_inputs(candidate: Candidate, matcher: Any, messages: list[Any]) -> Any:
    """Return what ``rematch`` would, for a string template with its ``sole_matcher``, cheaper.

    Returns the placeholder values when the candidate matches the last user message, and
    None when it does not. Returns ``UNDECIDED`` for the cases only ``rematch`` handles: a
    message with content parts, or text equal to the template itself (a fixed prompt).
    """
    index = last_user_index(messages)
    if index is None:
        return None
    content = messages[index].get("content")
    if type(content) is not str or not content:
        return UNDECIDED
    text = candidate.text
    # The length test first spares creating a _TextEquality for nearly every message.
    if text == content or (_similar_lengths(text, content) and _TextEquality().same(text, content)):
        return UNDECIDED

    return matcher.match(content)


def _chat_inputs(candidate: Candidate, matched: TemplatePart | None, inputs: dict | None, messages: list[Any]) -> dict | None:
    # A chat template renders several messages. Once it has won, each of its other message
    # templates is matched against the newest message of its role to collect the rest of the
    # inputs; short templates such as "{question}" are fine here because the winner is known.
    template = candidate.template
    if template is None or len(template.parts) < 2:
        return inputs

    collected = dict(inputs or {})
    for part in template.parts:
        if part is matched or part.syntax is None:
            continue
        matchers = part_matchers(part)
        if not matchers:
            continue
        for message in reversed(messages):
            if part.role is not None and isinstance(message, dict) and _role_of(message) != part.role:
                continue
            values = next(
                (found for matcher in matchers for text in message_texts(message) if (found := matcher.match(text)) is not None),
                None,
            )
            if values is not None:
                for key, value in values.items():
                    collected.setdefault(key, value)
                break

    return collected or None


def _role_of(message: dict) -> str | None:
    role = message.get("role")
    return "system" if role == "developer" else role


def fallback_frame(frames: list[FrameType], infos: list[CodeInfo]) -> tuple[str, str, FrameType] | None:
    """Return (task, rule, frame) from the innermost named function, else the module."""
    for frame, info in zip(frames, infos):
        if info.named:
            return info.name, "function", frame
        if info.module_level:
            return module_name(frame), "module", frame

    if frames:
        return module_name(frames[-1]), "module", frames[-1]
    return None


def module_name(frame: FrameType) -> str:
    """Return the frame's module name; for a script run as ``__main__``, its file name without ``.py``."""
    module_globals = frame.f_globals
    name = module_globals.get("__name__")
    if isinstance(name, str) and name != "__main__":
        return name

    spec = module_globals.get("__spec__")
    spec_name = getattr(spec, "name", None)
    if isinstance(spec_name, str) and spec_name and spec_name != "__main__":
        return spec_name  # run with `python -m package.module`

    filename = module_globals.get("__file__") or frame.f_code.co_filename
    stem, _extension = os.path.splitext(os.path.basename(str(filename)))
    return stem or "__main__"
