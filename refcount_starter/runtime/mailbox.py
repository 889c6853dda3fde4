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
from itertools import islice
from typing import Any

__all__ = ["BUDGET", "Mailbox", "Match", "mailbox_class", "to_predicate"]

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


#: How many receives a process may complete in a row without waiting before its next
#: receive yields to the other tasks (ADR-0010): Tokio's cooperative budget, in receives.
BUDGET = 128


def _find(items: deque[Any], predicate: Callable[[Any], bool], start: int) -> int:
    """The index of the oldest message at or after ``start`` that matches, or -1.

    Linear in the messages it looks at: a deque is indexed in O(distance to its nearer end),
    so the scan never indexes from the front; it iterates, after skipping ``start`` messages
    in C or copying the last ``len - start`` ones, whichever is shorter. Messages the
    predicate itself sends to this mailbox are looked at too, in their turn: -1 means no
    message up to the end, as it is when ``_find`` returns, matches.
    """
    while True:
        length = len(items)
        tail = length - start
        if tail <= 0:
            return -1
        index = start
        try:
            if start <= tail:
                for index, message in enumerate(islice(items, start, None) if start else items, start):
                    if predicate(message):
                        return index
                return -1
            # A resumed scan or a call's marker near the end: only the newest messages are
            # looked at.
            newest = list(islice(reversed(items), tail))
            for offset, message in enumerate(reversed(newest)):
                if predicate(message):
                    return start + offset
        except RuntimeError as exc:
            # "deque mutated during iteration", raised here by the iterator (not by the
            # predicate, whose frame would be in the traceback): the predicate sent to this
            # mailbox (it cannot take from it, see Mailbox.refuse_taking). Go on after the
            # message it was looking at.
            if len(items) == length or exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
                raise
            start = index + 1
            continue
        if len(items) == length:
            return -1
        start = length


