"""The node: its lifetime, shutdown order, ``node.process()``, and the recently-dead table."""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from refcount_starter.runtime import (
    Down,
    ExitSignal,
    Kill,
    Killed,
    Node,
    NodeNotRunning,
    NoProc,
    Normal,
    Pid,
    Process,
    ProcessExit,
    Shutdown,
)

from .helpers import exit_with, idle

pytestmark = pytest.mark.anyio


async def test_leaving_the_node_stops_every_process() -> None:
    """Leaving ``async with Node()`` stops every process and waits for each to exit."""
    exits: list[object] = []

    async def record_exit(p: Process) -> None:
        try:
            await idle(p)
        finally:
            exits.append(p.pid)

    async with Node() as node:
        pids = [node.spawn(record_exit) for _ in range(3)]

        async def spawn_children(p: Process) -> None:
            for _ in range(2):
                pids.append(p.spawn(record_exit))
            await idle(p)

        pids.append(node.spawn(spawn_children))
        await anyio.wait_all_tasks_blocked()
    assert sorted(exits) == sorted(p for p in pids if p != pids[3])
    assert node.process_count == 0
    assert all(isinstance(node.why_dead(p).last_reason, Shutdown | Killed) for p in pids)


async def test_top_level_processes_stop_in_reverse_spawn_order() -> None:
    """Top-level processes get Shutdown newest first, each waited for before the next."""
    order: list[int] = []

    async def numbered(p: Process, n: int) -> None:
        try:
            await idle(p)
        finally:
            order.append(n)

    async with Node() as node:
        for n in range(5):
            node.spawn(numbered, n)
        await anyio.wait_all_tasks_blocked()
    assert order == [4, 3, 2, 1, 0]


async def test_a_trapping_process_gets_shutdown_from_the_node_and_can_clean_up() -> None:
    """At node exit a trapping top-level process receives ExitSignal(node, Shutdown)."""
    seen: list[object] = []

    async def graceful(p: Process) -> None:
        signal = await p.receive(ExitSignal)
        seen.append(signal.reason)
        raise ProcessExit(signal.reason)

    async with Node() as node:
        pid = node.spawn(graceful, trap_exits=True)
        await anyio.wait_all_tasks_blocked()
    assert len(seen) == 1 and isinstance(seen[0], Shutdown)
    assert node.why_dead(pid).last_reason == seen[0]


async def test_a_process_that_ignores_shutdown_is_killed_after_the_timeout() -> None:
    """A trapping process that does not stop within shutdown_timeout is killed."""
    async with Node(shutdown_timeout=0.05) as node:
        pid = node.spawn(idle, trap_exits=True)
        await anyio.wait_all_tasks_blocked()
    assert node.why_dead(pid).last_reason == Killed()


async def test_an_orphan_gets_shutdown_too() -> None:
    """Regression: a process whose spawner already died gets Shutdown, not a bare Kill."""
    got: list[object] = []

    async def trapping_child(p: Process) -> None:
        signal = await p.receive(ExitSignal)
        got.append(signal.reason)

    async with Node() as node:

        async def parent(p: Process) -> None:
            p.spawn(trapping_child, trap_exits=True)
            await idle(p)

        node.spawn(parent)
        await anyio.wait_all_tasks_blocked()
    assert got == [Shutdown("node stopping")]


async def test_a_spawned_child_left_by_a_live_parent_is_killed() -> None:
    """A child its parent does not stop is killed once the node's Shutdown round is over."""
    async with Node() as node:
        child_box: list[Pid] = []

        async def parent(p: Process) -> None:
            child_box.append(p.spawn(idle, trap_exits=True))
            await idle(p)

        parent_pid = node.spawn(parent, trap_exits=True)  # traps: ignores the Shutdown...
        await anyio.wait_all_tasks_blocked()
        node.shutdown_timeout = 0.05  # ...until it is killed
    assert node.why_dead(parent_pid).last_reason == Killed()
    assert node.why_dead(child_box[0]).last_reason == Killed()


async def test_node_process_exits_normal_when_the_block_ends() -> None:
    """A ``node.process()`` block that ends normally exits Normal for its watchers."""
    async with Node() as node, node.process() as watcher:
        async with node.process() as inner:
            ref = watcher.monitor(inner.pid)
        assert await watcher.receive(timeout=0) == Down(ref, inner.pid, Normal())
        assert not node.is_alive(inner.pid)


async def test_node_process_raises_process_exit_when_killed() -> None:
    """An exit signal that kills a ``node.process()`` block raises ProcessExit out of it."""
    async with Node() as node:
        with pytest.raises(ProcessExit) as info:
            async with node.process() as me:
                node.exit(me.pid, Shutdown("from outside"))
                await idle(me)
        assert info.value.reason == Shutdown("from outside")
        with pytest.raises(ProcessExit) as info:
            async with node.process(trap_exits=True) as me:
                node.exit(me.pid, Kill())
                await anyio.sleep_forever()
        assert info.value.reason == Killed()
        assert node.process_count == 0


async def test_node_process_killed_without_awaiting_still_raises() -> None:
    """A block killed but never reaching a checkpoint still raises ProcessExit when it ends."""
    async with Node() as node:
        with pytest.raises(ProcessExit):
            async with node.process() as me:
                node.exit(me.pid, Shutdown())


async def test_an_exception_in_node_process_exits_crashed_and_propagates() -> None:
    """An exception leaving a ``node.process()`` block propagates; watchers see Crashed."""
    async with Node() as node, node.process() as watcher:
        with pytest.raises(KeyError):
            async with node.process() as inner:
                ref = watcher.monitor(inner.pid)
                raise KeyError("oops")
        down = await watcher.receive(timeout=0)
        assert down.ref == ref and down.reason.exc_type == "KeyError"


