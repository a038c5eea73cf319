"""Candidates: the named values in the user's frames that a message could come from.

A candidate is a string or a template object bound to a name the user wrote: a local, a
parameter, a module global, an attribute of ``self`` / ``cls`` or their classes, an attribute
of an imported user module or class, or a value in a dict bound to any of those. Each
candidate records the name the task takes (the variable, the dict key or the attribute), the
expression as written (``PROMPTS["summary"]``, ``self.SYSTEM``), its scope and its frame.

Locals, parameters and instance attributes change from call to call, so they become
``Candidate`` objects on every call. Module globals, imported user modules and classes are
served by cached ``NamespaceIndex`` objects (see ``_index``); only the winner among them is
turned into a ``Candidate``. Everything is bounded: names per namespace, items per dict,
classes per MRO and containers per module.
"""

from __future__ import annotations

import inspect
from itertools import islice
from types import CodeType, FrameType, ModuleType
from typing import Any

from kaizen_sdk._detection._frames import is_user_class
from kaizen_sdk._detection._index import (
    MAX_NAMES_PER_NAMESPACE,
    Entry,
    NamespaceIndex,
    Steps,
    class_index,
    entries_for_value,
    follow,
    module_index,
)
from kaizen_sdk._detection._matchers import matchers_for
from kaizen_sdk._detection._template_objects import TemplateObject, template_kind

# Scopes, in the order they win (rule 4).
SCOPE_ATTRIBUTE = 0  # module global, class / instance / module attribute
SCOPE_LOCAL = 1
SCOPE_PARAMETER = 2

MAX_CONTAINERS_PER_MODULE = 64
MAX_VOLATILE_CANDIDATES = 1024

_ANONYMOUS_CODE_NAMES = frozenset({"<lambda>", "<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>"})
_MAX_CACHED = 4096

# How to read a candidate's value again from the frames: (source, frame index, name, steps)
# with source "global" or "local", and steps ("attr", name) / ("key", key) applied in order.
Locator = tuple[str, int, str, Steps]
_MISSING = object()


def resolve(locator: Locator, frames: list[FrameType]) -> Any:
    """Return the value ``locator`` points at in ``frames`` now, or a sentinel when it is gone."""
    source, index, base, steps = locator
    frame = frames[index]
    namespace = frame.f_globals if source == "global" else frame.f_locals
    return follow(namespace.get(base, _MISSING), steps)


class Candidate:
    """A named string or template object in a user frame."""

    __slots__ = (
        "name",
        "path",
        "scope",
        "frame_index",
        "report_index",
        "indirection",
        "text",
        "template",
        "order",
        "value",
        "locator",
    )

    def __init__(
        self,
        name: str,
        path: str,
        scope: int,
        frame_index: int,
        indirection: int,
        template: TemplateObject | None,
        order: int,
        value: Any,
        locator: Locator,
    ) -> None:
        self.name = name
        self.path = path
        self.scope = scope
        self.frame_index = frame_index  # the innermost frame whose namespaces contain the name: ranks candidates
        self.report_index = frame_index  # the frame whose code reads the name: reported as file and line
        self.indirection = indirection  # 0 a plain name, 1 an attribute or dict value, 2 a chain's prompt
        self.text = value if template is None else None
        self.template = template
        self.order = order
        self.value = value  # the object bound to the name, to check a cached winner by identity
        self.locator = locator


class IndexedGroup:
    """A cached namespace index as seen from one frame of this call."""

    # A plain slotted class: a frozen dataclass's __init__ costs a microsecond per call here.
    __slots__ = ("index", "source", "base", "prefix_path", "prefix_steps", "frame_index", "indirection", "order", "module_globals")

    def __init__(
        self,
        index: NamespaceIndex,
        source: str,
        base: str | None,
        prefix_path: str,
        prefix_steps: Steps,
        frame_index: int,
        indirection: int,
        order: int,
        module_globals: dict | None,
    ) -> None:
        self.index = index
        self.source = source  # "global" or "local": where the locator's base name lives
        self.base = base  # the name the namespace is reached through; None for the module's own globals
        self.prefix_path = prefix_path  # "prompts", "self", "Bot" or ""
        self.prefix_steps = prefix_steps
        self.frame_index = frame_index
        self.indirection = indirection  # the minimum indirection of its entries: 1 for attributes
        self.order = order
        self.module_globals = module_globals  # the globals whose functions may read the entry names