class Mailbox(deque[Any]):
    """Messages in arrival order; ``receive`` takes the oldest one that matches.

    The mailbox is the deque of its messages itself (one object per process, and ``len`` in
    C); only its reader removes messages.

    Every receive counts against a budget of ``BUDGET`` receives; a receive that finds its
    message after the budget is spent first yields to the other tasks (a checkpoint, where a
    pending kill or cancellation lands, and the message stays queued); meanwhile the
    mailbox counts as read, so another task cannot take from it. A wait refills the
    budget. ``exhaust`` empties it, so that the next receive is a checkpoint (a kill calls
    it).
    """

    __slots__ = ("_budget", "_scanning", "_waiter")

    def __init__(self) -> None:
        # deque.__new__ made an empty deque already; deque.__init__ (no items, no maxlen)
        # would only clear it again.
        self._waiter: Any = None
        self._budget = BUDGET
        # A selective receive is calling its predicate: nothing may take a message (the
        # scan's indices would shift), while sending to this mailbox is fine.
        self._scanning = False

    def put(self, message: Any) -> None:
        """Append ``message`` and wake the reader if it is parked."""
        self.append(message)
        if self._waiter is not None:
            self._wake()

    @property
    def waiting(self) -> bool:
        """Whether the reader is inside a receive and not running: parked, waiting for a
        message, or yielding at its budget checkpoint."""
        return self._waiter is not None

    def exhaust(self) -> None:
        """Make the next receive a checkpoint (the process was killed or must yield)."""
        self._budget = 0

    def refuse_taking(self) -> None:
        """Refuse to take messages while a receive holds indices into the mailbox: its
        predicate is running, or it is parked or at its budget checkpoint (its reader is
        another task).

        Raises:
            RuntimeError: A receive is under way.
        """
        if self._scanning:
            raise RuntimeError(
                "a receive's predicate took messages from the mailbox it is scanning "
                "(flush or demonitor with flush); a predicate must only look at its message"
            )
        if self._waiter is not None:
            raise _second_reader()

    def remove_all(self, predicate: Callable[[Any], bool], start: int = 0) -> int:
        """Remove every message from index ``start`` on that matches; return how many went."""
        items = self
        if self._scanning or self._waiter is not None:
            self.refuse_taking()
        if len(items) <= start:
            return 0
        if start == 0:
            kept = [m for m in items if not predicate(m)]
            removed = len(items) - len(kept)
            if removed:
                items.clear()
                items.extend(kept)
            return removed
        newest = [items.pop() for _ in range(len(items) - start)]
        newest.reverse()
        kept = [m for m in newest if not predicate(m)]
        items.extend(kept)
        return len(newest) - len(kept)

    def take_all(self) -> list[Any]:
        """Take every queued message, oldest first."""
        if self._scanning or self._waiter is not None:
            self.refuse_taking()
        taken = list(self)
        self.clear()
        return taken

    def snapshot(self) -> list[Any]:
        """The queued messages, oldest first (for inspection and tests)."""
        return list(self)

    async def receive(self, predicate: Callable[[Any], bool] | None, timeout: float, start: int = 0) -> Any:
        """Take the oldest matching message (from index ``start`` on), waiting up to
        ``timeout`` seconds for one.

        Raises:
            TimeoutError: No matching message arrived in time.
        """
        found, message = await self._receive_until(predicate, timeout, start)
        if found:
            return message
        raise TimeoutError(f"no matching message within {timeout} s")

    async def _receive(self, predicate: Callable[[Any], bool] | None, start: int = 0) -> Any:
        """Take the oldest matching message from index ``start`` on, waiting as long as it
        takes. Only the reader removes messages, so the indices it has looked at stay valid
        while it waits."""
        items = self
        if predicate is None:
            if items:
                if self._waiter is not None:
                    raise _second_reader()
                budget = self._budget - 1
                if budget > 0:
                    self._budget = budget
                    return items.popleft()
                await self._yield()
                self._budget = BUDGET
                if items:
                    return items.popleft()
            while not items:
                waiter = self._wait()
                try:
                    await waiter
                finally:
                    self._waiter = None
            self._budget = BUDGET
            return items.popleft()
        if self._waiter is not None:
            raise _second_reader()
        index = start
        waited = False
        while True:
            if index < len(items):
                self._scanning = True
                try:
                    # The oldest candidate first, inline: it is the match nearly always.
                    found = index if predicate(items[index]) else _find(items, predicate, index + 1)
                finally:
                    self._scanning = False
                if found >= 0:
                    if waited:
                        self._budget = BUDGET
                    else:
                        budget = self._budget - 1
                        if budget <= 0:
                            await self._yield()
                            budget = BUDGET
                        self._budget = budget
                    message = items[found]
                    del items[found]
                    return message
                # Up to the end, messages the predicate sent to this mailbox included.
                index = len(items)
            waiter = self._wait()
            try:
                await waiter
            finally:
                self._waiter = None
            waited = True

    def _wait(self) -> Awaitable[None]:
        """What to await for the next message, with no deadline. The reader clears
        ``_waiter`` as it resumes (see ``_receive``), so a second reader is caught, here
        and before the await: its ``finally`` must not clear the first reader's waiter."""
        if self._waiter is not None:
            raise _second_reader()
        return self._park(None)

    async def _receive_until(
        self, predicate: Callable[[Any], bool] | None, timeout: float, start: int
    ) -> tuple[bool, Any]:
        items = self
        if self._waiter is not None:
            raise _second_reader()
        index = start
        deadline: float | None = None
        waited = False
        while True:
            if index < len(items):
                if predicate is None:
                    found = index
                else:
                    self._scanning = True
                    try:
                        found = index if predicate(items[index]) else _find(items, predicate, index + 1)
                    finally:
                        self._scanning = False
                if found >= 0:
                    if waited:
                        self._budget = BUDGET
                    else:
                        budget = self._budget - 1
                        if budget <= 0:
                            await self._yield()
                            budget = BUDGET
                        self._budget = budget
                    message = items[found]
                    del items[found]
                    return True, message
                index = len(items)
            if deadline is None:
                if timeout <= 0:
                    # Only a look; it still counts against the budget, as a receive.
                    budget = self._budget - 1
                    if budget <= 0:
                        await self._yield()
                        budget = BUDGET
                    self._budget = budget
                    return False, None
                deadline = self._now() + timeout
            elif self._now() >= deadline:
                return False, None
            await self._park(deadline)
            waited = True

    async def _yield(self) -> None:
        """The budget's checkpoint inside a receive, which may hold the index of the message
        it found: the mailbox counts as read meanwhile, so that another task that receives,
        calls, flushes or demonitors with flush is refused (it would shift the index), while
        a send appends and wakes nobody. A kill or cancellation raised here leaves the
        message in the mailbox: it is taken only after the yield."""
        self._waiter = _READING
        try:
            await self._checkpoint()
        finally:
            self._waiter = None

    def _now(self) -> float:
        raise NotImplementedError

    async def _checkpoint(self) -> None:
        """Let the other tasks run once; a pending kill or cancellation is raised here."""
        raise NotImplementedError

    async def _park(self, deadline: float | None) -> None:
        """Wait until a message arrives or the deadline (on the backend's clock) passes."""
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError


