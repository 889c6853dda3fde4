"""The starter process, driven through its ChildStart calls by test processes acting as
supervisors, on asyncio and trio."""

from __future__ import annotations

from typing import Any

import pytest

from refcount_starter.runtime import (
    Call,
    Crashed,
    Down,
    ExitSignal,
    Kill,
    Killed,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    Reply,
    Shutdown,
)
from refcount_starter.starter import (
    Refusal,
    Starter,
    StarterLease,
    StarterProcess,
    StarterRefused,
    spawn_child_starter,
)
from refcount_starter.starter.protocol import ReplyRefused
from refcount_starter.starter.service import (
    LOCAL_STARTERS,
    AcquireAndStart,
    AcquireRef,
    GetStatistics,
    ReleaseOwnerRef,
    StartChild,
    Started,
)
from refcount_starter.supervisor.errors import StarterGone, StartFailureDied
from refcount_starter.supervisor.start import InitAck

pytestmark = pytest.mark.anyio

ADR = "docs/ADR/0003-stale-starter-pid-hazard.md"


async def worker(p: Process) -> None:
    """A child that waits until it is told to stop."""
    await p.receive(type(None))


async def crash_at_once(p: Process) -> None:
    """A child that fails before anyone could watch it after the fact."""
    raise RuntimeError("boom at start")


async def terminate(sup: Process, pid: Pid, ref: Any) -> Down:
    """What a supervisor does: take the child's init acknowledgement (sent straight to the
    holder, never through the starter), then terminate_child: Shutdown, wait for the Down
    and flush the link signal."""
    await sup.receive(InitAck, where=lambda m: m.ref == ref)
    sup.exit(pid, Shutdown())
    down: Down = await sup.receive(Down, where=lambda m: m.ref == ref)
    await sup.receive(ExitSignal, where=lambda m: m.sender == pid)
    return down


async def test_acquire_start_release_cycle() -> None:
    """A supervisor acquires, starts a child linked to and monitored by it, and releases."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        start = starter.child_start
        lease = await start.acquire(sup, "w")
        assert lease == StarterLease(starter.pid, "w", lease.seq)
        pid, ref = await start.start(sup, "w", lease)
        assert node.is_alive(pid)
        stats = await starter.statistics()
        assert stats.holders == {owner.pid, sup.pid}
        assert stats.references == {(sup.pid, "w"): lease.seq}
        assert stats.children_started == 1
        down = await terminate(sup, pid, ref)
        assert down.reason == Shutdown()
        start.release(sup, "w", lease)
        stats = await starter.statistics()
        assert stats.holders == {owner.pid} and not stats.references
        await starter.release()
        assert await starter.wait() == Normal()


async def test_dpp84_cycle_leaks_nothing() -> None:
    """DPP-84: 10,000 cycles of acquire + start + terminate + release leave the process count unchanged."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        baseline = node.process_count
        start = starter.child_start
        for _ in range(10_000):
            lease = await start.acquire(sup, "db")
            pid, ref = await start.start(sup, "db", lease)
            await terminate(sup, pid, ref)
            start.release(sup, "db", lease)
        assert node.process_count == baseline
        stats = await starter.statistics()
        assert stats.children_started == 10_000 and stats.spurious_releases == 0
        assert stats.references == {}
        await starter.release()
        assert await starter.wait() == Normal()
        assert node.process_count == baseline - 1