async def test_raising_process_exit_in_node_process_sets_its_reason() -> None:
    """Raising ProcessExit(reason) inside a ``node.process()`` block exits with that reason."""
    async with Node() as node, node.process() as watcher:
        async with node.process() as inner:
            ref = watcher.monitor(inner.pid)
            raise ProcessExit(Shutdown("done here"))
        assert await watcher.receive(timeout=0) == Down(ref, inner.pid, Shutdown("done here"))


async def test_a_crash_never_stops_the_node() -> None:
    """Processes keep running after another one crashed."""
    logging.getLogger("refcount_starter.runtime.node").disabled = True
    try:
        async with Node() as node, node.process() as me:

            async def crash(p: Process) -> None:
                raise RuntimeError("boom")

            await node.wait(node.spawn(crash))
            assert await node.wait(me.spawn(exit_with, Normal())) == Normal()
    finally:
        logging.getLogger("refcount_starter.runtime.node").disabled = False


async def test_operations_outside_the_node_block_are_refused() -> None:
    """Spawning or entering a process on a node that is not running raises NodeNotRunning."""
    node = Node()
    with pytest.raises(NodeNotRunning, match=repr(node.name)):
        node.spawn(idle)
    async with node:
        pass
    with pytest.raises(NodeNotRunning):
        async with node.process():
            pass


async def test_a_node_is_entered_once() -> None:
    """Entering a Node a second time is refused."""
    async with Node() as node:
        with pytest.raises(RuntimeError, match="already running"):
            await node.__aenter__()


async def test_the_recently_dead_table_is_bounded() -> None:
    """The node remembers only the last dead_table_size dead pids; older ones become NoProc(pid)."""
    async with Node(dead_table_size=3) as node:
        pids = []
        for n in range(5):
            pid = node.spawn(exit_with, Shutdown(n))
            await node.wait(pid)
            pids.append(pid)
        remembered = [node.why_dead(pid).last_reason for pid in pids]
        assert remembered == [None, None, Shutdown(2), Shutdown(3), Shutdown(4)]
        assert node.why_dead(pids[0]) == NoProc(pids[0])
        assert node.why_dead(pids[4]).last_reason == Shutdown(4)
        assert await node.wait(pids[0]) == NoProc(pids[0])
        assert await node.wait(pids[4]) == Shutdown(4)


async def test_a_zero_dead_table_remembers_nothing() -> None:
    """With dead_table_size=0 every dead pid is a plain NoProc(pid)."""
    async with Node(dead_table_size=0) as node:
        pid = node.spawn(exit_with, Normal())
        await node.wait(pid)
        assert node.why_dead(pid) == NoProc(pid)


async def test_wait_returns_the_reason_whether_called_before_or_after_the_exit() -> None:
    """``node.wait`` gives the exit reason both while the process runs and after it exited."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_with, Shutdown("w"))
        assert await node.wait(pid) == Shutdown("w")
        assert await node.wait(pid) == Shutdown("w")


async def test_introspection() -> None:
    """is_alive, processes, process_count and repr describe the live processes."""
    async with Node("inspect") as node, node.process() as me:
        pid = me.spawn(idle)
        assert node.is_alive(pid) and node.processes() == [me.pid, pid]
        assert node.process_count == 2 and "inspect" in repr(node)
        assert "alive" in repr(me)
        me.exit(pid, Kill())
        await node.wait(pid)
        assert not node.is_alive(pid) and node.processes() == [me.pid]


async def test_is_exiting_is_true_from_the_kill_to_the_exit() -> None:
    """A process killed by an exit signal is exiting until it has stopped; one that traps the
    signal, or was never signalled, is not."""
    async with Node() as node, node.process() as me:
        doomed = me.spawn(idle)
        trapper = me.spawn(idle, trap_exits=True)
        assert not node.is_exiting(doomed) and not node.is_exiting(trapper)
        me.exit(doomed, Shutdown())
        me.exit(trapper, Shutdown())
        assert node.is_exiting(doomed) and not node.is_exiting(trapper)
        assert await node.wait(doomed) == Shutdown()
        assert not node.is_exiting(doomed)  # gone: no longer exiting
        with pytest.raises(TypeError, match="is_exiting takes a Pid"):
            node.is_exiting("<bench.1.2>")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "a.b"}, ValueError),
        ({"name": ""}, ValueError),
        # Not printable: a control character, NUL, a line separator, a no-break space.
        ({"name": "a\rb"}, ValueError),
        ({"name": "a\x00"}, ValueError),
        ({"name": "\u2028"}, ValueError),
        ({"name": "a\xa0b"}, ValueError),
        ({"name": 5}, TypeError),
        ({"name": b"a"}, TypeError),
        ({"dead_table_size": 1.5}, TypeError),
        ({"shutdown_timeout": -1}, ValueError),
        ({"shutdown_timeout": "5"}, TypeError),
        ({"dead_table_size": -1}, ValueError),
    ],
)
def test_bad_node_parameters_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    """A bad Node parameter raises a typed error naming the value."""
    with pytest.raises(error, match=re.escape(repr(next(iter(kwargs.values()))))):
        Node(**kwargs)  # type: ignore[arg-type]


async def test_a_cancelled_process_block_exits_shutdown_not_normal() -> None:
    """Regression: a node.process() block cancelled from outside exited Normal, so its links survived."""
    async with Node() as node:
        pids: dict[str, Pid] = {}
        with anyio.move_on_after(0.01):
            async with node.process() as me:
                pids["me"] = me.pid
                pids["worker"] = me.spawn_link(idle)
                await anyio.sleep_forever()
        assert await node.wait(pids["me"]) == Shutdown("cancelled")
        assert await node.wait(pids["worker"]) == Shutdown("cancelled")
