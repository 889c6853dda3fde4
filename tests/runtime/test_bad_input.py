"""Bad input gets a clear typed error naming the value, and the node keeps running."""

from __future__ import annotations

import functools
import math
from typing import Any

import anyio
import pytest

from refcount_starter.runtime import (
    CallFailed,
    NameNotRegistered,
    NameTaken,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    ProcessNotAlive,
    Shutdown,
)

from .helpers import echo, exit_with, idle

pytestmark = pytest.mark.anyio


async def still_works(node: Node, me: Process) -> None:
    """Assert that the node still runs a round trip after a refused operation."""
    assert await me.call(me.spawn(echo), "ok", timeout=5) == ("echo", "ok")
    assert node.is_alive(me.pid)


@pytest.mark.parametrize("bad", [42, ("a",), (1, "node"), ("name", 2), ("a", "b", "c"), None, b"name"])
async def test_send_to_a_malformed_address(bad: Any) -> None:
    """Sending to something that is not a pid, a name or (name, node) raises TypeError naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="Pid, a registered name or a \\(name, node\\) pair") as info:
            me.send(bad, "msg")
        assert repr(bad) in str(info.value)
        with pytest.raises(TypeError):
            node.send(bad, "msg")
        await still_works(node, me)


async def test_send_to_an_unregistered_name() -> None:
    """Sending to a local name nobody holds raises NameNotRegistered naming the name and node."""
    async with Node("here") as node, node.process() as me:
        with pytest.raises(NameNotRegistered, match=r"'ghost'.*'here'"):
            me.send("ghost", "msg")
        with pytest.raises(NameNotRegistered):
            me.send(("ghost", "here"), "msg")
        await still_works(node, me)


@pytest.mark.parametrize("bad", [None, 42, "fn", object()])
async def test_spawn_of_a_non_callable(bad: Any) -> None:
    """Spawning something that is not callable raises TypeError naming it and starts nothing."""
    async with Node() as node, node.process() as me:
        before = node.process_count
        with pytest.raises(TypeError, match="async callable") as info:
            me.spawn(bad)
        assert repr(bad) in str(info.value)
        with pytest.raises(TypeError):
            node.spawn(bad)
        with pytest.raises(TypeError):
            me.spawn_link(bad)
        with pytest.raises(TypeError):
            me.spawn_monitor(bad)
        assert node.process_count == before and me.info().links == () and me.info().monitors == ()
        await still_works(node, me)


async def test_spawning_a_plain_function_is_refused_at_the_call() -> None:
    """A plain ``def`` is refused with a TypeError naming it at spawn; nothing starts."""

    def not_async(p: Process) -> None:
        pass

    async with Node() as node, node.process() as me:
        before = node.process_count
        for spawn in (me.spawn, me.spawn_link, me.spawn_monitor, node.spawn):
            with pytest.raises(TypeError, match="not_async"):
                spawn(not_async)
        with pytest.raises(TypeError, match="async"):
            me.spawn_for(me.pid, me.reserve_monitor(), not_async)
        assert node.process_count == before and me.info().links == ()
        await still_works(node, me)


async def test_async_callables_of_every_shape_are_accepted() -> None:
    """A partial of an async function, a decorated one, and an object with an async
    ``__call__`` all run as processes."""

    async def report(p: Process, to: Pid, word: str) -> None:
        p.send(to, word)

    @functools.wraps(report)
    def decorated(p: Process, to: Pid, word: str) -> Any:
        return report(p, to, word)

    class Callable:
        async def __call__(self, p: Process, to: Pid, word: str) -> None:
            p.send(to, word)

    async with Node() as node, node.process() as me:
        me.spawn(functools.partial(report, word="partial"), me.pid)
        me.spawn(decorated, me.pid, "decorated")
        me.spawn(Callable(), me.pid, "object")
        assert sorted([await me.receive(timeout=5) for _ in range(3)]) == ["decorated", "object", "partial"]


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, -math.inf])
async def test_negative_timeout_for_receive_and_call(bad: float) -> None:
    """A negative or NaN timeout for receive or call raises ValueError naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(ValueError, match=repr(bad).replace("-", "\\-")):
            await me.receive(timeout=bad)
        server = me.spawn(echo)
        with pytest.raises(ValueError, match="timeout"):
            await me.call(server, "x", timeout=bad)
        assert me.info().monitors == ()  # a refused call sets no monitor
        await still_works(node, me)


async def test_non_numeric_timeout_for_call() -> None:
    """A call timeout that is not a number raises TypeError naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="'5'"):
            await me.call(me.spawn(echo), "x", timeout="5")  # type: ignore[arg-type]
        await still_works(node, me)


async def test_calling_a_dead_process() -> None:
    """Calling a dead process raises CallFailed carrying NoProc, and the caller runs on."""
    async with Node() as node, node.process() as me:
        dead = me.spawn(exit_with, Normal())
        await node.wait(dead)
        with pytest.raises(CallFailed, match="NoProc") as info:
            await me.call(dead, "x", timeout=5)
        assert info.value.reason == NoProc(dead, Normal(), info.value.reason.died_at)  # type: ignore[attr-defined]
        await still_works(node, me)


async def test_call_to_a_malformed_address() -> None:
    """A call to something that is not an address raises TypeError naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="42"):
            await me.call(42, "x")  # type: ignore[arg-type]
        assert me.info().monitors == ()
        await still_works(node, me)


async def test_register_of_a_dead_pid() -> None:
    """Registering a dead pid raises ProcessNotAlive naming it; the name stays free."""
    async with Node() as node, node.process() as me:
        dead = me.spawn(exit_with, Shutdown())
        await node.wait(dead)
        with pytest.raises(ProcessNotAlive, match=str(dead)):
            node.register("svc", dead)
        with pytest.raises(TypeError, match="'pid'"):
            node.register("svc", "pid")  # type: ignore[arg-type]
        me.register("svc")
        await still_works(node, me)


