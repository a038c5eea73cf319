"""User frames: which stack frames belong to the application that made an LLM call.

Detection walks ``sys._getframe()`` outward from the integration and keeps the frames
whose code the user wrote. A frame is library code when its module belongs to the SDK or to
an instrumented library or one of their dependencies (checked by top-level package name, so
editable installs count too), or when its file lives in the standard library or in a
``site-packages`` / ``dist-packages`` folder. ``inspect.stack()`` is never used because it
reads source files for every frame. Verdicts are cached per code object: the same few code
objects repeat on every call.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import CodeType, FrameType, ModuleType

# Frames examined per call, and user frames kept. A LangChain chain puts about 40 library
# frames between the user's `invoke` and the integration, so the walk limit is generous.
MAX_WALKED_FRAMES = 160
MAX_USER_FRAMES = 8
MAX_LIBRARY_RUN_AFTER_USER = 16

# Top-level packages whose frames are never the user's, wherever they are installed.
_LIBRARY_PACKAGES = {
    "kaizen_sdk",
    "openai",
    "litellm",
    "langchain",
    "langsmith",
    "langgraph",
    "httpx",
    "httpx2",
    "httpcore",
    "anyio",
    "sniffio",
    "h11",
    "aiohttp",
    "requests",
    "urllib3",
    "pydantic",
    "pydantic_core",
    "tenacity",
    "tiktoken",
    "tokenizers",
    "jinja2",
    "_pytest",
    "pytest",
    "pluggy",
}
_LIBRARY_PREFIXES = ("langchain_",)

_MAX_CACHED = 8192
# Keyed by id(code), not by the code object: hashing a code object hashes its constants
# every time, and a module's constants hold the code of every function in it (several
# microseconds per frame for a large module). The entry keeps the code object alive, so
# its id cannot be reused by another object while the entry exists.
_code_verdicts: dict[int, tuple[CodeType, bool]] = {}
_module_verdicts: dict[str, bool] = {}


def _stdlib_dirs() -> tuple[str, ...]:
    dirs: set[str] = set()
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars) if scheme_vars else sysconfig.get_paths()
        for key in ("stdlib", "platstdlib"):
            path = paths.get(key)
            if path:
                dirs.add(os.path.join(os.path.normcase(os.path.abspath(path)), ""))
                dirs.add(os.path.join(os.path.normcase(os.path.realpath(path)), ""))

    return tuple(sorted(dirs))


_STDLIB_DIRS = _stdlib_dirs()
_PACKAGE_DIR_MARKERS = (
    f"{os.sep}site-packages{os.sep}",
    f"{os.sep}dist-packages{os.sep}",
)


def register_library_package(name: str) -> None:
    """Treat frames of the top-level package ``name`` as library code from now on."""
    _LIBRARY_PACKAGES.add(name.partition(".")[0])
    _code_verdicts.clear()
    _module_verdicts.clear()


def is_library_module_name(module_name: str | None) -> bool:
    """Return True when the module name belongs to the SDK or a known library package."""
    if not module_name:
        return False

    top = module_name.partition(".")[0]
    return top in _LIBRARY_PACKAGES or top.startswith(_LIBRARY_PREFIXES)


def is_library_file(filename: str | None) -> bool:
    """Return True for files of the standard library, installed packages or frozen modules."""
    if not filename:
        return True
    if filename.startswith("<frozen"):
        return True
    if filename.startswith("<"):
        # `<stdin>`, `<string>` and notebook cells are code the user typed.
        return False

    path = os.path.normcase(filename)
    if any(marker in path for marker in _PACKAGE_DIR_MARKERS):
        return True

    return path.startswith(_STDLIB_DIRS)


def is_user_code(code: CodeType, module_name: str | None) -> bool:
    """Return True when ``code`` (from the module ``module_name``) is the application's own."""
    entry = _code_verdicts.get(id(code))
    if entry is not None:
        return entry[1]

    verdict = not is_library_module_name(module_name) and not is_library_file(code.co_filename)
    if len(_code_verdicts) >= _MAX_CACHED:
        _code_verdicts.clear()
    _code_verdicts[id(code)] = (code, verdict)
    return verdict


def is_user_module(module: ModuleType) -> bool:
    """Return True for a module the application wrote (not built in, stdlib or installed)."""
    name = getattr(module, "__name__", None)
    if not isinstance(name, str):
        return False

    verdict = _module_verdicts.get(name)
    if verdict is not None:
        return verdict

    filename = getattr(module, "__file__", None)
    verdict = (
        isinstance(filename, str)
        and not is_library_module_name(name)
        and not is_library_file(filename)
    )
    if len(_module_verdicts) >= _MAX_CACHED:
        _module_verdicts.clear()
    _module_verdicts[name] = verdict
    return verdict


def is_user_class(cls: type) -> bool:
    """Return True for a class defined in one of the application's modules."""
    module_name = getattr(cls, "__module__", None)
    if not isinstance(module_name, str) or module_name == "builtins":
        return False

    module = sys.modules.get(module_name)
    if module is None:
        return False

    return is_user_module(module)


def innermost_user_frame(start: FrameType | None) -> FrameType | None:
    """Return the first frame from ``start`` outward that is the user's, or None.

    It is the first frame that ``user_frames`` returns, found without walking further out.
    """
    verdicts = _code_verdicts
    frame = start
    walked = 0
    while frame is not None and walked < MAX_WALKED_FRAMES:
        code = frame.f_code
        entry = verdicts.get(id(code))
        if entry is not None:
            verdict = entry[1]
        else:
            verdict = is_user_code(code, frame.f_globals.get("__name__"))
        if verdict:
            return frame

        frame = frame.f_back
        walked += 1

    return None


def user_frames(start: FrameType | None) -> list[FrameType]:
    """Return the user's frames from ``start`` outward, innermost first, bounded in number."""
    frames: list[FrameType] = []
    verdicts = _code_verdicts
    frame = start
    walked = 0
    library_run = 0
    while frame is not None and walked < MAX_WALKED_FRAMES:
        code = frame.f_code
        entry = verdicts.get(id(code))
        if entry is not None:
            verdict = entry[1]
        else:
            verdict = is_user_code(code, frame.f_globals.get("__name__"))

        if verdict:
            frames.append(frame)
            if len(frames) >= MAX_USER_FRAMES:
                break
            library_run = 0
        elif frames:
            # Past the user's code, a long run of library frames is the framework that
            # called the application (a web server, a test runner): stop there.
            library_run += 1
            if library_run >= MAX_LIBRARY_RUN_AFTER_USER:
                break
        frame = frame.f_back
        walked += 1

    if frames:
        return frames

    return _frames_outside_known_libraries(start)


def _frames_outside_known_libraries(start: FrameType | None) -> list[FrameType]:
    # An application installed into site-packages (a wheel deployed to production) has no
    # frame that passes the path test. Then every frame outside the standard library and the
    # known library packages counts as the user's.
    # NOTE: a third-party package that is not in the known list can be taken for user code here.
    frames: list[FrameType] = []
    frame = start
    walked = 0
    while frame is not None and walked < MAX_WALKED_FRAMES:
        filename = frame.f_code.co_filename
        module_name = frame.f_globals.get("__name__")
        is_stdlib = filename.startswith("<frozen") or os.path.normcase(filename).startswith(_STDLIB_DIRS)
        if not is_stdlib and not is_library_module_name(module_name):
            frames.append(frame)
            if len(frames) >= MAX_USER_FRAMES:
                break
        frame = frame.f_back
        walked += 1

    return frames
