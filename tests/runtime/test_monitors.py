"""Monitors: Down on exit, NoProc for dead or unknown pids, demonitor, and spawn_for."""

from __future__ import annotations

import anyio
import pytest

from refcount_starter.runtime import (
    Down,
    ExitSignal,
    Killed,
    NameNotRegistered,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    Shutdown,
)

from .helpers import exit_on_message, exit_with, idle

pytestmark = pytest.mark.anyio


async def test_monitor_delivers_down_with_the_exit_reason() -> None:
    """A watcher receives Down(ref, pid, reason) when the watched process exits."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message)
        ref = me.monitor(pid)
        me.send(pid, Shutdown("done"))
        assert await me.receive(timeout=5) == Down(ref, pid, Shutdown("done"))


async def test_monitor_is_one_way_and_does_not_stop_the_watcher() -> None:
    """A crash of the watched process reaches a non-trapping watcher only as a Down."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message)
        ref = me.monitor(pid)
        me.send(pid, "crash")
        down = await me.receive(Down, timeout=5)
        assert down.ref == ref and down.reason.exc_type == "RuntimeError"
        me.send(me.pid, "still alive")
        assert await me.receive(timeout=0) == "still alive"


async def test_monitor_of_an_unknown_pid_delivers_noproc_at_once() -> None:
    """Monitoring a pid the node never had delivers Down(ref, pid, NoProc(pid)) at once."""
    async with Node() as node, node.process() as me:
        unknown = Pid(node.name, node.incarnation, 99_999)
        ref = me.monitor(unknown)
        assert await me.receive(timeout=0) == Down(ref, unknown, NoProc(unknown))


async def test_monitor_of_a_dead_pid_says_why_it_died() -> None:
    """Monitoring a dead pid delivers NoProc carrying its last reason and time of death."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_with, Shutdown("old"))
        await node.wait(pid)
        ref = me.monitor(pid)
        down = await me.receive(timeout=0)
        assert down.ref == ref and down.pid == pid
        assert down.reason.last_reason == Shutdown("old") and down.reason.died_at is not None


async def test_each_monitor_gets_its_own_down() -> None:
    """Two monitors on one process give two Downs, each with its own ref."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message)
        refs = {me.monitor(pid), me.monitor(pid)}
        me.send(pid, Normal())
        downs = [await me.receive(timeout=5), await me.receive(timeout=5)]
        assert {d.ref for d in downs} == refs and all(d.reason == Normal() for d in downs)


async def test_demonitor_stops_the_down() -> None:
    """After demonitor, the watched process's exit sends no Down."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message)
        ref = me.monitor(pid)
        me.demonitor(ref)
        witness = me.monitor(pid)
        me.send(pid, Normal())
        assert (await me.receive(timeout=5)).ref == witness
        assert me.mailbox_size == 0


async def test_demonitor_flushes_a_pending_down() -> None:
    """Demonitor removes a Down that already arrived, and leaves other messages in order."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message)
        ref = me.monitor(pid)
        me.send(me.pid, "before")
        me.send(pid, Shutdown())
        await node.wait(pid)
        me.send(me.pid, "after")
        me.demonitor(ref)
        assert me.queued() == ["before", "after"]


async def test_demonitor_without_flush_keeps_a_pending_down() -> None:
    """``demonitor(ref, flush=False)`` leaves an arrived Down in the mailbox."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_with, Normal())
        ref = me.monitor(pid)
        await node.wait(pid)
        me.demonitor(ref, flush=False)
        assert await me.receive(timeout=0) == Down(ref, pid, Normal())


async def test_spawn_monitor_watches_before_the_child_runs() -> None:
    """A child that exits at once through spawn_monitor still sends its Down."""
    async with Node() as node, node.process() as me:
        pid, ref = me.spawn_monitor(exit_with, Shutdown("fast"))
        assert await me.receive(timeout=5) == Down(ref, pid, Shutdown("fast"))


async def test_monitor_by_registered_name() -> None:
    """Monitoring a registered name watches the process that holds it."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_on_message, name="svc")
        ref = me.monitor("svc")
        me.send("svc", Normal())
        assert await me.receive(timeout=5) == Down(ref, pid, Normal())


async def test_monitor_of_an_unregistered_name_is_a_typed_error() -> None:
    """Monitoring a name nobody holds raises NameNotRegistered naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(NameNotRegistered, match="'nobody'"):
            me.monitor("nobody")


async def test_a_dead_watcher_leaves_nothing_behind() -> None:
    """The monitors a process set are dropped when it dies; the watched process is unaffected."""
    async with Node() as node, node.process() as me:
        target = me.spawn(idle)

        async def watch_and_die(p: Process) -> None:
            p.monitor(target)

        watcher = me.spawn(watch_and_die)
        await node.wait(watcher)
        assert node.info(target).monitored_by == ()


async def test_spawn_for_links_and_monitors_the_owner_before_the_child_runs() -> None:
    """A child started by spawn_for on another process's behalf signals that owner."""
    async with Node() as node, node.process(trap_exits=True) as me:
        ref = me.reserve_monitor()

        async def starter(p: Process) -> None:
            pid = p.spawn_for(me.pid, ref, exit_with, Shutdown("child done"))
            p.send(me.pid, ("started", pid))

        me.spawn(starter)
        _, pid = await me.receive(tuple, timeout=5)
        me.bind_monitor(ref, pid)
        got = {await me.receive(timeout=5), await me.receive(timeout=5)}
        assert got == {ExitSignal(pid, Shutdown("child done")), Down(ref, pid, Shutdown("child done"))}


async def test_a_down_that_arrives_before_bind_is_accepted() -> None:
    """Regression: a Down for a reserved monitor is delivered even before bind_monitor."""
    async with Node() as node, node.process() as me:
        ref = me.reserve_monitor()
        pid = me.spawn_for(me.pid, ref, exit_with, Normal())
        me.unlink(pid)
        await node.wait(pid)
        me.bind_monitor(ref, pid)  # too late to matter, and harmless
        assert await me.receive(timeout=0) == Down(ref, pid, Normal())
        assert ref not in dict(me.info().monitors)


async def test_a_reserved_monitor_can_be_given_up() -> None:
    """Demonitor of a reserved, unbound ref forgets it without error."""
    async with Node() as node, node.process() as me:
        ref = me.reserve_monitor()
        me.demonitor(ref)
        assert ref not in dict(me.info().monitors)


async def test_spawn_for_a_dead_owner_exits_noproc_at_once() -> None:
    """A process started for an owner that is already dead exits with the owner's NoProc."""
    async with Node() as node, node.process() as me:
        owner = me.spawn(exit_with, Killed())
        await node.wait(owner)
        ref = me.reserve_monitor()
        ran = anyio.Event()

        async def should_not_run(p: Process) -> None:
            ran.set()

        pid = me.spawn_for(owner, ref, should_not_run)
        reason = await node.wait(pid)
        assert isinstance(reason, NoProc) and reason.pid == owner and reason.last_reason == Killed()
        assert not ran.is_set()


async def test_spawn_for_refuses_wrong_types() -> None:
    """spawn_for with a non-Pid owner or non-Ref ref raises TypeError naming them."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="'owner'"):
            me.spawn_for("owner", me.reserve_monitor(), idle)  # type: ignore[arg-type]
        assert node.process_count == 1