async def test_dpp84_cycle_with_a_starter_per_spec_leaks_nothing() -> None:
    """DPP-84 as Cloud Haskell met it: a new starter per spec, 1,000 times, and no starter left over."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        baseline = node.process_count
        for _ in range(1_000):
            async with await spawn_child_starter(owner, worker) as starter:
                lease = await starter.child_start.acquire(sup, "db")
            pid, ref = await starter.child_start.start(sup, "db", lease)
            await terminate(sup, pid, ref)
            starter.child_start.release(sup, "db", lease)
            assert await starter.wait() == Normal()
        assert node.process_count == baseline


async def test_starter_shared_by_several_supervisors() -> None:
    """A starter shared by three supervisors runs until the last one releases, then stops."""
    async with (
        Node() as node,
        node.process() as owner,
        node.process(trap_exits=True) as a,
        node.process(trap_exits=True) as b,
        node.process(trap_exits=True) as c,
    ):
        starter = await spawn_child_starter(owner, worker)
        start = starter.child_start
        leases = {sup: await start.acquire(sup, "db") for sup in (a, b, c)}
        children = {sup: await start.start(sup, "db", lease) for sup, lease in leases.items()}
        await starter.release()
        for sup in (a, b, c):
            assert node.is_alive(starter.pid)
            await terminate(sup, *children[sup])
            start.release(sup, "db", leases[sup])
            if sup is not c:
                stats = await starter.statistics(via=sup)
                assert sup.pid not in stats.holders
        assert await starter.wait() == Normal()


async def test_duplicate_release_is_spurious_and_harmless() -> None:
    """Releasing the same lease twice drops one reference only and counts one spurious release."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as a:
        async with node.process(trap_exits=True) as b:
            starter = await spawn_child_starter(owner, worker)
            start = starter.child_start
            lease_a = await start.acquire(a, "db")
            await start.acquire(b, "db")
            start.release(a, "db", lease_a)
            start.release(a, "db", lease_a)
            await starter.release()
            stats = await starter.statistics(via=b)
            assert stats.spurious_releases == 1 and stats.holders == {b.pid}
        assert await starter.wait() == Normal()


async def holder(p: Process, start: StarterProcess, test: Pid) -> None:
    """A supervisor stand-in that acquires two keys, reports, and crashes on request."""
    await start.acquire(p, "a")
    await start.acquire(p, "b")
    p.send(test, ("acquired", p.pid))
    await p.receive(str)
    raise RuntimeError("supervisor crashed")


async def test_holder_crash_releases_all_its_references() -> None:
    """A holder that crashes without releasing loses its references, and the starter stops."""
    async with Node() as node, node.process() as owner:
        starter = await spawn_child_starter(owner, worker)
        h = owner.spawn(holder, starter.child_start, owner.pid)
        await owner.receive(tuple, where=lambda m: m == ("acquired", h))
        await starter.release()
        stats = await starter.statistics()
        assert stats.holders == {h} and len(stats.references) == 2
        owner.send(h, "crash")
        assert await starter.wait() == Normal()


async def owner_that_returns(p: Process, test: Pid) -> None:
    """An owner that spawns a starter and returns without releasing it."""
    starter = await spawn_child_starter(p, worker)
    p.send(test, starter.pid)


async def test_the_owners_release_is_a_signal_that_never_blocks() -> None:
    """``release()`` sends the owner's release signal, ``Shutdown()``, and returns at once; the
    starter reads it in order with what the owner sent before and after, and stops once the
    last supervisor lets go. A plain ``Shutdown()`` from anyone else releases nothing."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "w")
        sup.exit(starter.pid, Shutdown())  # not the owner: spurious
        stats = await starter.statistics()
        assert stats.owner_holds and stats.spurious_releases == 1
        await starter.release()
        assert starter.released
        stats = await starter.statistics()  # sent after the signal: answered after it
        assert not stats.owner_holds and stats.holders == {sup.pid}
        assert stats.spurious_releases == 1
        starter.child_start.release(sup, "w", lease)
        assert await starter.wait() == Normal()
        assert node.is_alive(owner.pid)


@pytest.mark.parametrize("reason", [Normal(), Shutdown()], ids=["normal", "shutdown"])
async def test_regression_a_node_exit_leaves_a_held_starter_running(reason: Any) -> None:
    """Guards against a ``Node.exit`` from user code halting a held starter (ADR-0004): the
    node's pid is not the node's stop, so the next restart still works."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        start = starter.child_start
        lease = await start.acquire(sup, "w")
        pid, ref = await start.start(sup, "w", lease)
        await terminate(sup, pid, ref)
        node.exit(starter.pid, reason)
        stats = await starter.statistics()  # answered after the signal: the starter runs
        assert not stats.stopped and (sup.pid, "w") in stats.references
        assert stats.spurious_releases == 1  # from a non-owner: counted, nothing released
        pid2, ref2 = await start.start(sup, "w", lease)  # the next restart
        assert pid2 != pid and node.is_alive(pid2)
        await terminate(sup, pid2, ref2)
        start.release(sup, "w", lease)
        await starter.release()
        assert await starter.wait() == Normal()


