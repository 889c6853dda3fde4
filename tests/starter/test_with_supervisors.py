"""The starter behind real supervisors: start_new_child, terminate_child, delete_child."""

from __future__ import annotations

import pytest

from refcount_starter.runtime import Node, Normal, Process
from refcount_starter.starter import spawn_child_starter
from refcount_starter.supervisor import (
    PERMANENT,
    TEMPORARY,
    TRANSIENT,
    ChildRunning,
    ChildSpec,
    RestartLimit,
    RestartOne,
    StarterGone,
    SupervisedChildStarted,
)
from refcount_starter.supervisor import start as start_supervisor

pytestmark = pytest.mark.anyio


async def worker(p: Process) -> None:
    """A child that runs until stopped, and crashes or exits when told to."""
    message = await p.receive(str)
    if message == "crash":
        raise RuntimeError("worker crashed")


async def test_one_starter_two_supervisors_then_nothing_left() -> None:
    """The DESIGN example: one starter, two supervisors, the owner lets go, both delete: the starter stops."""
    async with Node() as node, node.process() as me:
        sup_a = await start_supervisor(me, RestartOne(RestartLimit(3, 5.0)))
        sup_b = await start_supervisor(me, RestartOne())
        baseline = node.process_count
        starter = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
        await sup_a.start_new_child(spec)
        await sup_b.start_new_child(spec)
        await starter.release()
        stats = await starter.statistics()
        assert stats.holders == {sup_a.pid, sup_b.pid} and stats.children_started == 2
        for sup in (sup_a, sup_b):
            await sup.terminate_child("db")
            await sup.delete_child("db")
        assert await starter.wait() == Normal()
        assert node.process_count == baseline


async def test_dpp84_cycle_through_a_supervisor_leaks_nothing() -> None:
    """L2: 3,000 cycles of start_new_child + terminate_child + delete_child leave the process count unchanged."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
        baseline = node.process_count
        for _ in range(3_000):
            await sup.start_new_child(spec)
            await sup.terminate_child("db")
            await sup.delete_child("db")
        assert node.process_count == baseline
        stats = await starter.statistics()
        assert stats.children_started == 3_000 and stats.spurious_releases == 0
        assert stats.holders == {me.pid}
        await starter.release()
        assert await starter.wait() == Normal()
        assert node.process_count == baseline - 1


async def test_stale_copy_fails_at_start_new_child() -> None:
    """H1 through a supervisor: a copy added after the starter stopped fails with StarterGone, and nothing is kept."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", starter.child_start)
        await starter.release()
        await starter.wait()
        with pytest.raises(StarterGone) as info:
            await sup.start_new_child(spec)
        assert str(starter.pid) in str(info.value)
        assert "docs/ADR/0003-stale-starter-pid-hazard.md" in str(info.value)
        with pytest.raises(StarterGone):
            await sup.add_child(spec)
        assert await sup.list_children() == []
        assert node.is_alive(sup.pid)


async def test_restarts_go_through_the_starter() -> None:
    """A crashed child is restarted through the same starter, under the same reference."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne(RestartLimit(3, 5.0)))
        await sup.subscribe()
        async with await spawn_child_starter(me, worker) as starter:
            spec = ChildSpec("db", starter.child_start, restart=PERMANENT)
            first = await sup.start_new_child(spec)
            assert type(first) is ChildRunning
            me.send(first.pid, "crash")
            restarted = await me.receive(
                SupervisedChildStarted, where=lambda e: e.key == "db" and e.pid != first.pid, timeout=10
            )
            child = await sup.lookup_child("db")
            assert child is not None and child.state == ChildRunning(restarted.pid)
            stats = await starter.statistics()
            assert stats.children_started == 2 and len(stats.references) == 1
            await sup.terminate_child("db")
            await sup.delete_child("db")
        assert await starter.wait() == Normal()
        assert node.is_alive(sup.pid)


async def test_supervisor_shutdown_releases_its_references() -> None:
    """A supervisor that shuts down (or dies) holding the spec no longer keeps the starter alive."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        await sup.start_new_child(ChildSpec("db", starter.child_start))
        await sup.start_new_child(ChildSpec("cache", starter.child_start))
        assert len((await starter.statistics()).references) == 2
        await sup.shutdown_and_wait()
        await starter.release()
        assert await starter.wait() == Normal()
        assert node.process_count == 1


async def test_temporary_child_releases_when_it_exits() -> None:
    """A temporary child's spec is dropped when it exits, and its reference goes with it."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        child = await sup.start_new_child(ChildSpec("job", starter.child_start, restart=TEMPORARY))
        assert type(child) is ChildRunning
        await starter.release()
        me.send(child.pid, "done")
        assert await starter.wait() == Normal()
        assert await sup.list_children() == []


async def test_copies_on_many_supervisors_share_one_starter() -> None:
    """Ten supervisors hold one starter; it stops only after the last delete."""
    async with Node() as node, node.process() as me:
        sups = [await start_supervisor(me, RestartOne()) for _ in range(10)]
        starter = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
        for sup in sups:
            await sup.start_new_child(spec)
        await starter.release()
        for sup in sups:
            assert node.is_alive(starter.pid)
            await sup.terminate_child("db")
            await sup.delete_child("db")
        assert await starter.wait() == Normal()


async def test_regression_fresh_keys_through_a_supervisor_leave_the_starter_bounded() -> None:
    """Regression (a tombstone per released key): 2,000 cycles through a real supervisor, a
    fresh key each time, leave the starter one mark and two monitors."""
    async with Node() as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        baseline = node.process_count
        for n in range(2_000):
            await sup.start_new_child(ChildSpec(f"k{n}", starter.child_start, restart=TRANSIENT))
            await sup.terminate_child(f"k{n}")
            await sup.delete_child(f"k{n}")
        assert node.process_count == baseline
        stats = await starter.statistics()
        assert stats.children_started == 2_000 and stats.references == {}
        assert set(stats.marks) == {sup.pid} and stats.monitored == {me.pid, sup.pid}
        await sup.shutdown_and_wait()
        stats = await starter.statistics()
        assert stats.marks == {} and stats.monitored == {me.pid}
        await starter.release()
        assert await starter.wait() == Normal()


async def test_regression_fresh_supervisors_leave_the_starter_bounded() -> None:
    """Regression (a tombstone per holder that ever exited): 300 supervisors that each start
    a child and stop (half of them deleting it first) leave the starter watching its owner only."""
    async with Node() as node, node.process() as me:
        starter = await spawn_child_starter(me, worker)
        spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
        baseline = node.process_count
        for n in range(300):
            sup = await start_supervisor(me, RestartOne())
            await sup.start_new_child(spec)
            if n % 2:
                await sup.terminate_child("db")
                await sup.delete_child("db")
            await sup.shutdown_and_wait()
        assert node.process_count == baseline
        stats = await starter.statistics()
        assert stats.children_started == 300 and stats.references == {}
        assert stats.marks == {} and stats.monitored == {me.pid} and stats.holders == {me.pid}
        await starter.release()
        assert await starter.wait() == Normal()
