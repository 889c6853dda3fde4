"""Fairness: a process that keeps finding messages still lets the others run (ADR-0010).

Each busy loop here is bounded, so that a runtime that never yields fails the assertion
instead of hanging the test run.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcount_starter.runtime import BUDGET, Kill, Killed, Node, Pid, Process

pytestmark = pytest.mark.anyio

LOOPS = 20 * BUDGET


async def busy(p: Process, report: Pid) -> None:
    """Feed itself and take its own message, ``LOOPS`` times, then report how it went."""
    p.send(report, ("started", p.pid))
    for _ in range(LOOPS):
        p.send(p.pid, "again")
        await p.receive()
    p.send(report, ("finished", p.pid))


async def ticker(p: Process, report: Pid) -> None:
    """Report a tick each time it gets a turn, three times."""
    for _ in range(3):
        p.send(report, "tick")
        await anyio.lowlevel.checkpoint()


async def test_a_busy_receive_loop_lets_a_ticking_process_run() -> None:
    """The ticker's ticks arrive before the busy loop has finished."""
    async with Node() as node, node.process() as me:
        busy_pid = me.spawn(busy, me.pid)
        me.spawn(ticker, me.pid)
        seen = [await me.receive() for _ in range(5)]
        # Whichever ran first, the ticker (which yields between ticks) got all its turns
        # while the busy loop was still going.
        assert seen[-1] == ("finished", busy_pid), seen
        assert sorted(map(str, seen[:-1])) == sorted(map(str, ["tick"] * 3 + [("started", busy_pid)]))


async def test_a_busy_receive_loop_is_killed_at_its_next_receives() -> None:
    """A Kill sent while the target keeps finding messages ends it long before its loop does."""
    async with Node() as node, node.process() as me:
        target = me.spawn(busy, me.pid)
        assert await me.receive() == ("started", target)
        me.exit(target, Kill())
        assert await node.wait(target) == Killed()
        assert me.mailbox_size == 0  # no "finished": the kill landed inside the loop


async def test_a_kill_from_outside_any_process_lands_in_a_busy_loop() -> None:
    """``Node.exit(pid, Kill())`` from a plain task reaches a process that never parks."""
    async with Node() as node, node.process() as me:
        target = me.spawn(busy, me.pid)
        assert await me.receive() == ("started", target)
        node.exit(target, Kill())
        assert await node.wait(target) == Killed()
        assert me.mailbox_size == 0


async def test_a_cancel_scope_reaches_a_busy_receive_loop() -> None:
    """anyio cancellation of a ``node.process()`` block that keeps finding messages."""
    count = 0
    async with Node() as node, node.process() as me, anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(_cancel_soon, scope)
            for count in range(1, LOOPS + 1):
                me.send(me.pid, count)
                await me.receive()
        assert scope.cancelled_caught and count < LOOPS
        assert me.flush() == [count]  # cancelled before it took its last message: still there
        me.send(me.pid, "still works")
        assert await me.receive() == "still works"


async def _cancel_soon(scope: anyio.CancelScope) -> None:
    scope.cancel()


async def test_cancelling_a_task_parked_in_receive() -> None:
    """A task parked in ``receive`` is cancelled by its scope; the mailbox works afterwards."""
    async with Node() as node, node.process() as me, anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def reader() -> None:
            with scope:
                await me.receive(str)

        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert scope.cancelled_caught
        me.send(me.pid, "after")
        assert await me.receive(str) == "after"


async def test_a_call_finds_its_reply_behind_a_backlog_and_keeps_the_backlog() -> None:
    """A call with many unrelated messages queued returns the reply; the backlog stays, in order."""

    async def server(p: Process) -> None:
        async for call in p.messages():
            p.reply(call, ("ok", call.request))

    async with Node() as node, node.process() as me:
        for i in range(5000):
            me.send(me.pid, i)
        callee = me.spawn(server)
        assert await me.call(callee, "a") == ("ok", "a")
        assert await me.call(callee, "b", timeout=5) == ("ok", "b")
        assert me.info().monitors == ()
        assert [await me.receive() for _ in range(5000)] == list(range(5000))


@settings(max_examples=60, deadline=None)
@given(
    queued=st.lists(st.integers(0, 9), max_size=40),
    later=st.lists(st.integers(0, 9), max_size=10),
    wanted=st.integers(0, 9),
)
def test_selective_receive_matches_a_list_model(queued: list[int], later: list[int], wanted: int) -> None:
    """A selective receive takes the oldest match, whether it was queued before the receive
    or arrived while it waited; the rest stays in order."""

    async def main() -> list[Any]:
        async with Node() as node, node.process() as me:

            async def feed(p: Process) -> None:
                for value in later:
                    p.send(me.pid, value)
                    await anyio.lowlevel.checkpoint()
                p.send(me.pid, wanted)
                p.send(me.pid, wanted)

            for value in queued:
                me.send(me.pid, value)
            feeder = me.spawn(feed)
            first = await me.receive(int, where=lambda m: m == wanted)
            second = await me.receive(int, where=lambda m: m == wanted, timeout=5)
            await node.wait(feeder)
            rest = [await me.receive() for _ in range(me.mailbox_size)]
            return [first, second, rest]

    model = [*queued, *later, wanted, wanted]
    model.remove(wanted)
    model.remove(wanted)
    for backend in ("asyncio", "trio"):
        assert anyio.run(main, backend=backend) == [wanted, wanted, model]