async def test_a_node_exit_kill_stops_a_held_starter() -> None:
    """``Node.exit(starter, Kill())`` is the documented way to stop a held starter by force."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "w")
        node.exit(starter.pid, Kill())
        assert await starter.wait() == Killed()
        with pytest.raises(StarterGone):
            await starter.child_start.start(sup, "w", lease)


async def test_owner_death_releases_the_owner_reference() -> None:
    """An owner that exits without releasing still lets an unused starter stop."""
    async with Node() as node, node.process() as me:
        me.spawn(owner_that_returns, me.pid)
        pid = await me.receive(Pid)
        assert await node.wait(pid) == Normal()


async def test_async_with_releases_the_owner_reference() -> None:
    """Leaving a starter's async with block releases the owner's reference."""
    async with Node() as node, node.process() as owner:
        async with await spawn_child_starter(owner, worker) as starter:
            assert node.is_alive(starter.pid)
        assert starter.released
        assert await starter.wait() == Normal()
        await starter.release()  # idempotent, even once it is gone


async def test_stale_copy_fails_at_acquire_with_starter_gone() -> None:
    """H1: a copy that acquires after the last reference went fails at once with StarterGone naming the pid and the ADR."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        stale = StarterProcess(starter.pid)
        await starter.release()
        await starter.wait()
        with pytest.raises(StarterGone) as info:
            await stale.acquire(sup, "db")
        error = info.value
        assert isinstance(error, StartFailureDied) and not isinstance(error, StarterRefused)
        assert error.starter == starter.pid and error.key == "db"
        assert isinstance(error.reason, NoProc) and error.reason.last_reason == Normal()
        assert str(starter.pid) in str(error) and ADR in str(error)
        assert node.process_count == 2


async def test_killed_starter_fails_the_next_start_with_starter_gone() -> None:
    """A starter killed under a holder fails that holder's next start with StarterGone, not a hang."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "db")
        owner.exit(starter.pid, Shutdown("not a release"))  # trapped: counted, ignored
        assert (await starter.statistics()).spurious_releases == 1
        owner.exit(starter.pid, Kill())
        assert await starter.wait() == Killed()
        with pytest.raises(StarterGone) as gone:
            await starter.child_start.start(sup, "db", lease)
        # Killed while held: not a stale copy, and the error does not say it is.
        assert "Killed()" in str(gone.value) and "stopped by force" in str(gone.value)
        assert "stale copy" not in str(gone.value)
        assert node.process_count == 2


async def test_start_after_release_is_refused() -> None:
    """A start with a lease already released is refused with a StarterRefused, not served."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "db")
        starter.child_start.release(sup, "db", lease)
        with pytest.raises(StarterRefused) as info:
            await starter.child_start.start(sup, "db", lease)
        assert info.value.refusal is Refusal.NOT_HOLDER
        assert ADR in str(info.value)
        assert (await starter.statistics()).children_started == 0
        await starter.release()