class CodeInfo:
    """Facts about one code object that detection reads on every call: parameters, names read, kind."""

    __slots__ = ("name", "params", "self_name", "referenced", "named", "module_level")

    def __init__(self, code: CodeType) -> None:
        flags = code.co_flags
        count = code.co_argcount + code.co_kwonlyargcount
        count += bool(flags & inspect.CO_VARARGS) + bool(flags & inspect.CO_VARKEYWORDS)
        self.name = code.co_name
        self.params = frozenset(code.co_varnames[:count])
        first = code.co_varnames[0] if code.co_argcount else None
        self.self_name = first if first in ("self", "cls") else None
        self.module_level = code.co_name == "<module>"
        self.named = not self.module_level and code.co_name not in _ANONYMOUS_CODE_NAMES
        self.referenced = _referenced_names(code)


def _referenced_names(code: CodeType) -> frozenset[str]:
    # Global and attribute names the code reads, including those read inside its lambdas and
    # comprehensions, which are separate code objects in Python 3.11.
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType) and const.co_name in _ANONYMOUS_CODE_NAMES:
            names.update(_referenced_names(const))
    return frozenset(names)


# Keyed by id(code), because hashing a code object hashes all its constants. The entry keeps
# the code object alive, so its id is not reused while the entry exists.
_code_infos: dict[int, tuple[CodeType, CodeInfo]] = {}


def code_info(code: CodeType) -> CodeInfo:
    """Return the cached ``CodeInfo`` of ``code``."""
    entry = _code_infos.get(id(code))
    if entry is not None:
        return entry[1]

    info = CodeInfo(code)
    if len(_code_infos) >= _MAX_CACHED:
        _code_infos.clear()
    _code_infos[id(code)] = (code, info)
    return info


class Candidates:
    """The candidates of one call: per-call ones and cached namespace indexes."""

    def __init__(self, frames: list[FrameType], infos: list[CodeInfo]) -> None:
        self.frames = frames
        self.infos = infos
        self.volatile: list[Candidate] = []
        self.groups: list[IndexedGroup] = []

    def materialize(self, group: IndexedGroup, entry: Entry) -> Candidate:
        """Turn a namespace entry that won into a ``Candidate`` with its locator and report frame."""
        if group.base is None:
            locator: Locator = (group.source, group.frame_index, entry.root, entry.steps)
        else:
            steps = group.prefix_steps + (("attr", entry.root),) + entry.steps
            locator = (group.source, group.frame_index, group.base, steps)
        path = f"{group.prefix_path}.{entry.path}" if group.prefix_path else entry.path
        candidate = Candidate(
            entry.name,
            path,
            SCOPE_ATTRIBUTE,
            group.frame_index,
            max(entry.indirection, group.indirection),
            entry.template,
            group.order + entry.order,
            entry.value,
            locator,
        )
        if group.module_globals is not None:
            candidate.report_index = self._reading_frame(group.module_globals, entry.root, group.frame_index)
        return candidate

    def _reading_frame(self, module_globals: dict, name: str, first_index: int) -> int:
        # A helper's frame sees every global of its module, but the line worth showing is the
        # one that reads the name (`ask(TITLE_PROMPT.format(...))` in the helper's caller).
        # Module-level code assigns every global, so it does not count as reading one.
        for index in range(first_index, len(self.frames)):
            info = self.infos[index]
            if info.module_level or self.frames[index].f_globals is not module_globals:
                continue
            if name in info.referenced:
                return index
        return first_index


