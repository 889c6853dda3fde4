"""How a process function runs, on each backend, and how its end becomes an exit reason.

The backend split mirrors the mailbox's (``mailbox.py``): on asyncio a process is a bare task,
killed with ``Task.cancel()`` delivered again at every loop iteration until it ends; on trio it
is a task of the node's own trio nursery inside its own trio cancel scope. Either way a kill is
level-triggered. How each way out of a process function ends the process (ADR-0010):

- it returns: ``Normal``; it raises ``ProcessExit(reason)``: ``reason``, not logged (from a
  task of its own task group too: an exception group of ``ProcessExit``s only ends it with
  the first one's reason);
- an exit signal killed it: the signal's reason;
- any other exception, ``SystemExit``, ``GeneratorExit`` or another ``BaseException`` of the
  user's: ``Crashed`` with the exception, logged once at ERROR with its traceback;
- ``KeyboardInterrupt``, and a cancellation that is not its kill (the event loop or the
  node's nursery going away): the process exits ``Killed`` and the exception propagates, so
  that Ctrl-C still stops the program. On asyncio a ``CancelledError`` of a task nobody
  cancelled (the process awaited a cancelled future) is a crash like any other exception.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from types import FunctionType
from typing import TYPE_CHECKING, Any

from .errors import ProcessExit
from .info import log_fields
from .reasons import Crashed, ExitReason, Killed, Normal

if TYPE_CHECKING:
    from .pid import Pid
    from .process import Process
    from .table import Entry, Table

__all__ = ["AsyncioRunner", "TrioRunner", "check_process_function", "crashed", "exit_in_group"]

_log = logging.getLogger("refcount_starter.runtime.node")

NORMAL = Normal()
KILLED = Killed()
_CO_COROUTINE = inspect.CO_COROUTINE


def check_process_function(fn: object) -> None:
    """Refuse ``fn`` unless calling it gives a coroutine: an ``async def`` function, a
    ``functools.partial`` or a decorated wrapper of one, or an object whose ``__call__`` is
    ``async``.

    Raises:
        TypeError: ``fn`` is not callable, or is a plain function.
    """
    # The common case in one test: a plain async def function.
    if type(fn) is FunctionType and fn.__code__.co_flags & _CO_COROUTINE:
        return
    if not callable(fn):
        raise TypeError(f"a process function must be an async callable, got {fn!r}")
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(inspect.unwrap(fn)):
        return
    inner: Any = fn
    while isinstance(inner, functools.partial):  # a partial of an async callable object
        inner = inner.func
    call = inspect.getattr_static(type(inner), "__call__", None)
    if not isinstance(inner, type) and call is not None and inspect.iscoroutinefunction(call):
        return
    raise TypeError(f"a process function must be an async callable (async def), got {fn!r}, which is not")


def exit_in_group(exc: BaseException) -> ExitReason | None:
    """The reason of the ``ProcessExit`` that ended a task group, if ``exc`` is an exception
    group of ``ProcessExit``s only (a task of the process's own task group raised it): the
    first one's. ``None`` for anything else."""
    if not isinstance(exc, BaseExceptionGroup):
        return None
    exits, rest = exc.split(ProcessExit)
    if exits is None or rest is not None:
        return None
    first: BaseException = exits
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, ProcessExit)
    return first.reason


def crashed(pid: Pid, exc: BaseException) -> ExitReason:
    """The exit reason of a process whose function raised ``exc``, logged once (with the
    node and the pid as the record's ``node`` and ``pid`` fields)."""
    _log.error("process %s crashed", pid, exc_info=exc, extra=log_fields(pid))
    return Crashed.from_exception(exc)