class _Reading:
    """``_waiter`` while the reader is not parked but holds its place in the mailbox: in a
    receive's budget checkpoint (either backend), or rescheduled by a send and not yet run
    (trio). A second reader is refused as if the reader were parked; a send wakes nobody."""

    __slots__ = ()

    def done(self) -> bool:
        # What asyncio's put asks of a parked reader's future: nothing to wake.
        return True

    def __repr__(self) -> str:
        return "<reading>"


_READING = _Reading()


def _second_reader() -> RuntimeError:
    return RuntimeError(
        "two tasks are receiving from one process's mailbox at once; a mailbox has one "
        "reader, its process: give each concurrent task a process of its own (Node.process())"
    )


_Future = asyncio.Future
_running_loop = asyncio.get_running_loop
_sleep = asyncio.sleep


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
        self.append(message)
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

    async def _checkpoint(self) -> None:
        await _sleep(0)

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
    """The reader parks with ``trio.lowlevel.wait_task_rescheduled``.

    Its names are bound once, when a node first runs on trio (``mailbox_class``); a wait
    with no deadline returns trio's trap itself, with no coroutine frame of its own.
    """

    __slots__ = ()

    def _now(self) -> float:
        return float(_trio.current_time())

    async def _checkpoint(self) -> None:
        await _trio.lowlevel.checkpoint()

    def _wait(self) -> Awaitable[None]:
        # _waiter stays set (to _READING once woken) until the reader runs again, so that a
        # second reader is caught even between the wake-up and the resume.
        if self._waiter is not None:
            raise _second_reader()
        lowlevel = _trio.lowlevel
        self._waiter = lowlevel.current_task()
        return lowlevel.wait_task_rescheduled(self._abort)  # type: ignore[no-any-return]

    def _abort(self, _: object) -> Any:
        self._waiter = None
        return _trio.lowlevel.Abort.SUCCEEDED

    async def _park(self, deadline: float | None) -> None:
        waiter = self._wait()
        try:
            if deadline is None:
                await waiter
            else:
                with _trio.move_on_at(deadline):
                    await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        task = self._waiter
        if task is _READING:
            return
        self._waiter = _READING
        _trio.lowlevel.reschedule(task)


#: The trio module, once a node has run on trio.
_trio: Any = None


def mailbox_class() -> type[Mailbox]:
    """The mailbox class for the async library running in this thread."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            global _trio
            _trio = trio
            return TrioMailbox
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("a Node runs inside anyio.run() on asyncio or trio") from None
    return AsyncioMailbox
