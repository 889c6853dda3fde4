"""A process's mailbox: a deque with selective receive, and one parked reader.

The reader parks on the cheapest primitive its backend has (an asyncio future, or trio's
``wait_task_rescheduled``); a sender appends and wakes it. There is exactly one reader: the
process that owns the mailbox.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Mailbox", "Match", "mailbox_class", "to_predicate"]

#: What a selective receive accepts: a type, a tuple of types, or nothing (any message).
Match = type | tuple[type, ...] | None


def to_predicate(match: Match, where: Callable[[Any], bool] | None) -> Callable[[Any], bool] | None:
    """Combine a type filter and a predicate into one predicate, or ``None`` for "any"."""
    if match is None:
        if where is None:
            return None
        if not callable(where):
            raise TypeError(f"where must be a callable taking a message, got {where!r}")
        return where
    if isinstance(match, tuple):
        for kind in match:
            if not isinstance(kind, type):
                raise TypeError(f"receive matches on types; {kind!r} in {match!r} is not a type")
    elif not isinstance(match, type):
        raise TypeError(
            f"receive matches on a type or a tuple of types, got {match!r}; pass a predicate as where="
        )
    kinds = match
    if where is None:
        return lambda message: isinstance(message, kinds)
    if not callable(where):
        raise TypeError(f"where must be a callable taking a message, got {where!r}")
    return lambda message: isinstance(message, kinds) and where(message)


class Mailbox:
    """Messages in arrival order; ``receive`` takes the oldest one that matches."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: Any = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Any) -> None:
        """Append ``message`` and wake the reader if it is parked."""
        self._items.append(message)
        if self._waiter is not None:
            self._wake()

    def take(self, predicate: Callable[[Any], bool] | None) -> tuple[bool, Any]:
        """Take the oldest matching message without waiting: ``(found, message)``."""
        items = self._items
        if predicate is None:
            if items:
                return True, items.popleft()
            return False, None
        for index, message in enumerate(items):
            if predicate(message):
                del items[index]
                return True, message
        return False, None

    def remove_all(self, predicate: Callable[[Any], bool]) -> int:
        """Remove every message that matches; return how many went."""
        items = self._items
        if not items:
            return 0
        kept = [m for m in items if not predicate(m)]
        removed = len(items) - len(kept)
        if removed:
            items.clear()
            items.extend(kept)
        return removed

    def snapshot(self) -> list[Any]:
        """The queued messages, oldest first (for inspection and tests)."""
        return list(self._items)

    async def receive(self, predicate: Callable[[Any], bool] | None, timeout: float | None) -> Any:
        """Take the oldest matching message, waiting up to ``timeout`` seconds for one.

        Raises:
            TimeoutError: No matching message arrived in time.
        """
        if timeout is None:
            return await self._receive(predicate)
        found, message = self.take(predicate)
        if found:
            return message
        if timeout > 0:
            found, message = await self._receive_until(predicate, self._now() + timeout)
            if found:
                return message
        raise TimeoutError(f"no matching message within {timeout} s")

    async def _receive(self, predicate: Callable[[Any], bool] | None) -> Any:
        items = self._items
        if predicate is None:
            while not items:
                waiter = self._wait()
                try:
                    await waiter
                finally:
                    self._waiter = None
            return items.popleft()
        # Resume the scan where the last one stopped: only the reader removes messages.
        index = 0
        while True:
            length = len(items)
            while index < length:
                message = items[index]
                if predicate(message):
                    del items[index]
                    return message
                index += 1
            waiter = self._wait()
            try:
                await waiter
            finally:
                self._waiter = None

    def _wait(self) -> Awaitable[None]:
        """What to await for the next message, with no deadline. The reader clears
        ``_waiter`` as it resumes (see ``_receive``), so a second reader is caught, here
        and before the await: its ``finally`` must not clear the first reader's waiter."""
        if self._waiter is not None:
            raise _second_reader()
        return self._park(None)

    async def _receive_until(
        self, predicate: Callable[[Any], bool] | None, deadline: float
    ) -> tuple[bool, Any]:
        items = self._items
        index = 0
        while True:
            if predicate is None:
                if items:
                    return True, items.popleft()
            else:
                length = len(items)
                while index < length:
                    message = items[index]
                    if predicate(message):
                        del items[index]
                        return True, message
                    index += 1
            if self._now() >= deadline:
                return False, None
            await self._park(deadline)

    def _now(self) -> float:
        raise NotImplementedError

    async def _park(self, deadline: float | None) -> None:
        """Wait until a message arrives or the deadline (on the backend's clock) passes."""
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError


def _second_reader() -> RuntimeError:
    return RuntimeError(
        "two tasks are receiving from one process's mailbox at once; a mailbox has one "
        "reader, its process: give each concurrent task a process of its own (Node.process())"
    )


_Future = asyncio.Future
_running_loop = asyncio.get_running_loop


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class AsyncioMailbox(Mailbox):
    """The reader parks on a bare asyncio future; a deadline is a timer handle on it.

    ``put`` and ``_wait`` are written out here rather than inherited: they run once per
    message, and each method call they save is a measurable share of a message's cost on
    asyncio.
    """

    __slots__ = ()

    def put(self, message: Any) -> None:
        """Append ``message`` and wake the reader if it is parked."""
        self._items.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wait(self) -> asyncio.Future[None]:
        # The future itself, not a coroutine awaiting it: no frame of its own per wait.
        if self._waiter is not None:
            raise _second_reader()
        waiter = self._waiter = _Future(loop=_running_loop())
        return waiter

    def _now(self) -> float:
        return _running_loop().time()

    async def _park(self, deadline: float | None) -> None:
        if self._waiter is not None:
            raise _second_reader()
        loop = _running_loop()
        waiter = self._waiter = _Future(loop=loop)
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if not waiter.done():
            waiter.set_result(None)


class TrioMailbox(Mailbox):
    """The reader parks with ``trio.lowlevel.wait_task_rescheduled``."""

    __slots__ = ()

    def _now(self) -> float:
        return float(_trio().current_time())

    async def _park(self, deadline: float | None) -> None:
        if self._waiter is not None:
            raise _second_reader()
        trio = _trio()
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> Any:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        # _waiter stays set (to _WOKEN once woken) until the reader runs again, so that a
        # second reader is caught even between the wake-up and the resume.
        try:
            if deadline is None:
                await trio.lowlevel.wait_task_rescheduled(abort)
            else:
                with trio.move_on_at(deadline):
                    await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self._waiter = None

    def _wake(self) -> None:
        task = self._waiter
        if task is _WOKEN:
            return
        self._waiter = _WOKEN
        _trio().lowlevel.reschedule(task)


#: The trio reader was rescheduled and has not run yet.
_WOKEN = object()


def _trio() -> Any:
    import trio

    return trio


def mailbox_class() -> type[Mailbox]:
    """The mailbox class for the async library running in this thread."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return TrioMailbox
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("a Node runs inside anyio.run() on asyncio or trio") from None
    return AsyncioMailbox