async def test_duplicate_name() -> None:
    """Registering a taken name raises NameTaken naming the name and its holder."""
    async with Node() as node, node.process() as me:
        holder = me.spawn(idle, name="svc")
        with pytest.raises(NameTaken) as info:
            me.register("svc")
        assert (info.value.name, info.value.holder) == ("svc", holder)
        assert "'svc'" in str(info.value) and str(holder) in str(info.value)
        await still_works(node, me)


@pytest.mark.parametrize("bad", ["normal", None, 0, Normal, Exception("x")])
async def test_exit_with_a_non_reason(bad: Any) -> None:
    """An exit signal whose reason is not an ExitReason raises TypeError naming it; nothing is sent."""
    async with Node() as node, node.process() as me:
        target = me.spawn(idle)
        with pytest.raises(TypeError, match="ExitReason") as info:
            me.exit(target, bad)
        assert repr(bad) in str(info.value)
        with pytest.raises(TypeError):
            node.exit(target, bad)
        assert node.is_alive(target)
        await still_works(node, me)


@pytest.mark.parametrize("bad", ["pid", 42, None, ("n", 1, 1)])
async def test_pid_operations_with_a_non_pid(bad: Any) -> None:
    """link, unlink and exit given something that is not a Pid raise TypeError naming it."""
    async with Node() as node, node.process() as me:
        for operation in (me.link, me.unlink, lambda pid: me.exit(pid, Shutdown())):
            with pytest.raises(TypeError) as info:
                operation(bad)
            assert repr(bad) in str(info.value)
        with pytest.raises(TypeError):
            me.monitor(bad if not isinstance(bad, str) else 42)
        with pytest.raises(TypeError, match="'ref'"):
            me.demonitor("ref")  # type: ignore[arg-type]
        assert me.info().links == () and me.info().monitors == ()
        await still_works(node, me)


async def test_monitor_of_a_remote_name_is_refused() -> None:
    """Monitoring (or calling) a name on another node raises TypeError that says to use its pid."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="use its pid"):
            me.monitor(("svc", "elsewhere"))
        with pytest.raises(TypeError, match="use its pid"):
            await me.call(("svc", "elsewhere"), "x", timeout=1)
        await still_works(node, me)


HUGE = 10**400  # an int no float can hold: float(HUGE) raises OverflowError


async def test_a_timeout_too_large_for_a_float_waits_for_ever() -> None:
    """Regression: receive and call with an int timeout beyond a float's range raised an
    untyped OverflowError, a call only after its request was sent; it is math.inf."""
    async with Node() as node, node.process() as me:
        me.send(me.pid, "queued")
        assert await me.receive(timeout=HUGE) == "queued"
        callee = me.spawn(echo)
        assert await me.call(callee, "q", timeout=HUGE) == ("echo", "q")
        assert me.info().monitors == ()

        async def later() -> None:
            await anyio.wait_all_tasks_blocked()
            node.send(me.pid, "late")

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            assert await me.receive(str, timeout=HUGE) == "late"
        await still_works(node, me)


async def test_a_negative_timeout_too_large_for_a_float_is_refused_naming_it() -> None:
    """A ValueError that names the value as given, before the request is sent."""
    async with Node() as node, node.process() as me:
        with pytest.raises(ValueError, match=str(-HUGE)[:40]):
            await me.receive(timeout=-HUGE)
        callee = me.spawn(echo)
        with pytest.raises(ValueError, match=str(-HUGE)[:40]):
            await me.call(callee, "never sent", timeout=-HUGE)
        await anyio.wait_all_tasks_blocked()
        assert node.info(callee).mailbox_size == 0
        assert me.info().monitors == ()
        await still_works(node, me)


def test_a_shutdown_timeout_too_large_for_a_float_is_infinity() -> None:
    """Regression: Node(shutdown_timeout=10**400) raised OverflowError."""
    assert Node(shutdown_timeout=HUGE).shutdown_timeout == math.inf
    with pytest.raises(ValueError, match=str(-HUGE)[:40]):
        Node(shutdown_timeout=-HUGE)


@pytest.mark.parametrize("bad", ["pid", 42, None, ("n", 1, 1)])
async def test_node_queries_of_a_non_pid(bad: Any) -> None:
    """Regression: is_alive and wait raised AttributeError, why_dead answered NoProc('x');
    each now raises TypeError naming the value, as info and is_exiting do."""
    async with Node() as node, node.process() as me:
        for query in (node.is_alive, node.why_dead, node.is_exiting, node.info):
            with pytest.raises(TypeError, match="takes a Pid") as info:
                query(bad)
            assert repr(bad) in str(info.value)
        with pytest.raises(TypeError, match="wait takes a Pid") as info:
            await node.wait(bad)
        assert repr(bad) in str(info.value)
        await still_works(node, me)


@pytest.mark.parametrize("bad", [["x"], None, 1, {}, b"x"])
async def test_registry_lookups_of_a_non_name(bad: Any) -> None:
    """Regression: whereis and unregister of a list raised a bare "unhashable type"; a name
    that is not a str raises TypeError naming it, as register does."""
    async with Node() as node, node.process() as me:
        me.register("x")
        for lookup in (node.whereis, node.unregister, me.whereis):
            with pytest.raises(TypeError, match="a registered name") as info:
                lookup(bad)
            assert repr(bad) in str(info.value)
        assert node.whereis("x") == me.pid
        await still_works(node, me)