async def test_start_from_a_non_holder_is_refused() -> None:
    """A supervisor that never acquired cannot start children through the starter."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        with pytest.raises(StarterRefused):
            await starter.child_start.start(sup, "db", StarterLease(starter.pid, "db", 1))
        await starter.release()


async def test_hazard_starter_does_not_stop_under_a_start_in_flight() -> None:
    """Cloud Haskell hang: the last holder's start, then its release and the owner's: the start is answered first."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "db")
        child_ref = sup.reserve_monitor()
        call_ref = sup.monitor(starter.pid)
        sup.send(starter.pid, Call(sup.pid, call_ref, StartChild("db", lease.seq, child_ref)))
        starter.child_start.release(sup, "db", lease)
        await starter.release()
        reply = await sup.receive((Reply, Down), where=lambda m: m.ref == call_ref)
        assert type(reply) is Reply and type(reply.value) is Started
        sup.bind_monitor(child_ref, reply.value.pid)
        assert await starter.wait() == Normal()
        await terminate(sup, reply.value.pid, child_ref)


async def test_hazard_child_dying_at_once_reports_its_own_reason() -> None:
    """Masked exit reason: a child that dies before its start returns reports its real reason, not NoProc."""
    async with (
        Node() as node,
        node.process() as owner,
        node.process(trap_exits=True) as sup,
        await spawn_child_starter(owner, crash_at_once) as starter,
    ):
        lease = await starter.child_start.acquire(sup, "db")
        pid, ref = await starter.child_start.start(sup, "db", lease)
        down = await sup.receive(Down, where=lambda m: m.ref == ref)
        assert down.pid == pid
        assert isinstance(down.reason, Crashed) and down.reason.message == "boom at start"
        signal = await sup.receive(ExitSignal, where=lambda m: m.sender == pid)
        assert signal.reason == down.reason
        starter.child_start.release(sup, "db", lease)


async def first_supervisor(p: Process, start: StarterProcess, test: Pid) -> None:
    """A supervisor stand-in that starts a child, reports, and exits normally without releasing."""
    p.trap_exits = True
    lease = await start.acquire(p, "db")
    await start.start(p, "db", lease)
    p.send(test, "started")
    await p.receive(str)


async def test_hazard_starter_is_not_linked_to_its_first_supervisor() -> None:
    """The Cloud Haskell starter died with its first supervisor; this one serves the others on."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as second:
        starter = await spawn_child_starter(owner, worker)
        first = owner.spawn(first_supervisor, starter.child_start, owner.pid)
        assert await owner.receive(str) == "started"
        lease = await starter.child_start.acquire(second, "db")
        owner.send(first, "exit")
        assert await node.wait(first) == Normal()
        stats = await starter.statistics()
        assert first not in stats.holders and node.is_alive(starter.pid)
        pid, ref = await starter.child_start.start(second, "db", lease)
        await terminate(second, pid, ref)
        starter.child_start.release(second, "db", lease)
        await starter.release()
        assert await starter.wait() == Normal()


async def late_holder(p: Process, test: Pid) -> None:
    """A supervisor stand-in that is given a starter, acquires it, reports, and idles."""
    start = await p.receive(StarterProcess)
    await start.acquire(p, "db")
    p.send(test, "acquired")
    await p.receive(type(None))


async def test_node_exit_stops_a_held_starter() -> None:
    """Leaving the node stops a starter that a supervisor still holds, with the node's Shutdown."""
    async with Node() as node, node.process() as owner:
        h = owner.spawn(late_holder, owner.pid)
        starter = await spawn_child_starter(owner, worker)
        owner.send(h, starter.child_start)
        assert await owner.receive(str) == "acquired"
        await starter.release()
    assert node.why_dead(starter.pid).last_reason == Shutdown("node stopping")


async def test_spawn_child_starter_checks_its_arguments() -> None:
    """A non-callable child or a non-process owner is a TypeError naming the value."""
    async with Node() as node, node.process() as owner:
        with pytest.raises(TypeError, match="42"):
            await spawn_child_starter(owner, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="owner"):
            await spawn_child_starter("me", worker)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            StarterProcess("not a pid")  # type: ignore[arg-type]