class AsyncioRunner:
    """Runs processes as bare asyncio tasks."""

    __slots__ = ("_loop", "_table")

    def __init__(self, table: Table, loop: asyncio.AbstractEventLoop) -> None:
        self._table = table
        self._loop = loop

    def start(self, entry: Entry, process: Process, fn: Any, args: tuple[Any, ...]) -> None:
        """Schedule ``fn(process, *args)``."""
        entry.task = self._loop.create_task(self._run(entry, process, fn, args))

    async def _run(self, entry: Entry, process: Process, fn: Any, args: tuple[Any, ...]) -> None:
        # The kill is Task.cancel(), delivered again at every loop iteration until the task
        # ends (see cancel), so CancelledError with pending set is the kill.
        entry.started = True
        reason: ExitReason = KILLED
        try:
            if entry.pending is None:
                await fn(process, *args)
            reason = NORMAL
        except ProcessExit as exc:
            reason = exc.reason
        except asyncio.CancelledError as exc:
            if entry.pending is None:
                if entry.task.cancelling():
                    raise  # the loop (or the node's caller) cancelled this task
                # Nobody cancelled this task: it awaited something cancelled, a bug of the
                # process's own, as any other exception.
                reason = crashed(entry.pid, exc)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            # Ctrl-C in an exception group (a nested task group's) is still the user's, as
            # on trio; asyncio lets only a bare KeyboardInterrupt out of its loop.
            if isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is not None:
                raise KeyboardInterrupt() from exc
            if entry.pending is None:  # else it was killed, and raised while unwinding
                grouped = exit_in_group(exc)
                reason = crashed(entry.pid, exc) if grouped is None else grouped
        finally:
            if entry.pending is not None:
                reason = entry.pending
            self._table.exit(entry, reason)

    def cancel(self, entry: Entry) -> None:
        """Make a killed entry stop (``Table.kill`` calls it once per kill)."""
        task = entry.task
        if task is not None:
            # A task that has not started sees pending when it does (cancelling it now would
            # skip its exit bookkeeping). A started one is cancelled now and again at each
            # loop iteration until it ends: level-triggered, like a cancel scope, so an await
            # in a finally cannot outlive the kill.
            if entry.started:
                task.cancel()
                self._loop.call_soon(self._recancel, entry)
        elif entry.scope is not None:  # a node.process() block
            entry.scope.cancel()

    def _recancel(self, entry: Entry) -> None:
        task = entry.task
        if entry.reason is None and not task.done():
            task.cancel()
            self._loop.call_soon(self._recancel, entry)


class TrioRunner:
    """Runs processes as tasks of a trio nursery, each in its own trio cancel scope."""

    __slots__ = ("_cancel_scope", "_nursery", "_table", "_uncaught")

    def __init__(self, table: Table, nursery: Any) -> None:
        import trio

        self._table = table
        self._nursery = nursery
        self._cancel_scope = trio.CancelScope
        # Ctrl-C, or the node's nursery going away: not this process's doing.
        self._uncaught = (KeyboardInterrupt, trio.Cancelled)

    def start(self, entry: Entry, process: Process, fn: Any, args: tuple[Any, ...]) -> None:
        """Schedule ``fn(process, *args)``."""
        entry.scope = self._cancel_scope()
        # A constant name: trio would format one per task otherwise.
        self._nursery.start_soon(self._run, entry, process, fn, args, name="refcount_starter.process")

    async def _run(self, entry: Entry, process: Process, fn: Any, args: tuple[Any, ...]) -> None:
        reason: ExitReason = KILLED
        try:
            with entry.scope:
                if entry.pending is None:
                    await fn(process, *args)
                reason = NORMAL
        except ProcessExit as exc:
            reason = exc.reason
        except BaseException as exc:
            uncaught = self._uncaught
            if isinstance(exc, uncaught) or (
                isinstance(exc, BaseExceptionGroup) and exc.subgroup(uncaught) is not None
            ):
                raise
            if entry.pending is None:  # else it was killed, and raised while unwinding
                grouped = exit_in_group(exc)
                reason = crashed(entry.pid, exc) if grouped is None else grouped
        finally:
            if entry.pending is not None:
                reason = entry.pending
            self._table.exit(entry, reason)

    def cancel(self, entry: Entry) -> None:
        """Make a killed entry stop (``Table.kill`` calls it once per kill)."""
        scope = entry.scope
        if scope is not None:
            scope.cancel()
