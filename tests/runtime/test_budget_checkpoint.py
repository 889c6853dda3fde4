"""A receive at its budget checkpoint, with another task of the same process at work.

A receive that finds its message after the budget is spent yields once before it takes the
message, holding the message's index (ADR-0010, decisions 11 and 13). During that yield the
mailbox counts as read: another task that receives, calls, flushes or demonitors with flush
is refused, a send is not, and a kill or cancellation leaves the message queued. Each on
asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from refcount_starter.runtime import BUDGET, Down, Kill, Node, Pid, Process, ProcessExit
from refcount_starter.runtime.mailbox import AsyncioMailbox, TrioMailbox

from .helpers import echo

pytestmark = pytest.mark.anyio


class Meeting:
    """Holds the first receive that reaches its budget checkpoint there, after its yield,
    until ``release`` is set: the other tasks act at a known point instead of a lucky one."""

    def __init__(self) -> None:
        self.reached = anyio.Event()
        self.release = anyio.Event()
        self.armed = True


def hold_first_checkpoint(monkeypatch: pytest.MonkeyPatch) -> Meeting:
    """Make the next budget checkpoint of any mailbox wait for the meeting's ``release``."""
    meeting = Meeting()
    for cls in (AsyncioMailbox, TrioMailbox):
        yield_once = cls._checkpoint

        async def checkpoint(self: Any, yield_once: Callable[[Any], Awaitable[None]] = yield_once) -> None:
            await yield_once(self)
            if meeting.armed:
                meeting.armed = False
                meeting.reached.set()
                await meeting.release.wait()

        monkeypatch.setattr(cls, "_checkpoint", checkpoint)
    return meeting


async def spend_budget(me: Process) -> None:
    """Receive until the next receive that finds a message is a checkpoint."""
    for n in range(BUDGET - 1):
        me.send(me.pid, n)
        assert await me.receive() == n


FIRST: dict[str, tuple[Callable[[Process], Awaitable[Any]], Any]] = {
    # The receive that reaches the checkpoint, and the message it must take.
    "receive(int)": (lambda me: me.receive(int), 1),
    "receive(int, timeout=5)": (lambda me: me.receive(int, timeout=5), 1),
    "receive()": (lambda me: me.receive(), "a"),
    "receive(timeout=5)": (lambda me: me.receive(timeout=5), "a"),
}


async def second_receive_now(me: Process, ref: Any, callee: Pid) -> object:
    return await me.receive(timeout=0)


async def second_receive(me: Process, ref: Any, callee: Pid) -> object:
    return await me.receive()


async def second_flush(me: Process, ref: Any, callee: Pid) -> object:
    return me.flush()


async def second_demonitor(me: Process, ref: Any, callee: Pid) -> object:
    me.demonitor(ref)  # with flush: it would take the queued Down
    return None


async def second_call(me: Process, ref: Any, callee: Pid) -> object:
    return await me.call(callee, "never sent", timeout=5)


SECOND = {
    "receive(timeout=0)": second_receive_now,
    "receive()": second_receive,
    "flush()": second_flush,
    "demonitor(flush)": second_demonitor,
    "call": second_call,
}


@pytest.mark.parametrize("second", list(SECOND))
@pytest.mark.parametrize("first", list(FIRST))
async def test_a_second_task_is_refused_while_a_receive_yields_at_its_budget_checkpoint(
    monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    """Regression: a second task that took, flushed or shifted messages during the yield
    made the first receive return a wrong message (a str for ``receive(int)``), fail with
    an IndexError, or a call miss its reply; now the second task gets the RuntimeError."""
    receive_first, expected = FIRST[first]
    async with Node() as node, node.process() as me:
        callee = me.spawn(echo)
        await spend_budget(me)
        me.send(me.pid, "a")
        ref = me.monitor(Pid(node.name, node.incarnation, 10**6))  # its Down is queued at once
        me.send(me.pid, 1)
        me.send(me.pid, "b")
        before = me.queued()
        assert [type(m) for m in before] == [str, Down, int, str]
        meeting = hold_first_checkpoint(monkeypatch)
        got: list[Any] = []

        async def reader() -> None:
            got.append(await receive_first(me))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await meeting.reached.wait()
            with pytest.raises(RuntimeError, match="one reader"):
                await SECOND[second](me, ref, callee)
            me.send(me.pid, "sent meanwhile")  # a send is never refused
            meeting.release.set()
        assert got == [expected]
        left = [m for m in before if m != expected] + ["sent meanwhile"]
        assert me.queued() == left
        # A refused call sent nothing and left no monitor.
        await anyio.wait_all_tasks_blocked()
        assert node.info(callee).mailbox_size == 0
        assert node.info(callee).monitored_by == ()
        assert me.info().monitors == ()
        # The mailbox is read normally again.
        assert await me.receive(timeout=0) == left[0]


@pytest.mark.parametrize("first", list(FIRST))
async def test_a_kill_landing_at_the_budget_checkpoint_leaves_the_message_queued(first: str) -> None:
    """The message found before the yield is taken only after it: a kill raised there
    leaves it in the mailbox, in order."""
    receive_first, _ = FIRST[first]
    async with Node() as node:
        with pytest.raises(ProcessExit):
            async with node.process() as me:
                me.send(me.pid, "a")
                me.send(me.pid, 1)
                node.exit(me.pid, Kill())  # empties the budget: the next receive yields first
                await receive_first(me)
        assert me.queued() == ["a", 1]
