"""Candidates: the named values in the user's frames that a message could come from.

A candidate is a string or a template object bound to a name the user wrote: a local, a
parameter, a module global, an attribute of ``self`` / ``cls`` or their classes, an attribute
of an imported user module or class, or a value in a dict bound to any of those. Each
candidate records the name the task takes (the variable, the dict key or the attribute), the
expression as written (``PROMPTS["summary"]``, ``self.SYSTEM``), its scope and the frame
where it is used.

Scanning is bounded: a fixed number of names per namespace, items per dict and classes per
MRO. Module and class namespaces change rarely, so the names worth looking at (strings,
dicts, template objects, user modules and classes) are cached per namespace and rebuilt when
its size changes; values are always read live.
"""

from __future__ import annotations

import enum
import inspect
from itertools import islice
from types import CodeType, FrameType, ModuleType
from typing import Any

from kaizen_sdk._detection._frames import is_user_class, is_user_module
from kaizen_sdk._detection._template_objects import TemplateObject, template_kind, template_object

# Scopes, in the order rule 4 prefers them.
SCOPE_ATTRIBUTE = 0  # module global, class / instance / module attribute
SCOPE_LOCAL = 1
SCOPE_PARAMETER = 2

MAX_NAMES_PER_NAMESPACE = 512
MAX_DICT_ITEMS = 64
MAX_DICT_DEPTH = 2
MAX_CLASSES_PER_MRO = 8
MAX_CONTAINERS_PER_MODULE = 64
MAX_CANDIDATES = 1024

_ANONYMOUS_CODE_NAMES = frozenset({"<lambda>", "<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>"})
_MAX_CACHED = 4096


class Candidate:
    """A named string or template object in a user frame."""

    __slots__ = ("name", "path", "scope", "frame_index", "report_index", "indirection", "text", "template", "order")

    def __init__(
        self,
        name: str,
        path: str,
        scope: int,
        frame_index: int,
        indirection: int,
        text: str | None,
        template: TemplateObject | None,
        order: int,
    ) -> None:
        self.name = name
        self.path = path
        self.scope = scope
        self.frame_index = frame_index  # the innermost frame that sees the name: ranks candidates
        self.report_index = frame_index  # the frame whose code reads the name: reported as file and line
        self.indirection = indirection  # 0 a plain name, 1 an attribute or dict value, 2 a chain's prompt
        self.text = text
        self.template = template
        self.order = order


class CodeInfo:
    """What detection needs from a code object, computed once per code object."""

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


_code_infos: dict[CodeType, CodeInfo] = {}


def code_info(code: CodeType) -> CodeInfo:
    """Return the cached ``CodeInfo`` of ``code``."""
    info = _code_infos.get(code)
    if info is None:
        info = CodeInfo(code)
        if len(_code_infos) >= _MAX_CACHED:
            _code_infos.clear()
        _code_infos[code] = info
    return info


_namespace_names: dict[int, tuple[Any, int, tuple[str, ...]]] = {}


def _interesting_names(owner: Any, namespace: Any, with_containers: bool) -> tuple[str, ...]:
    # `owner` is the module dict or the class; its identity keys the cache.
    size = len(namespace)
    cached = _namespace_names.get(id(owner))
    if cached is not None and cached[0] is owner and cached[1] == size:
        return cached[2]

    names = tuple(
        name
        for name, value in islice(namespace.items(), MAX_NAMES_PER_NAMESPACE)
        if isinstance(name, str) and not name.startswith("__") and _is_interesting(value, with_containers)
    )
    if len(_namespace_names) >= _MAX_CACHED:
        _namespace_names.clear()
    _namespace_names[id(owner)] = (owner, size, names)
    return names


def _is_interesting(value: Any, with_containers: bool) -> bool:
    value_type = type(value)
    if value_type is str or value_type is dict or isinstance(value, str):
        return True
    if with_containers:
        if value_type is ModuleType:
            return is_user_module(value)
        if isinstance(value, type):
            return is_user_class(value)
    return template_kind(value) is not None


