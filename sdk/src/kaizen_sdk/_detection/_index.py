"""Namespace indexes: the candidates of a module, class or imported module, ready to query.

Module globals and class attributes rarely change, while an application may keep dozens of
prompt constants in one module. Building a candidate for each of them on every call would
cost microseconds per name, so each such namespace gets an index, built once and reused
while the namespace keeps its size and every indexed value is still bound where it was.

A query takes the text of one message and returns the index's best match:
- fixed texts through a dict keyed by the exact text, then by its whitespace-normalized form;
- templates through a dict keyed by their first literal word, so only the templates that
  can start the text are tried, plus the few templates that start with a placeholder.
"""

from __future__ import annotations

import enum
from itertools import islice
from types import ModuleType
from typing import Any, Callable

from kaizen_sdk._detection._frames import is_user_class, is_user_module
from kaizen_sdk._detection._matchers import MIN_LITERAL_CHARS, Matcher, build_matcher, matchers_for, normalize_whitespace
from kaizen_sdk._detection._template_objects import TemplateObject, TemplatePart, template_kind, template_object

MAX_NAMES_PER_NAMESPACE = 512
MAX_DICT_ITEMS = 64
MAX_DICT_DEPTH = 2
MAX_CLASSES_PER_MRO = 8

KIND_TEMPLATE = 0
KIND_FIXED = 1

_MISSING = object()
_MAX_CACHED = 2048

Steps = tuple[tuple[str, Any], ...]


class Entry:
    """One named string or template object in a namespace, possibly inside a dict."""

    __slots__ = ("name", "root", "path", "steps", "value", "text", "template", "indirection", "order")

    def __init__(
        self,
        name: str,
        root: str,
        path: str,
        steps: Steps,
        value: Any,
        template: TemplateObject | None,
        indirection: int,
        order: int,
    ) -> None:
        self.name = name  # the task name: variable, dict key or attribute
        self.root = root  # the name bound in the namespace
        self.path = path  # as written inside the namespace: PROMPTS["summary"]
        self.steps = steps  # dict keys from the root to the value
        self.value = value
        self.text = value if template is None else None
        self.template = template
        self.indirection = indirection
        self.order = order


def part_matchers(part: TemplatePart) -> tuple[Matcher, ...]:
    """Return the matchers of one template-object part (none for fixed text)."""
    if part.syntax is None:
        return ()
    if part.dollar_pattern is not None:
        matcher = build_matcher(part.text, part.syntax, part.dollar_pattern)
        return (matcher,) if matcher is not None else ()
    return matchers_for(part.text, (part.syntax,))


def entries_for_value(
    name: str, path: str, steps: Steps, value: Any, indirection: int, order: int, root: str
) -> list[Entry]:
    """Return the entries a value bound to ``name`` contributes: a string, a template object or a dict's values."""
    if isinstance(value, str):
        return [Entry(name, root, path, steps, value, None, indirection, order)] if value else []

    if type(value) is dict:
        return _dict_entries(name, path, steps, value, order, root, 1)

    kind = template_kind(value)
    if kind is None:
        return []
    template = template_object(value, kind)
    if template is None:
        return []
    return [Entry(name, root, path, steps, value, template, 2 if template.via_chain else indirection, order)]


def _dict_entries(name: str, path: str, steps: Steps, mapping: dict, order: int, root: str, depth: int) -> list[Entry]:
    content = mapping.get("content")
    if "role" in mapping and isinstance(content, str):
        # A chat message kept whole (`SYSTEM_MESSAGE = {"role": ..., "content": ...}`) is
        # named after the dict, not after its "content" key.
        return entries_for_value(name, f'{path}["content"]', steps + (("key", "content"),), content, 1, order, root)

    entries: list[Entry] = []
    for key, value in islice(mapping.items(), MAX_DICT_ITEMS):
        if isinstance(key, str):
            key_name = key
        elif isinstance(key, enum.Enum):
            key_name = key.name
        else:
            continue
        if not key_name:
            continue
        item_path = f'{path}["{key_name}"]' if isinstance(key, str) else f"{path}[{type(key).__name__}.{key_name}]"
        item_steps = steps + (("key", key),)
        if type(value) is dict:
            if depth < MAX_DICT_DEPTH:
                entries.extend(_dict_entries(key_name, item_path, item_steps, value, order, root, depth + 1))
            continue
        entries.extend(entries_for_value(key_name, item_path, item_steps, value, 1, order, root))
    return entries


