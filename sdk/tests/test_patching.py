"""Tests of wrap/unwrap: metadata kept, originals restored exactly, idempotent, thread-safe."""

from __future__ import annotations

import asyncio
import inspect
import threading

from kaizen_sdk import _patching


def passthrough(original):
    def wrapper(*args, **kwargs):
        return ("wrapped", original(*args, **kwargs))

    return wrapper


class Base:
    def greet(self, name: str, *, punctuation: str = "!") -> str:
        """Greet someone."""
        return f"hello {name}{punctuation}"

    @staticmethod
    def static(value: int) -> int:
        return value + 1

    @classmethod
    def klass(cls, value: int) -> str:
        return f"{cls.__name__}:{value}"

    async def fetch(self, value: int) -> int:
        """Fetch a value."""
        return value


class Child(Base):
    pass


def test_wrap_keeps_metadata():
    original = Base.__dict__["greet"]
    try:
        assert _patching.wrap(Base, "greet", passthrough)
        patched = Base.greet
        assert patched.__name__ == "greet"
        assert patched.__qualname__ == "Base.greet"
        assert patched.__doc__ == "Greet someone."
        assert patched.__wrapped__ is original
        assert inspect.signature(patched) == inspect.signature(original)
        assert Base().greet("ann") == ("wrapped", "hello ann!")
    finally:
        _patching.unwrap(Base, "greet")


def test_unwrap_restores_same_object():
    original = Base.__dict__["greet"]
    _patching.wrap(Base, "greet", passthrough)
    assert _patching.unwrap(Base, "greet")
    assert Base.__dict__["greet"] is original


def test_wrap_twice_is_noop():
    try:
        assert _patching.wrap(Base, "greet", passthrough)
        first = Base.__dict__["greet"]
        assert not _patching.wrap(Base, "greet", passthrough)
        assert Base.__dict__["greet"] is first
        assert Base().greet("bo") == ("wrapped", "hello bo!")
    finally:
        _patching.unwrap(Base, "greet")


def test_unwrap_not_wrapped_is_noop():
    assert not _patching.unwrap(Base, "greet")
    assert not _patching.unwrap(Base, "no_such_attribute")


def test_inherited_attribute_removed_on_unwrap():
    assert "greet" not in vars(Child)
    _patching.wrap(Child, "greet", passthrough)
    assert "greet" in vars(Child)
    assert Child().greet("x") == ("wrapped", "hello x!")
    assert Base().greet("x") == "hello x!"
    _patching.unwrap(Child, "greet")
    assert "greet" not in vars(Child)


def test_static_and_class_methods_keep_kind():
    try:
        _patching.wrap(Base, "static", passthrough)
        _patching.wrap(Base, "klass", passthrough)
        assert isinstance(Base.__dict__["static"], staticmethod)
        assert isinstance(Base.__dict__["klass"], classmethod)
        assert Base.static(1) == ("wrapped", 2)
        assert Child.klass(3) == ("wrapped", "Child:3")
    finally:
        _patching.unwrap(Base, "static")
        _patching.unwrap(Base, "klass")
    assert Base.static(1) == 2


def test_async_original_stays_coroutine_function():
    def plain_returning_coroutine(original):
        def wrapper(*args, **kwargs):
            return original(*args, **kwargs)

        return wrapper

    try:
        _patching.wrap(Base, "fetch", plain_returning_coroutine)
        assert asyncio.iscoroutinefunction(Base.fetch)
        assert asyncio.run(Base().fetch(5)) == 5
    finally:
        _patching.unwrap(Base, "fetch")


def test_module_attribute_round_trip():
    import json

    original = json.dumps
    _patching.wrap(json, "dumps", passthrough)
    try:
        assert json.dumps([1]) == ("wrapped", "[1]")
        assert _patching.original_of(json.dumps) is original
    finally:
        _patching.unwrap(json, "dumps")
    assert json.dumps is original


def test_reinstall_after_unwrap():
    for _ in range(3):
        _patching.wrap(Base, "greet", passthrough)
        assert Base().greet("z") == ("wrapped", "hello z!")
        _patching.unwrap(Base, "greet")
        assert Base().greet("z") == "hello z!"


def test_concurrent_wrap_patches_once():
    barrier = threading.Barrier(8)
    results = []

    def worker():
        barrier.wait()
        results.append(_patching.wrap(Base, "greet", passthrough))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert results.count(True) == 1
        assert Base().greet("q") == ("wrapped", "hello q!")
    finally:
        _patching.unwrap(Base, "greet")


def test_foreign_patch_left_in_place():
    original = Base.__dict__["greet"]
    _patching.wrap(Base, "greet", passthrough)

    def other(self, name, *, punctuation="!"):
        return "other"

    Base.greet = other
    try:
        assert _patching.unwrap(Base, "greet")
        assert Base.__dict__["greet"] is other
    finally:
        Base.greet = original