class _Collector:
    def __init__(self, frames: list[FrameType]) -> None:
        self.frames = frames
        self.infos = [code_info(frame.f_code) for frame in frames]
        self.candidates: list[Candidate] = []
        self.seen_namespaces: set[int] = set()

    def add(self, name: str, path: str, scope: int, frame_index: int, indirection: int, value: Any) -> None:
        if len(self.candidates) >= MAX_CANDIDATES:
            return

        if isinstance(value, str):
            if value:
                self.candidates.append(
                    Candidate(name, path, scope, frame_index, indirection, value, None, len(self.candidates))
                )
            return

        if type(value) is dict:
            self.add_dict(name, path, scope, frame_index, indirection, value, 1)
            return

        kind = template_kind(value)
        if kind is None:
            return
        template = template_object(value, kind)
        if template is None:
            return
        indirection = 2 if template.via_chain else indirection
        self.candidates.append(
            Candidate(name, path, scope, frame_index, indirection, None, template, len(self.candidates))
        )

    def add_dict(
        self, name: str, path: str, scope: int, frame_index: int, indirection: int, mapping: dict, depth: int
    ) -> None:
        content = mapping.get("content")
        if "role" in mapping and isinstance(content, str):
            # A chat message kept whole (`SYSTEM_MESSAGE = {"role": ..., "content": ...}`) is
            # named after the dict, not after its "content" key.
            self.add(name, f'{path}["content"]', scope, frame_index, indirection, content)
            return

        for key, value in islice(mapping.items(), MAX_DICT_ITEMS):
            key_name = key if isinstance(key, str) else key.name if isinstance(key, enum.Enum) else None
            if not key_name:
                continue
            item_path = f'{path}["{key_name}"]' if isinstance(key, str) else f"{path}[{type(key).__name__}.{key_name}]"
            if type(value) is dict:
                if depth < MAX_DICT_DEPTH:
                    self.add_dict(key_name, item_path, scope, frame_index, 1, value, depth + 1)
                continue
            self.add(key_name, item_path, scope, frame_index, 1, value)

    def collect(self) -> list[Candidate]:
        for index, frame in enumerate(self.frames):
            info = self.infos[index]
            if not info.module_level:
                self.scan_locals(frame, info, index)

            module_globals = frame.f_globals
            if id(module_globals) not in self.seen_namespaces:
                self.seen_namespaces.add(id(module_globals))
                self.scan_globals(module_globals, index)
        return self.candidates

    def scan_locals(self, frame: FrameType, info: CodeInfo, index: int) -> None:
        for name, value in islice(frame.f_locals.items(), MAX_NAMES_PER_NAMESPACE):
            if name == info.self_name:
                self.scan_self(value, name, index)
                continue
            scope = SCOPE_PARAMETER if name in info.params else SCOPE_LOCAL
            self.add(name, name, scope, index, 0, value)

    def scan_self(self, value: Any, owner_name: str, index: int) -> None:
        cls = value if isinstance(value, type) else type(value)
        if not isinstance(value, type):
            try:
                attributes = vars(value)
            except TypeError:
                attributes = {}
            for name, attribute in islice(attributes.items(), MAX_NAMES_PER_NAMESPACE):
                if isinstance(name, str) and not name.startswith("__"):
                    self.add(name, f"{owner_name}.{name}", SCOPE_ATTRIBUTE, index, 1, attribute)

        self.scan_class(cls, owner_name, index)

    def scan_class(self, cls: type, owner_name: str, index: int) -> None:
        if id(cls) in self.seen_namespaces:
            return
        self.seen_namespaces.add(id(cls))

        shadowed: set[str] = set()
        for klass in islice((k for k in cls.__mro__ if k is not object and is_user_class(k)), MAX_CLASSES_PER_MRO):
            namespace = klass.__dict__
            for name in _interesting_names(klass, namespace, with_containers=False):
                if name in shadowed:
                    continue
                shadowed.add(name)
                self.add(name, f"{owner_name}.{name}", SCOPE_ATTRIBUTE, index, 1, namespace.get(name))

    def scan_globals(self, module_globals: dict, first_index: int) -> None:
        containers = 0
        for name in _interesting_names(module_globals, module_globals, with_containers=True):
            value = module_globals.get(name)
            if type(value) is ModuleType:
                if containers < MAX_CONTAINERS_PER_MODULE:
                    containers += 1
                    self.scan_module(value, name, module_globals, first_index, depth=1)
                continue
            if isinstance(value, type):
                if containers < MAX_CONTAINERS_PER_MODULE:
                    containers += 1
                    self.scan_class(value, name, first_index)
                continue
            added_from = len(self.candidates)
            self.add(name, name, SCOPE_ATTRIBUTE, first_index, 0, value)
            self.set_report_frame(module_globals, name, first_index, added_from)

    def scan_module(self, module: ModuleType, alias: str, module_globals: dict, first_index: int, depth: int) -> None:
        namespace = module.__dict__
        if id(namespace) in self.seen_namespaces:
            return
        self.seen_namespaces.add(id(namespace))

        for name in _interesting_names(namespace, namespace, with_containers=True):
            value = namespace.get(name)
            if type(value) is ModuleType:
                # `import app.prompts` binds `app`; its submodule is one more attribute away.
                if depth < 2 and getattr(value, "__name__", "").startswith(module.__name__ + "."):
                    self.scan_module(value, f"{alias}.{name}", module_globals, first_index, depth + 1)
                continue
            if isinstance(value, type):
                continue
            added_from = len(self.candidates)
            self.add(name, f"{alias}.{name}", SCOPE_ATTRIBUTE, first_index, 1, value)
            self.set_report_frame(module_globals, name, first_index, added_from)

    def set_report_frame(self, module_globals: dict, name: str, first_index: int, added_from: int) -> None:
        """Report the candidates added since ``added_from`` at the innermost function of this module that reads ``name``.

        A helper's frame sees every global of its module, but the line worth showing is the one
        that reads the name (`ask(TITLE_PROMPT.format(...))` in the helper's caller). Module-level
        code assigns every global, so it does not count as reading one.
        """
        for index in range(first_index, len(self.frames)):
            info = self.infos[index]
            if info.module_level or self.frames[index].f_globals is not module_globals:
                continue
            if name in info.referenced:
                for candidate in self.candidates[added_from:]:
                    candidate.report_index = index
                return


def collect_candidates(frames: list[FrameType]) -> tuple[list[Candidate], list[CodeInfo]]:
    """Return the candidates of ``frames`` (innermost first) and each frame's ``CodeInfo``."""
    collector = _Collector(frames)
    return collector.collect(), collector.infos