def is_interesting(value: Any, with_containers: bool) -> bool:
    """Return True for values that can hold a prompt: strings, dicts, template objects, user modules and classes."""
    value_type = type(value)
    if value_type is str or value_type is dict or isinstance(value, str):
        return True
    if with_containers:
        if value_type is ModuleType:
            return is_user_module(value)
        if isinstance(value, type):
            return is_user_class(value)
    return template_kind(value) is not None


def follow(value: Any, steps: Steps) -> Any:
    """Apply dict-key and attribute steps to ``value``; a sentinel when one is missing."""
    for operation, key in steps:
        if value is _MISSING:
            return value
        if operation == "attr":
            value = getattr(value, key, _MISSING)
        else:
            value = value.get(key, _MISSING) if type(value) is dict else _MISSING
    return value


class NamespaceIndex:
    """The entries of one namespace with lookup structures for fixed texts and templates."""

    __slots__ = (
        "owner",
        "size",
        "entries",
        "modules",
        "classes",
        "_lookup",
        "_fixed_exact",
        "_fixed_normalized",
        "_fixed_min_length",
        "_fixed_max_length",
        "_templates_by_first_word",
        "_templates_other",
        "dicts",
        "_roots",
        "_root_values",
        "_nested",
    )

    def __init__(self, owner: Any, size: int, lookup: Callable[[str], Any]) -> None:
        self.owner = owner
        self.size = size
        self._lookup = lookup
        self.entries: list[Entry] = []
        self.modules: list[tuple[str, ModuleType]] = []  # user modules bound here, by name
        self.classes: list[tuple[str, type]] = []  # user classes bound here, by name
        self.dicts: list[tuple[dict, int]] = []  # indexed dicts and their sizes, to see keys added later
        self._roots: tuple[str, ...] = ()  # names bound in the namespace, and their values when indexed
        self._root_values: tuple[Any, ...] = ()
        self._nested: list[Entry] = []  # entries inside dicts, checked one by one
        # Fixed texts: text -> [(entry, part, literal chars)]
        self._fixed_exact: dict[str, list[tuple[Entry, TemplatePart | None, int]]] = {}
        self._fixed_normalized: dict[str, list[tuple[Entry, TemplatePart | None, int]]] = {}
        self._fixed_min_length = 1 << 62
        self._fixed_max_length = 0
        self._templates_by_first_word: dict[str, list[tuple[Matcher, Entry, TemplatePart | None]]] = {}
        self._templates_other: list[tuple[Matcher, Entry, TemplatePart | None]] = []

    def seal(self) -> None:
        """Record the bindings that ``still_valid`` compares; call once after the last entry."""
        roots: dict[str, Any] = {}
        for entry in self.entries:
            if entry.steps:
                self._nested.append(entry)
            else:
                roots[entry.root] = entry.value
        for name, value in self.modules + self.classes:
            roots[name] = value
        self._roots = tuple(roots)
        self._root_values = tuple(roots.values())

    def still_valid(self, size: int) -> bool:
        """Return True while the namespace has the same size and every indexed value is still bound.

        Runs on every call, so the top-level names are compared in one C-level pass. A
        rebound global (a test's monkeypatch, a reloaded prompt) makes it False, and the
        caller rebuilds the index.
        """
        if size != self.size:
            return False
        if tuple(map(self._lookup, self._roots)) != self._root_values:
            return False
        for mapping, mapping_size in self.dicts:
            if len(mapping) != mapping_size:
                return False
        lookup = self._lookup
        for entry in self._nested:
            if follow(lookup(entry.root), entry.steps) is not entry.value:
                return False
        return True

    def add_entry(self, entry: Entry) -> None:
        self.entries.append(entry)
        if entry.template is None:
            self._add_fixed(entry.text, entry, None)
            for matcher in matchers_for(entry.text):
                self._add_template(matcher, entry, None)
            return

        for part in entry.template.parts:
            # A part's text also counts when sent as is (a template sent unformatted).
            self._add_fixed(part.text, entry, part)
            for matcher in part_matchers(part):
                self._add_template(matcher, entry, part)

    def _add_fixed(self, text: str, entry: Entry, part: TemplatePart | None) -> None:
        normalized = normalize_whitespace(text)
        item = (entry, part, len(normalized) if part is not None and part.syntax is None else 0)
        self._fixed_exact.setdefault(text, []).append(item)
        if normalized:
            self._fixed_normalized.setdefault(normalized, []).append(item)
            self._fixed_min_length = min(self._fixed_min_length, len(normalized))
            self._fixed_max_length = max(self._fixed_max_length, len(text))

    def _add_template(self, matcher: Matcher, entry: Entry, part: TemplatePart | None) -> None:
        if matcher.literal_chars < MIN_LITERAL_CHARS:
            return
        item = (matcher, entry, part)
        first_word = matcher.complete_first_word
        if first_word:
            self._templates_by_first_word.setdefault(first_word, []).append(item)
        else:
            self._templates_other.append(item)

    def matches(self, text: str, first_word: str, normalized_text: Callable[[str], str]) -> list[tuple] | None:
        """Return (kind, literal chars, entry, part, inputs) for each entry that ``text`` comes from.

        ``first_word`` is the text's first whitespace-delimited word; None stands for no match.
        """
        result: list[tuple] | None = None
        found = self._fixed_exact.get(text)
        if found is None and self._fixed_min_length <= len(text) <= self._fixed_max_length + 64:
            found = self._fixed_normalized.get(normalized_text(text))
        equal_entries: list[Entry] = []
        if found:
            result = []
            for entry, part, literal in found:
                equal_entries.append(entry)
                if part is None:
                    result.append((KIND_FIXED, 0, entry, None, None))
                else:
                    result.append((KIND_TEMPLATE, literal, entry, part, None))

        by_first_word = self._templates_by_first_word.get(first_word) if first_word else None
        for group in (by_first_word, self._templates_other):
            if not group:
                continue
            for matcher, entry, part in group:
                if entry in equal_entries:
                    continue  # a template sent unformatted is its own text, not a rendering
                inputs = matcher.match(text)
                if inputs is not None:
                    if result is None:
                        result = []
                    result.append((KIND_TEMPLATE, matcher.literal_chars, entry, part, inputs))
        return result