class _Collector:
    def __init__(self, frames: list[FrameType]) -> None:
        self.frames = frames
        self.infos = [code_info(frame.f_code) for frame in frames]
        self.result = Candidates(frames, self.infos)
        self.seen: set[int] = set()
        self.order = 0

    def next_order(self, width: int = 1) -> int:
        order = self.order
        self.order += width
        return order

    def add_volatile(self, name: str, path: str, scope: int, frame_index: int, value: Any, locator: Locator) -> None:
        volatile = self.result.volatile
        if len(volatile) >= MAX_VOLATILE_CANDIDATES:
            return

        indirection = 1 if locator[3] else 0
        if isinstance(value, str):
            # A local or parameter string only counts as a template (never as a fixed
            # prompt), so one without placeholders is skipped before any object is built.
            if not value or (scope != SCOPE_ATTRIBUTE and not matchers_for(value, volatile=True)):
                return
            volatile.append(
                Candidate(name, path, scope, frame_index, indirection, None, self.next_order(), value, locator)
            )
            return
        if type(value) is not dict and template_kind(value) is None:
            return

        for entry in entries_for_value(name, path, (), value, indirection, 0, name):
            steps = locator[3] + entry.steps
            volatile.append(
                Candidate(
                    entry.name,
                    entry.path,
                    scope,
                    frame_index,
                    entry.indirection,
                    entry.template,
                    self.next_order(),
                    entry.value,
                    (locator[0], locator[1], locator[2], steps),
                )
            )

    def add_group(
        self,
        index: NamespaceIndex,
        source: str,
        base: str | None,
        prefix_path: str,
        prefix_steps: Steps,
        frame_index: int,
        indirection: int,
        module_globals: dict | None,
    ) -> None:
        if not index.entries:
            return
        order = self.next_order(MAX_NAMES_PER_NAMESPACE)
        self.result.groups.append(
            IndexedGroup(index, source, base, prefix_path, prefix_steps, frame_index, indirection, order, module_globals)
        )

    def collect(self) -> Candidates:
        for index, frame in enumerate(self.frames):
            info = self.infos[index]
            if not info.module_level:
                self.scan_locals(frame, info, index)

            module_globals = frame.f_globals
            if id(module_globals) not in self.seen:
                self.seen.add(id(module_globals))
                self.scan_globals(module_globals, index)
        return self.result

    def scan_locals(self, frame: FrameType, info: CodeInfo, index: int) -> None:
        for name, value in islice(frame.f_locals.items(), MAX_NAMES_PER_NAMESPACE):
            if name == info.self_name:
                self.scan_self(value, name, index)
                continue
            scope = SCOPE_PARAMETER if name in info.params else SCOPE_LOCAL
            self.add_volatile(name, name, scope, index, value, ("local", index, name, ()))

    def scan_self(self, value: Any, owner_name: str, index: int) -> None:
        is_class = isinstance(value, type)
        if not is_class:
            try:
                attributes = vars(value)
            except TypeError:
                attributes = {}
            for name, attribute in islice(attributes.items(), MAX_NAMES_PER_NAMESPACE):
                if isinstance(name, str) and not name.startswith("__"):
                    locator = ("local", index, owner_name, (("attr", name),))
                    self.add_volatile(name, f"{owner_name}.{name}", SCOPE_ATTRIBUTE, index, attribute, locator)

        cls = value if is_class else type(value)
        if id(cls) not in self.seen and is_user_class(cls):
            self.seen.add(id(cls))
            self.add_group(class_index(cls), "local", owner_name, owner_name, (), index, 1, None)

    def scan_globals(self, module_globals: dict, first_index: int) -> None:
        index = module_index(module_globals)
        self.add_group(index, "global", None, "", (), first_index, 0, module_globals)

        containers = 0
        for name, module in index.modules:
            if containers >= MAX_CONTAINERS_PER_MODULE:
                break
            containers += 1
            self.scan_module(module, name, (), module_globals, first_index)
        for name, cls in index.classes:
            if containers >= MAX_CONTAINERS_PER_MODULE:
                break
            containers += 1
            if id(cls) not in self.seen:
                self.seen.add(id(cls))
                self.add_group(class_index(cls), "global", name, name, (), first_index, 1, None)

    def scan_module(self, module: ModuleType, alias: str, steps: Steps, module_globals: dict, first_index: int) -> None:
        namespace = module.__dict__
        if id(namespace) in self.seen:
            return
        self.seen.add(id(namespace))

        index = module_index(namespace)
        prefix_path = ".".join([alias, *(key for _, key in steps)])
        self.add_group(index, "global", alias, prefix_path, steps, first_index, 1, module_globals)
        if steps:
            return
        for name, submodule in index.modules:
            # `import app.prompts` binds `app`; its submodule is one more attribute away.
            if getattr(submodule, "__name__", "").startswith(module.__name__ + "."):
                self.scan_module(submodule, alias, (("attr", name),), module_globals, first_index)


def collect_candidates(frames: list[FrameType]) -> Candidates:
    """Return the candidates of ``frames`` (innermost first)."""
    return _Collector(frames).collect()
