"""Mailboxes: receive order, selective receive, timeouts and ``messages()``."""

from __future__ import annotations

import math

import anyio
import pytest

from refcount_starter.runtime import Node, Pid, Process

pytestmark = pytest.mark.anyio


async def send_all(p: Process, to: Pid, messages: list[object]) -> None:
    for message in messages:
        p.send(to, message)


async def test_receive_takes_the_oldest_message() -> None:
    """Plain receive returns messages in the order they arrived."""
    async with Node() as node, node.process() as me:
        for i in range(5):
            me.send(me.pid, i)
        assert [await me.receive() for _ in range(5)] == [0, 1, 2, 3, 4]
        assert me.mailbox_size == 0


async def test_selective_receive_by_type_leaves_the_rest_in_order() -> None:
    """Receiving by type takes the oldest match; the other messages stay, in order."""
    async with Node() as node, node.process() as me:
        for message in ["a", 1, "b", 2, "c"]:
            me.send(me.pid, message)
        assert await me.receive(int) == 1
        assert await me.receive(int) == 2
        assert [await me.receive() for _ in range(3)] == ["a", "b", "c"]


async def test_selective_receive_by_tuple_of_types_and_predicate() -> None:
    """A tuple of types and a ``where`` predicate combine; non-matching messages stay."""
    async with Node() as node, node.process() as me:
        for message in [1.5, "x", 3, 4, b"y"]:
            me.send(me.pid, message)
        assert await me.receive((str, bytes)) == "x"
        assert await me.receive(int, where=lambda n: n % 2 == 0) == 4
        assert await me.receive(where=lambda m: isinstance(m, bytes)) == b"y"
        assert me.queued() == [1.5, 3]


async def test_selective_receive_waits_past_non_matching_arrivals() -> None:
    """A parked selective receive skips later non-matching arrivals and takes the match."""
    async with Node() as node, node.process() as me:
        me.spawn(send_all, me.pid, ["a", "b", 7, "c"])
        assert await me.receive(int) == 7
        assert [await me.receive() for _ in range(3)] == ["a", "b", "c"]


async def test_receive_wakes_when_a_message_arrives_later() -> None:
    """A receive parked on an empty mailbox wakes for a message sent afterwards."""
    async with Node() as node, node.process() as me:

        async def waiter(p: Process) -> None:
            message = await p.receive()
            p.send(me.pid, ("got", message))

        pid = me.spawn(waiter)
        await anyio.wait_all_tasks_blocked()
        me.send(pid, "hello")
        assert await me.receive(timeout=5) == ("got", "hello")


async def test_timeout_zero_only_looks() -> None:
    """``timeout=0`` returns a queued match at once and raises TimeoutError when there is none."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TimeoutError):
            await me.receive(timeout=0)
        me.send(me.pid, "x")
        with pytest.raises(TimeoutError):
            await me.receive(int, timeout=0)
        assert await me.receive(str, timeout=0) == "x"


async def test_receive_timeout_raises_timeout_error_and_keeps_messages() -> None:
    """A receive that times out raises TimeoutError and leaves non-matching messages in place."""
    async with Node() as node, node.process() as me:
        me.send(me.pid, "keep")
        with pytest.raises(TimeoutError, match=r"0\.01"):
            await me.receive(int, timeout=0.01)
        assert await me.receive(timeout=0) == "keep"


async def test_receive_with_timeout_gets_a_message_that_arrives_in_time() -> None:
    """A receive with a generous timeout returns a message sent while it waits."""
    async with Node() as node, node.process() as me:
        me.spawn(send_all, me.pid, ["late"])
        assert await me.receive(timeout=5) == "late"


async def test_messages_iterates_in_order() -> None:
    """``messages()`` yields every message in arrival order, waiting for more."""
    async with Node() as node, node.process() as me:

        async def echo_until_stop(p: Process) -> None:
            async for message in p.messages():
                if message == "stop":
                    return
                p.send(me.pid, message)

        pid = me.spawn(echo_until_stop)
        ref = me.monitor(pid)
        for i in range(10):
            me.send(pid, i)
        me.send(pid, "stop")
        assert [await me.receive(int) for _ in range(10)] == list(range(10))
        down = await me.receive(timeout=5)
        assert down.ref == ref


async def test_messages_from_outside_a_process_arrive() -> None:
    """``node.send`` from outside any process delivers like a process send."""
    async with Node() as node, node.process() as me:
        node.send(me.pid, "from outside")
        assert await me.receive(timeout=0) == "from outside"


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan])
async def test_negative_or_nan_timeout_is_refused(bad: float) -> None:
    """A negative or NaN receive timeout raises ValueError naming it, and the mailbox still works."""
    async with Node() as node, node.process() as me:
        with pytest.raises(ValueError, match="timeout"):
            await me.receive(timeout=bad)
        me.send(me.pid, "ok")
        assert await me.receive(timeout=0) == "ok"


async def test_non_numeric_timeout_is_refused() -> None:
    """A timeout that is not a number raises TypeError naming the value."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="'soon'"):
            await me.receive(timeout="soon")  # type: ignore[arg-type]


async def test_bad_match_is_refused() -> None:
    """Matching on something that is not a type, or a non-callable where, raises TypeError."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="'str'"):
            await me.receive("str", timeout=0)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="3"):
            await me.receive((int, 3), timeout=0)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="where"):
            await me.receive(int, where=5, timeout=0)  # type: ignore[arg-type]