async def test_a_starter_is_known_as_local_from_its_spawn_to_its_exit() -> None:
    """A supervisor may call a starter before it has run (it then needs no timer): the starter
    is known from its spawn; once it stopped it is forgotten, and starters killed before they
    ever ran are forgotten too (the table does not grow with them)."""
    async with Node() as node, node.process() as owner:
        starter = await spawn_child_starter(owner, worker)
        assert LOCAL_STARTERS[starter.pid][0]  # before it ran: children acknowledge as they run
        await starter.release()
        await starter.wait()
        assert starter.pid not in LOCAL_STARTERS
        killed = []
        for _ in range(300):
            doomed = await spawn_child_starter(owner, worker)
            node.exit(doomed.pid, Kill())  # before it runs: its function never starts
            assert await node.wait(doomed.pid) == Killed()
            killed.append(doomed.pid)
        assert sum(pid in LOCAL_STARTERS for pid in killed) < 300 // 2


async def test_statistics_of_a_stopped_starter_raise_starter_gone() -> None:
    """Asking a stopped starter for its statistics raises StarterGone."""
    async with Node() as node, node.process() as owner:
        starter: Starter = await spawn_child_starter(owner, worker)
        await starter.release()
        await starter.wait()
        with pytest.raises(StarterGone):
            await starter.statistics()


async def test_malformed_requests_are_refused_and_the_starter_keeps_running() -> None:
    """A holder's malformed acquire or start (a None ref, a non-str key, a non-int seq) is
    refused with Refusal.MALFORMED instead of crashing the starter every holder shares."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "w")
        before = await starter.statistics()
        ref = sup.reserve_monitor()
        for request in (
            StartChild("w", lease.seq, None),  # held (key, seq): this one reached spawn_for
            StartChild(["w"], lease.seq, ref),  # unhashable key
            AcquireRef(5, 1),
            AcquireRef("w", "1"),
            AcquireRef("w", True),
            AcquireRef("w", -1),
            AcquireAndStart("w", lease.seq + 1000, None),
            AcquireAndStart(None, lease.seq + 1000, ref),
        ):
            answer = await sup.call(starter.pid, request)
            assert answer == ReplyRefused(Refusal.MALFORMED), request
        sup.demonitor(ref)
        assert node.is_alive(starter.pid)
        after = await starter.statistics()
        assert after == before
        pid, child_ref = await starter.child_start.start(sup, "w", lease)
        await terminate(sup, pid, child_ref)
        starter.child_start.release(sup, "w", lease)
        await starter.release()
        assert await starter.wait() == Normal()


async def test_malformed_runtime_messages_are_dropped_and_the_starter_keeps_running() -> None:
    """Guards against a starter that one hand-made message crashed (under every holder): a
    ``Call`` whose sender or ref is not a Pid or a Ref, an ``ExitSignal`` whose sender is not
    a Pid, a ``Down`` whose ref is unhashable are dropped, and nothing changes."""
    async with Node() as node, node.process() as owner, node.process(trap_exits=True) as sup:
        starter = await spawn_child_starter(owner, worker)
        lease = await starter.child_start.acquire(sup, "w")
        before = await starter.statistics()
        ref = sup.reserve_monitor()
        for message in (
            Call(None, ref, GetStatistics()),
            Call("nosuchname", ref, AcquireRef("x", 1)),
            Call(42, ref, AcquireAndStart("x", 1, ref)),
            Call(sup.pid, None, AcquireRef("x", 1)),
            Call(sup.pid, [ref], ReleaseOwnerRef()),
            ExitSignal("x", Shutdown()),
            ExitSignal(None, Shutdown(("w", lease.seq))),
            Down([ref], sup.pid, Killed()),
        ):
            sup.send(starter.pid, message)
        sup.demonitor(ref)
        # Answered after the messages above: the starter took them all and kept its state.
        assert await starter.statistics() == before
        assert node.is_alive(starter.pid)
        starter.child_start.release(sup, "w", lease)
        await starter.release()
        assert await starter.wait() == Normal()
