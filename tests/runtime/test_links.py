"""Links: bidirectional exit propagation, trapping, and linking to dead pids."""

from __future__ import annotations

import time

import anyio
import pytest

from refcount_starter.runtime import (
    ExitSignal,
    Killed,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    Shutdown,
)

from .helpers import exit_on_message, exit_with, forward, idle

pytestmark = pytest.mark.anyio


async def test_linked_normal_exit_is_ignored_by_a_non_trapping_process() -> None:
    """A linked process exiting Normal does not stop a non-trapping partner."""
    async with Node() as node, node.process() as me:
        partner = me.spawn(forward, me.pid)
        ender = me.spawn(exit_on_message)

        async def link_both(p: Process) -> None:
            p.link(partner)
            p.link(ender)
            p.send(me.pid, "linked")
            await idle(p)

        middle = me.spawn(link_both)
        assert await me.receive(str, timeout=5) == "linked"
        me.send(ender, Normal())
        assert await node.wait(ender) == Normal()
        await anyio.wait_all_tasks_blocked()
        assert node.is_alive(middle) and node.is_alive(partner)


async def test_linked_shutdown_kills_a_non_trapping_process() -> None:
    """A linked process exiting Shutdown stops a non-trapping partner with Shutdown."""
    async with Node() as node, node.process() as me:
        ender = me.spawn(exit_on_message)

        async def linked(p: Process) -> None:
            p.link(ender)
            await idle(p)

        victim = me.spawn(linked)
        await anyio.wait_all_tasks_blocked()
        me.send(ender, Shutdown("bye"))
        assert await node.wait(victim) == Shutdown("bye")


async def test_links_are_bidirectional() -> None:
    """Whichever side of a link dies, the other gets its exit signal."""
    async with Node() as node, node.process(trap_exits=True) as me:
        a = me.spawn(exit_on_message)
        b = me.spawn(exit_on_message)
        me.link(a)
        me.send(a, Shutdown(1))
        assert await me.receive(ExitSignal, timeout=5) == ExitSignal(a, Shutdown(1))

        async def link_then_die(p: Process) -> None:
            p.link(me.pid)
            raise ValueError("boom")

        c = me.spawn(link_then_die)
        signal = await me.receive(ExitSignal, timeout=5)
        assert signal.sender == c and signal.reason.exc_type == "ValueError"
        me.exit(b, Shutdown())
        assert await node.wait(b) == Shutdown()


async def test_a_trapping_process_receives_normal_exits_as_messages() -> None:
    """A trapping process gets ExitSignal(sender, Normal()) from a linked process that returns."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn_link(exit_on_message)
        me.send(pid, Normal())
        assert await me.receive(timeout=5) == ExitSignal(pid, Normal())


async def test_a_linked_crash_reaches_a_trapping_process_with_its_traceback() -> None:
    """A linked crash arrives as ExitSignal with Crashed(type, message, traceback)."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn_link(exit_on_message)
        me.send(pid, "boom")
        signal = await me.receive(ExitSignal, timeout=5)
        assert signal.sender == pid
        assert (signal.reason.exc_type, signal.reason.message) == ("RuntimeError", "asked to crash: 'boom'")
        assert "Traceback" in signal.reason.traceback and "exit_on_message" in signal.reason.traceback


async def test_link_to_a_dead_pid_delivers_noproc_at_once_with_what_the_node_remembers() -> None:
    """Linking to a dead pid gives ExitSignal(pid, NoProc(pid, last_reason, died_at)) at once."""
    async with Node() as node, node.process(trap_exits=True) as me:
        before = time.time()
        dead = me.spawn(exit_with, Shutdown("gone"))
        await node.wait(dead)
        me.link(dead)
        signal = await me.receive(timeout=0)
        assert signal.sender == dead
        assert signal.reason.pid == dead and signal.reason.last_reason == Shutdown("gone")
        assert before <= signal.reason.died_at <= time.time()


async def test_link_to_an_unknown_pid_delivers_noproc() -> None:
    """Linking to a pid this node never had gives NoProc with no history."""
    async with Node() as node, node.process(trap_exits=True) as me:
        unknown = Pid(node.name, node.incarnation, 10_000)
        me.link(unknown)
        assert await me.receive(timeout=0) == ExitSignal(unknown, NoProc(unknown))


async def test_a_non_trapping_process_linking_to_a_dead_pid_dies_noproc() -> None:
    """A non-trapping process that links to a dead pid exits with that NoProc."""
    async with Node() as node, node.process() as me:
        dead = me.spawn(exit_with, Normal())
        await node.wait(dead)

        async def link_to_dead(p: Process) -> None:
            p.link(dead)
            await idle(p)

        pid = me.spawn(link_to_dead)
        reason = await node.wait(pid)
        assert isinstance(reason, NoProc) and reason.pid == dead and reason.last_reason == Normal()


async def test_unlink_stops_propagation() -> None:
    """After unlink, the partner's death sends no exit signal."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn_link(exit_on_message)
        me.unlink(pid)
        me.unlink(pid)  # unlinking twice changes nothing
        ref = me.monitor(pid)
        me.send(pid, Shutdown())
        down = await me.receive(timeout=5)
        assert down.ref == ref and down.reason == Shutdown()
        assert me.mailbox_size == 0


async def test_linking_twice_or_to_self_sends_one_signal() -> None:
    """A second link to the same pid, or a link to oneself, adds nothing."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn(exit_on_message)
        me.link(pid)
        me.link(pid)
        me.link(me.pid)
        me.send(pid, Shutdown())
        assert await me.receive(timeout=5) == ExitSignal(pid, Shutdown())
        ref = me.monitor(pid)  # already dead: NoProc at once, after the exit signal
        assert (await me.receive(timeout=0)).ref == ref
        assert me.mailbox_size == 0


async def test_spawn_link_links_before_the_child_runs() -> None:
    """A child that exits at once through spawn_link still signals its parent."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn_link(exit_with, Shutdown("immediate"))
        assert await me.receive(timeout=5) == ExitSignal(pid, Shutdown("immediate"))


async def test_kill_reaches_linked_processes_as_killed() -> None:
    """A killed process's links see the reason Killed, which a non-trapping partner dies of."""
    async with Node() as node, node.process(trap_exits=True) as me:
        target = me.spawn(idle)

        async def linked(p: Process) -> None:
            p.link(target)
            await idle(p)

        partner = me.spawn(linked)
        me.link(target)
        await anyio.wait_all_tasks_blocked()
        from refcount_starter.runtime import Kill

        me.exit(target, Kill())
        assert await me.receive(timeout=5) == ExitSignal(target, Killed())
        assert await node.wait(partner) == Killed()