_indexes: dict[int, NamespaceIndex] = {}


def module_index(namespace: dict) -> NamespaceIndex:
    """Return the index of a module's globals (with its user modules and classes as containers)."""
    size = len(namespace)
    index = _indexes.get(id(namespace))
    if index is not None and index.owner is namespace and index.still_valid(size):
        return index

    index = NamespaceIndex(namespace, size, namespace.get)
    order = 0
    for name, value in islice(namespace.items(), MAX_NAMES_PER_NAMESPACE):
        if not isinstance(name, str) or name.startswith("__") or not is_interesting(value, True):
            continue
        if type(value) is ModuleType:
            index.modules.append((name, value))
            continue
        if isinstance(value, type):
            index.classes.append((name, value))
            continue
        if type(value) is dict:
            index.dicts.append((value, len(value)))
        for entry in entries_for_value(name, name, (), value, 0, order, name):
            index.add_entry(entry)
        order += 1
    index.seal()
    _store(namespace, index)
    return index


def class_index(cls: type) -> NamespaceIndex:
    """Return the index of a user class's attributes along its MRO (subclass attributes shadow base ones)."""
    size = len(cls.__dict__)
    index = _indexes.get(id(cls))
    if index is not None and index.owner is cls and index.still_valid(size):
        return index

    index = NamespaceIndex(cls, size, lambda name: getattr(cls, name, _MISSING))
    shadowed: set[str] = set()
    order = 0
    user_classes = (klass for klass in cls.__mro__ if klass is not object and is_user_class(klass))
    for klass in islice(user_classes, MAX_CLASSES_PER_MRO):
        for name, value in islice(klass.__dict__.items(), MAX_NAMES_PER_NAMESPACE):
            if not isinstance(name, str) or name.startswith("__") or name in shadowed:
                continue
            shadowed.add(name)
            if not is_interesting(value, False):
                continue
            if type(value) is dict:
                index.dicts.append((value, len(value)))
            for entry in entries_for_value(name, name, (), value, 1, order, name):
                index.add_entry(entry)
            order += 1
    index.seal()
    _store(cls, index)
    return index


def _store(owner: Any, index: NamespaceIndex) -> None:
    if len(_indexes) >= _MAX_CACHED:
        _indexes.clear()
    _indexes[id(owner)] = index
