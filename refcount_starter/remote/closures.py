"""The remote table: functions registered by name, so a start can travel as a name + arguments.

Cloud Haskell's ``remotable``: a process function is registered under a name on every node
that imports the module that defines it; a ``RunClosure(name, *args)`` names it and carries
encodable arguments, so it can be sent to and run on any node that has the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar, overload

from ..runtime import ProcessFunction, RefcountStarterError

__all__ = ["REMOTE_TABLE", "ClosureNameTaken", "RemoteTable", "UnknownClosure", "remotable"]

F = TypeVar("F", bound=ProcessFunction)


class UnknownClosure(RefcountStarterError, LookupError):
    """No function is registered under ``name`` in the table.

    Args:
        name: The name looked up.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (
            f"no function is registered as {self.name!r} in the remote table; decorate it with "
            f"@remotable and import its module on every node that runs it"
        )


class ClosureNameTaken(RefcountStarterError, ValueError):
    """Another function is already registered under ``name``.

    Args:
        name: The name.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"another function is already registered as {self.name!r} in the remote table"


class RemoteTable:
    """A registry of process functions by name."""

    __slots__ = ("_functions",)

    def __init__(self) -> None:
        self._functions: dict[str, ProcessFunction] = {}

    def register(self, name: str, fn: ProcessFunction) -> None:
        """Register ``fn`` under ``name`` (registering the same function again is a no-op).

        Raises:
            TypeError: ``name`` is not a non-empty str, or ``fn`` not callable.
            ClosureNameTaken: Another function holds ``name``.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"a closure name must be a non-empty str, got {name!r}")
        if not callable(fn):
            raise TypeError(f"a closure must be an async process function, got {fn!r}")
        held = self._functions.get(name)
        if held is not None and held is not fn:
            raise ClosureNameTaken(name)
        self._functions[name] = fn

    def unregister(self, name: str) -> None:
        """Forget ``name`` (nothing happens if it is not registered)."""
        self._functions.pop(name, None)

    def lookup(self, name: str) -> ProcessFunction:
        """The function registered under ``name``.

        Raises:
            UnknownClosure: Nothing is registered under ``name``.
        """
        fn = self._functions.get(name)
        if fn is None:
            raise UnknownClosure(name)
        return fn

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)


#: The table every node uses unless told otherwise.
REMOTE_TABLE = RemoteTable()


def default_name(fn: ProcessFunction) -> str:
    """The name ``remotable`` gives ``fn`` by default: ``module.qualname``."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


@overload
def remotable(fn: F, /) -> F: ...


@overload
def remotable(*, name: str | None = ..., table: RemoteTable | None = ...) -> Callable[[F], F]: ...


def remotable(
    fn: F | None = None, /, *, name: str | None = None, table: RemoteTable | None = None
) -> F | Callable[[F], F]:
    """Register a process function in the remote table; use as ``@remotable`` or
    ``@remotable(name="...")``.

    Args:
        fn: The function (when used without arguments).
        name: Its name in the table; ``module.qualname`` by default.
        table: The table; ``REMOTE_TABLE`` by default.

    Returns:
        The function itself, unchanged.

    Raises:
        ClosureNameTaken: Another function holds the name.
    """
    target = REMOTE_TABLE if table is None else table

    def register(f: F) -> F:
        target.register(default_name(f) if name is None else name, f)
        return f

    if fn is not None:
        return register(fn)
    return register
