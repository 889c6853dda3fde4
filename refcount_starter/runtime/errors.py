"""Typed errors of the runtime. Each names the value at fault and what was expected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .reasons import ExitReason

if TYPE_CHECKING:
    from .pid import Pid

__all__ = [
    "CallFailed",
    "CallTimeout",
    "NameNotRegistered",
    "NameTaken",
    "NodeNotRunning",
    "ProcessExit",
    "ProcessNotAlive",
    "RefcountStarterError",
]


class RefcountStarterError(Exception):
    """The root of the errors this library raises: ``except RefcountStarterError`` catches
    every one of them, and each also keeps the standard base a caller may catch it by
    (``LookupError``, ``ValueError``, ``TimeoutError``, ``RuntimeError``).

    ``ProcessExit`` is not one: it is a process's exit, not an error (see ADR-0010, "Errors").
    """


class ProcessExit(Exception):
    """Raise it in a process to exit with ``reason``; raised out of ``Node.process()`` when
    that process is killed by an exit signal.

    Args:
        reason: The exit reason.

    Raises:
        TypeError: ``reason`` is not an ``ExitReason``.
    """

    def __init__(self, reason: ExitReason) -> None:
        if not isinstance(reason, ExitReason):
            raise TypeError(f"a process exits with an ExitReason (Normal(), Shutdown(), ...), got {reason!r}")
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"process exited: {self.reason!r}"


class CallFailed(RefcountStarterError):
    """A ``call`` whose callee exited (or was unknown) before it replied.

    Args:
        target: The pid or name called.
        reason: The callee's exit reason (``NoProc`` when it was unknown or already dead,
            ``NoConnection`` when its node was lost).
    """

    def __init__(self, target: object, reason: ExitReason) -> None:
        super().__init__(target, reason)
        self.target = target
        self.reason = reason

    def __str__(self) -> str:
        return f"call to {self.target} failed: the callee exited with {self.reason!r}"


class CallTimeout(RefcountStarterError, TimeoutError):
    """A ``call`` that got no reply within its timeout (the callee is still alive).

    Args:
        target: The pid or name called.
        timeout: The timeout in seconds.
    """

    def __init__(self, target: object, timeout: float) -> None:
        super().__init__(target, timeout)
        self.target = target
        self.timeout = timeout

    def __str__(self) -> str:
        return f"call to {self.target} got no reply within {self.timeout} s"


class ProcessNotAlive(RefcountStarterError, LookupError):
    """An operation that needs a live local process was given a dead or unknown pid.

    Args:
        pid: The pid.
        reason: Its ``NoProc`` reason, with when and why it died where the node remembers.
    """

    def __init__(self, pid: Pid, reason: ExitReason) -> None:
        super().__init__(pid, reason)
        self.pid = pid
        self.reason = reason

    def __str__(self) -> str:
        return f"process {self.pid} is not alive: {self.reason!r}"


class NameNotRegistered(RefcountStarterError, LookupError):
    """A send or lookup by a name that no live process holds.

    Args:
        name: The name.
        node: The node that was asked.
    """

    def __init__(self, name: str, node: str) -> None:
        super().__init__(name, node)
        self.name = name
        self.node = node

    def __str__(self) -> str:
        return f"no process is registered as {self.name!r} on node {self.node!r}"


class NameTaken(RefcountStarterError, ValueError):
    """``register`` of a name that another live process already holds.

    Args:
        name: The name.
        holder: The process that holds it.
    """

    def __init__(self, name: str, holder: Pid) -> None:
        super().__init__(name, holder)
        self.name = name
        self.holder = holder

    def __str__(self) -> str:
        return f"the name {self.name!r} is already registered to {self.holder}"


class NodeNotRunning(RefcountStarterError, RuntimeError):
    """An operation on a ``Node`` outside its ``async with`` block."""
