"""A network partition of a three-server NATS cluster, with nodes as OS processes on both
sides (ADR-0013).

Server 1 is cut off from servers 0 and 2 (``LocalCluster.isolate``): its clients stay
connected to it and see nothing of the others. The starter's node ``a`` is on server 0; the
supervisor ``b`` on server 1 holds a reference and its child runs on ``a``; the supervisor
``c`` on server 2 holds one too. The test watches both sides from two nodes of its own:
``t`` on server 0 and ``u`` on server 1.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import attrs
import pytest

from refcount_starter import supervisor
from refcount_starter.remote.localcluster import LocalCluster
from refcount_starter.remote.service import spawn_remote
from refcount_starter.runtime import (
    CallFailed,
    Crashed,
    Down,
    ExitSignal,
    NoConnection,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
)
from refcount_starter.starter.remote import RemoteStarter, spawn_remote_starter
from refcount_starter.supervisor import (
    PERMANENT,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    SupervisedChildRestarting,
    SupervisedChildStartFailure,
)

from .cluster import cluster_transport, cluster_url
from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES
from .nodeproc import node_process, wait_until_subscribed
from .test_processes import statistics_of
from .test_starter_across_nodes import processes_on, remote_supervisor, wait_for_stats

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(120)]

#: The failure-detection bound of the long-partition test's nodes (0.25 s x 6).
BOUND = HEARTBEAT_INTERVAL * HEARTBEAT_MISSES
#: The short-partition test's nodes wait 0.25 s x 16 = 4 s: a partition and its heal take
#: about 1 s there (the servers retry a lost route once a second).
SHORT_MISSES = 16
#: A state reached through asynchronous signals may take this long to show (loaded CI).
SETTLE = 15.0


@attrs.define
class World:
    """The nodes of a partition test, on both sides of the cut."""

    cluster: LocalCluster
    me: Process  # on t, server 0: the starter's side
    them: Process  # on u, server 1: the cut-off side
    starter: RemoteStarter
    sup_b: supervisor.Supervisor  # on b, server 1, driven from ``them``
    sup_c: supervisor.Supervisor  # on c, server 2, driven from ``me``
    baseline: int  # processes on a before the starter


@asynccontextmanager
async def world(cluster: LocalCluster, tmp_path: Path, misses: int) -> AsyncIterator[World]:
    """Start the nodes, a starter on a owned by ``me``, and the supervisors on b and c."""
    async with AsyncExitStack() as stack:
        for name, server in (("a", 0), ("b", 1), ("c", 2)):
            await stack.enter_async_context(
                node_process(None, name, tmp_path, url=cluster_url(cluster, server), heartbeat_misses=misses)
            )
        t = await stack.enter_async_context(
            Node("t", transport=cluster_transport(cluster, 0, heartbeat_misses=misses))
        )
        u = await stack.enter_async_context(
            Node("u", transport=cluster_transport(cluster, 1, heartbeat_misses=misses))
        )
        me = await stack.enter_async_context(t.process(trap_exits=True))
        them = await stack.enter_async_context(u.process(trap_exits=True))
        baseline = await processes_on(me, "a")
        starter = await spawn_remote_starter(me, "a", "test.echo")
        sup_b = await remote_supervisor(them, "b")
        sup_c = await remote_supervisor(me, "c")
        yield World(cluster, me, them, starter, sup_b, sup_c, baseline)


async def _running(sup: supervisor.Supervisor, spec: ChildSpec) -> Pid:
    running = await sup.start_new_child(spec)
    assert type(running) is ChildRunning and running.pid.node == "a"
    return running.pid


async def _on_a(w: World, count: int) -> None:
    """Wait until a runs exactly ``count`` processes besides its baseline."""
    with anyio.fail_after(SETTLE):
        while (now := await processes_on(w.me, "a")) != w.baseline + count:
            await anyio.sleep(0.05)
    assert now == w.baseline + count


async def test_a_partition_longer_than_the_bound(cluster: LocalCluster, tmp_path: Path) -> None:
    """Server 1 cut off until both sides have seen the other down, then healed:

    - each side sees the other's nodes down within the bound (links and monitors fire
      NoConnection, calls fail with it, nothing hangs);
    - the starter drops b's reference; b's child on a dies with its link; b's supervisor
      restarts it through the unreachable starter: a start failure, counted, retried;
    - at most one live child per (supervisor, key), once the split settled and after the
      heal; after the heal b's retries are refused (its reference was dropped) until it
      acquires again; in the end nothing is left on a.
    """
    async with world(cluster, tmp_path, HEARTBEAT_MISSES) as w:
        me, them = w.me, w.them
        spec = ChildSpec("db", w.starter.child_start, restart=PERMANENT, restart_delay=0.3)
        await w.sup_b.subscribe()  # b's events go to ``them``, on b's side of the cut
        child_b = await _running(w.sup_b, spec)
        child_c = await _running(w.sup_c, spec)
        stats = await w.starter.statistics()
        assert set(stats.references) == {(w.sup_b.pid, "db"), (w.sup_c.pid, "db")}
        await _on_a(w, 4)  # the starter's owner, the starter, two children
        # Watches across the cut, each confirmed by a call on the same session.
        watch_sup_b = me.monitor(w.sup_b.pid)
        watch_child_b = me.monitor(child_b)
        watch_starter = them.monitor(w.starter.pid)
        watch_child_b_there = them.monitor(child_b)
        await w.sup_b.statistics()
        await me.call(child_b, "ready?", timeout=SETTLE)
        await them.call(child_b, "ready?", timeout=SETTLE)

        cut_at = time.monotonic()
        await anyio.to_thread.run_sync(cluster.isolate, 1)
        # Both sides see the other down within the bound.
        down = await me.receive(Down, where=lambda m: m.ref == watch_sup_b, timeout=SETTLE)
        assert down.reason == NoConnection("b")
        seen_by_a_side = time.monotonic() - cut_at
        down = await them.receive(Down, where=lambda m: m.ref == watch_starter, timeout=SETTLE)
        assert down.reason == NoConnection("a")
        seen_by_b_side = time.monotonic() - cut_at
        assert max(seen_by_a_side, seen_by_b_side) < BOUND + 2.0, (seen_by_a_side, seen_by_b_side)
        down = await them.receive(Down, where=lambda m: m.ref == watch_child_b_there, timeout=SETTLE)
        assert down.reason == NoConnection("a")
        # b's child on a dies with its link to b's supervisor (its reason: the lost node).
        down = await me.receive(Down, where=lambda m: m.ref == watch_child_b, timeout=SETTLE)
        assert down.reason in (NoConnection("b"), NoProc(child_b))
        # Calls across the cut fail with NoConnection, and do not hang.
        with pytest.raises(CallFailed) as failed:
            await them.call(w.starter.pid, "statistics?", timeout=SETTLE)
        assert failed.value.reason == NoConnection("a")
        with pytest.raises(CallFailed) as failed:
            await me.call(w.sup_b.pid, "anyone?", timeout=SETTLE)
        assert failed.value.reason == NoConnection("b")
        # The starter dropped b's reference, and only b's.
        stats = await wait_for_stats(w.starter, lambda s: set(s.references) == {(w.sup_c.pid, "db")})
        assert not stats.stopped
        # b's supervisor saw its child die and tries to restart it: a start failure, counted.
        restarting = await them.receive(
            SupervisedChildRestarting, where=lambda e: e.key == "db", timeout=SETTLE
        )
        assert restarting.pid == child_b and restarting.reason == NoConnection("a")
        failure = await them.receive(
            SupervisedChildStartFailure, where=lambda e: e.key == "db", timeout=SETTLE
        )
        assert failure.reason == NoConnection("a")
        assert (await w.sup_b.statistics()).total_restarts >= 1
        assert type((await w.sup_b.lookup_child("db")).state) is ChildRestarting  # type: ignore[union-attr]
        # Settled: c's child alone runs on a; b has none anywhere.
        await _on_a(w, 3)
        assert await me.call(child_c, "still there", timeout=SETTLE) == ("echo", "still there")

        await anyio.to_thread.run_sync(cluster.heal)
        # b's supervisor keeps retrying; the starter refuses it (it holds nothing now).
        failure = await them.receive(
            SupervisedChildStartFailure, where=lambda e: e.reason != NoConnection("a"), timeout=SETTLE
        )
        assert type(failure.reason) is Crashed
        assert failure.reason.exc_type == "refcount_starter.starter.errors.StarterRefused"
        await _on_a(w, 3)
        # The peers met again as new sessions (both sides ended the old one).
        assert (await statistics_of(me, "b"))["sessions_ended"] >= 1
        assert (await statistics_of(them, "a"))["sessions_ended"] >= 1
        # b must acquire again: delete the spec and add it anew.
        await w.sup_b.terminate_child("db")
        await w.sup_b.delete_child("db")
        child_b = await _running(w.sup_b, spec)
        stats = await w.starter.statistics()
        assert set(stats.references) == {(w.sup_b.pid, "db"), (w.sup_c.pid, "db")}
        await _on_a(w, 4)
        assert await them.call(child_b, "after", timeout=SETTLE) == ("echo", "after")

        # Everything let go: the starter stops and a is back where it was.
        for sup in (w.sup_b, w.sup_c):
            await sup.terminate_child("db")
            await sup.delete_child("db")
        await w.starter.release()
        assert await w.starter.wait(timeout=SETTLE) == Normal()
        await _on_a(w, 0)


async def test_a_partition_shorter_than_the_bound(cluster: LocalCluster, tmp_path: Path) -> None:
    """Server 1 cut off and healed within the bound (4 s here), nothing sent across meanwhile:
    no node is seen down, no link or monitor fires, the starter keeps b's reference, and
    exactly one child per (supervisor, key) runs before, during and after."""
    async with world(cluster, tmp_path, SHORT_MISSES) as w:
        me, them = w.me, w.them
        spec = ChildSpec("db", w.starter.child_start, restart=PERMANENT)
        child_b = await _running(w.sup_b, spec)
        child_c = await _running(w.sup_c, spec)
        watch_sup_b = me.monitor(w.sup_b.pid)
        watch_starter = them.monitor(w.starter.pid)
        watch_child_b = them.monitor(child_b)
        await w.sup_b.statistics()
        await them.call(child_b, "ready?", timeout=SETTLE)
        before = {node: await statistics_of(me, node) for node in ("a", "c")}
        before_b = await statistics_of(them, "b")

        cut_at = time.monotonic()
        await anyio.to_thread.run_sync(cluster.isolate, 1)
        await _on_a(w, 4)  # during the cut too: both children, the owner and the starter
        await anyio.to_thread.run_sync(cluster.heal)
        # The routes are back; the servers exchange their subscriptions over them. Anything
        # sent across before that would be lost (and would end its session, never silently),
        # so wait until each side's server knows the other side's nodes again.
        for server, node in ((1, "a"), (1, "c"), (1, "t"), (0, "b"), (0, "u"), (2, "b")):
            await wait_until_subscribed(cluster.url(server), node)
        assert time.monotonic() - cut_at < HEARTBEAT_INTERVAL * SHORT_MISSES - 1.0

        # Every session went on: calls across the healed cut succeed in the same sessions.
        assert await them.call(child_b, "after", timeout=SETTLE) == ("echo", "after")
        assert await me.call(child_c, "after", timeout=SETTLE) == ("echo", "after")
        assert (await w.sup_b.statistics()).running == 1
        stats = await w.starter.statistics()
        assert set(stats.references) == {(w.sup_b.pid, "db"), (w.sup_c.pid, "db")}
        for node in ("a", "c"):
            assert (await statistics_of(me, node))["sessions_ended"] == before[node]["sessions_ended"]
        assert (await statistics_of(them, "b"))["sessions_ended"] == before_b["sessions_ended"]
        # Nothing fired: a Down or an exit signal would have come before those replies.
        for watcher, ref in ((me, watch_sup_b), (them, watch_starter), (them, watch_child_b)):
            with pytest.raises(TimeoutError):
                await watcher.receive((Down, ExitSignal), timeout=0)
            assert watcher.mailbox_size == 0, ref
        await _on_a(w, 4)


@pytest.mark.parametrize("length", ["longer", "shorter"])
async def test_messages_across_a_partition_come_in_order_or_the_session_ends_first(
    cluster: LocalCluster, tmp_path: Path, length: str
) -> None:
    """Numbered messages go to an echo on b (server 1) and back, every 20 ms, before, during
    and after a partition longer or shorter than the bound: the replies come in order, never
    twice, and a lost one is never skipped silently (NoConnection fires first); after a
    loss, no reply to a message sent before the cut comes any more."""
    misses = HEARTBEAT_MISSES if length == "longer" else SHORT_MISSES
    async with (
        node_process(None, "b", tmp_path, url=cluster_url(cluster, 1), heartbeat_misses=misses),
        Node("t", transport=cluster_transport(cluster, 0, heartbeat_misses=misses)) as t,
        t.process(trap_exits=True) as me,
    ):
        echo, ref = await spawn_remote(me, "b", "test.echo")
        me.unlink(echo)  # the echo outlives the session; a monitor watches it
        me.demonitor(ref)
        watch = me.monitor(echo)
        sent_at: list[float] = []
        events: list[tuple[str, int, float]] = []  # ("reply", n, when) or ("down", -1, when)
        done = anyio.Event()

        async def sender() -> None:
            nonlocal watch
            while not done.is_set():
                sent_at.append(time.monotonic())
                me.send(echo, (me.pid, len(sent_at) - 1))
                await anyio.sleep(0.02)

        async def receiver() -> None:
            nonlocal watch
            while True:
                message = await me.receive((tuple, Down))
                if isinstance(message, Down):
                    assert message.ref == watch and message.reason == NoConnection("b")
                    events.append(("down", -1, time.monotonic()))
                    watch = me.monitor(echo)  # watch it again, in the next session
                else:
                    events.append(("reply", message[1], time.monotonic()))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sender)
            tasks.start_soon(receiver)
            with anyio.fail_after(SETTLE):
                while len([e for e in events if e[0] == "reply"]) < 10:
                    await anyio.sleep(0.02)
            cut = len(sent_at)
            await anyio.to_thread.run_sync(cluster.isolate, 1)
            if length == "longer":
                with anyio.fail_after(SETTLE):
                    while not any(e[0] == "down" for e in events):
                        await anyio.sleep(0.02)
            await anyio.to_thread.run_sync(cluster.heal)
            healed = len(sent_at)
            with anyio.fail_after(SETTLE):  # replies to messages sent after the heal come
                while not any(e[0] == "reply" and e[1] > healed + 5 for e in events):
                    await anyio.sleep(0.02)
            done.set()
            tasks.cancel_scope.cancel()

        replies = [n for kind, n, _ in events if kind == "reply"]
        assert replies == sorted(set(replies)), "a reply came out of order or twice"
        last_down = -1.0
        previous = -1
        for kind, n, when in events:
            if kind == "down":
                last_down = when
                continue
            if n != previous + 1:
                # Something was lost: the session ended before anything after it came, and
                # nothing sent before the cut comes after the loss.
                assert last_down > 0, f"reply {n} came after {previous} with no NoConnection"
                assert n >= cut, f"reply {n}, sent before the cut, came after a loss"
            previous = n
        if length == "longer":
            assert any(kind == "down" for kind, _, _ in events)
