"""The explicit task-name override: ``with kaizen_sdk.task("name"):``.

The active names live in a ``contextvars.ContextVar`` holding a tuple used as a stack, so the
override follows the code into threads started with a copied context and into asyncio tasks,
and nested blocks restore the outer name. Entering pushes a name and leaving pops it inside
the current context, so the same ``task`` object may be entered from several threads or
tasks at once.
"""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar
from typing import Any, Callable, TypeVar

_active_names: ContextVar[tuple[str, ...]] = ContextVar("kaizen_task_override", default=())

F = TypeVar("F", bound=Callable[..., Any])


class task:
    """Name every LLM call made inside the block (or the decorated function) ``name``.

    Use it where detection cannot find the right name::

        with kaizen_sdk.task("summarize-ticket"):
            client.chat.completions.create(...)

        @kaizen_sdk.task("summarize-ticket")
        async def summarize(ticket): ...

    The name is recorded as is: ``task_map`` does not rename it and ``ignore_unmapped`` does
    not drop the call.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"task name must be a non-empty string, got {name!r}; pass the name to record, such as task('summarize')")
        self.name = name.strip()

    def __enter__(self) -> "task":
        _active_names.set(_active_names.get() + (self.name,))
        return self

    def __exit__(self, *exc_info: object) -> None:
        names = _active_names.get()
        if names:
            _active_names.set(names[:-1])

    async def __aenter__(self) -> "task":
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"task({self.name!r})"


def current_override() -> str | None:
    """Return the innermost active override name, or None outside any ``task`` block."""
    names = _active_names.get()
    return names[-1] if names else None
