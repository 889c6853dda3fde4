"""Several nodes on one InMemoryNetwork: remote send, link, monitor, exit, call, node loss."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from refcount_starter.runtime import (
    Call,
    CallFailed,
    Down,
    ExitSignal,
    InMemoryNetwork,
    Kill,
    Killed,
    NoConnection,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    ProcessExit,
    Shutdown,
)

from .helpers import echo, exit_on_message, exit_with, forward, idle

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[InMemoryNetwork, Node, Node]]:
    net = InMemoryNetwork()
    async with Node("a", transport=net.transport()) as a, Node("b", transport=net.transport()) as b:
        yield net, a, b


async def test_remote_send_by_pid_and_by_name_and_node() -> None:
    """A message to a pid or a (name, node) of another node arrives, in order."""
    async with two_nodes() as (net, a, b), a.process() as me:
        assert sorted(net.node_names) == ["a", "b"]
        relay = b.spawn(forward, me.pid, name="relay")
        me.send(relay, 1)
        me.send(("relay", "b"), 2)
        a.send(relay, 3)
        assert [await me.receive(timeout=5) for _ in range(3)] == [1, 2, 3]


async def test_remote_send_to_an_unknown_name_or_dead_pid_is_dropped() -> None:
    """Sends to a remote name nobody holds or to a dead remote pid are dropped silently."""
    async with two_nodes() as (_, a, b), a.process() as me:
        dead = b.spawn(exit_with, Normal())
        await b.wait(dead)
        me.send(("nobody", "b"), "lost")
        me.send(dead, "lost")
        relay = b.spawn(forward, me.pid)
        me.send(relay, "kept")
        assert await me.receive(timeout=5) == "kept"


async def test_remote_monitor_delivers_down() -> None:
    """A monitor across nodes delivers Down with the remote exit reason."""
    async with two_nodes() as (_, a, b), a.process() as me:
        pid = b.spawn(exit_on_message)
        ref = me.monitor(pid)
        me.send(pid, Shutdown("remote"))
        assert await me.receive(timeout=5) == Down(ref, pid, Shutdown("remote"))


async def test_remote_demonitor_stops_the_down() -> None:
    """After demonitor, a remote exit sends no Down across."""
    async with two_nodes() as (_, a, b), a.process() as me:
        pid = b.spawn(exit_on_message)
        ref = me.monitor(pid)
        me.demonitor(ref)
        assert b.info(pid).monitored_by == ()
        witness = me.monitor(pid)
        me.send(pid, Normal())
        assert (await me.receive(timeout=5)).ref == witness


async def test_remote_link_propagates_both_ways() -> None:
    """A link across nodes carries exit signals in both directions."""
    async with two_nodes() as (_, a, b), a.process(trap_exits=True) as me:
        pid = b.spawn(exit_on_message)
        me.link(pid)
        me.send(pid, Shutdown("b side"))
        assert await me.receive(timeout=5) == ExitSignal(pid, Shutdown("b side"))

        async def linker(p: Process) -> None:
            p.link(me.pid)
            p.send(me.pid, "linked")
            await idle(p)

        async def die_linked_to(p: Process, target: Pid) -> None:
            p.link(target)
            raise ProcessExit(Shutdown("a side"))

        victim = b.spawn(linker)
        assert await me.receive(str, timeout=5) == "linked"
        assert await a.wait(a.spawn(die_linked_to, victim)) == Shutdown("a side")
        assert await b.wait(victim) == Shutdown("a side")


async def test_remote_unlink_stops_propagation() -> None:
    """After unlink across nodes, the remote exit sends no signal."""
    async with two_nodes() as (_, a, b), a.process(trap_exits=True) as me:
        pid = b.spawn(exit_on_message)
        me.link(pid)
        me.unlink(pid)
        assert b.info(pid).links == ()
        ref = me.monitor(pid)
        me.send(pid, Shutdown())
        assert await me.receive(timeout=5) == Down(ref, pid, Shutdown())
        assert me.mailbox_size == 0


async def test_remote_exit_signals() -> None:
    """exit() across nodes: Normal ignored, Shutdown stops, Kill stops a trapping process."""
    async with two_nodes() as (_, a, b), a.process() as me:
        plain = b.spawn(forward, me.pid)
        me.exit(plain, Normal())
        me.send(plain, "alive")
        assert await me.receive(timeout=5) == "alive"
        me.exit(plain, Shutdown("stop"))
        assert await b.wait(plain) == Shutdown("stop")
        trapping = b.spawn(forward, me.pid, trap_exits=True)
        me.exit(trapping, Shutdown("trap me"))
        assert await me.receive(timeout=5) == ExitSignal(me.pid, Shutdown("trap me"))
        me.exit(trapping, Kill())
        assert await b.wait(trapping) == Killed()


async def test_remote_call() -> None:
    """A call across nodes returns the reply; to a dead remote pid it fails with NoProc."""
    async with two_nodes() as (_, a, b), a.process() as me:
        server = b.spawn(echo)
        assert await me.call(server, "x", timeout=5) == ("echo", "x")
        me.send(server, None)  # not a Call: ignored
        with pytest.raises(CallFailed) as info:
            await me.call(server, "stop", timeout=5)
        assert info.value.reason == Normal()
        with pytest.raises(CallFailed) as info:
            await me.call(server, "again", timeout=5)
        assert isinstance(info.value.reason, NoProc) and info.value.reason.last_reason == Normal()


def _open_calls(node: Node, pid: Pid) -> tuple[tuple[Any, ...], int]:
    """The monitors set on ``pid`` and the node's unanswered calls from other nodes."""
    return node.info(pid).monitored_by, node.inbound_calls


async def test_a_remote_call_is_one_signal_each_way_and_leaves_no_monitor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Across nodes the call's monitor travels inside the call and the reply ends it: one
    signal each way, and after the reply neither node keeps anything of the call."""
    sent: list[str] = []
    original = InMemoryNetwork._send

    def record(self: InMemoryNetwork, source: Any, signal: Any) -> None:
        sent.append(type(signal).__name__)
        original(self, source, signal)

    monkeypatch.setattr(InMemoryNetwork, "_send", record)
    async with two_nodes() as (_, a, b), a.process() as me:
        server = b.spawn(echo)
        for i in range(3):
            assert await me.call(server, i, timeout=5) == ("echo", i)
        assert sent == ["CallSignal", "ReplySignal"] * 3
        assert me.info().monitors == ()
        assert _open_calls(b, server) == ((), 0)


async def answer_from_a_worker(p: Process) -> None:
    """Hand each Call to a new process of this node, which replies to it."""

    async def worker(w: Process, call: Call) -> None:
        w.reply(call, ("worker", call.request))

    async for message in p.messages():
        if isinstance(message, Call):
            p.spawn(worker, message)


async def test_a_remote_call_answered_by_another_process_leaves_no_monitor() -> None:
    """A call forwarded to another process, which replies, still ends the call's monitor on
    the callee (gen_server's noreply + gen_server:reply from elsewhere)."""
    async with two_nodes() as (_, a, b), a.process() as me:
        router = b.spawn(answer_from_a_worker)
        assert await me.call(router, "q", timeout=5) == ("worker", "q")
        assert me.info().monitors == ()
        assert _open_calls(b, router) == ((), 0)


async def test_a_remote_call_that_times_out_or_fails_leaves_nothing_behind() -> None:
    """A timed-out call's demonitor reaches the callee's node; a callee that dies before it
    answers fails the call with its reason; neither leaves an open call on either node."""
    async with two_nodes() as (_, a, b), a.process() as me:
        silent = b.spawn(idle)
        with pytest.raises(TimeoutError):
            await me.call(silent, "never", timeout=0.01)
        assert me.info().monitors == ()
        assert _open_calls(b, silent) == ((), 0)
        dying = b.spawn(idle)
        calling = anyio.Event()

        async def call_it(p: Process) -> None:
            calling.set()
            with pytest.raises(CallFailed) as info:
                await p.call(dying, "crash", timeout=5)
            p.send(me.pid, info.value.reason)

        a.spawn(call_it)
        await calling.wait()
        await anyio.wait_all_tasks_blocked()
        assert b.inbound_calls == 1
        b.exit(dying, Shutdown("bye"))
        assert await me.receive(timeout=5) == Shutdown("bye")
        assert b.inbound_calls == 0


async def test_losing_the_caller_node_drops_its_open_calls() -> None:
    """When the caller's node is cut off, the callee's node forgets the calls it had from it,
    and the caller's call fails with NoConnection."""
    net = InMemoryNetwork()
    async with Node("b", transport=net.transport()) as b:
        server = b.spawn(idle)
        a = Node("a", transport=net.transport(), shutdown_timeout=0)
        async with a, a.process() as me:
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:

                    async def cut_off() -> None:
                        await anyio.wait_all_tasks_blocked()
                        assert b.inbound_calls == 1
                        net.disconnect("a")

                    tg.start_soon(cut_off)
                    with pytest.raises(CallFailed) as info:
                        await me.call(server, "q")
            assert info.value.reason == NoConnection("b")
        assert b.inbound_calls == 0
        assert _open_calls(b, server) == ((), 0)


async def test_remote_link_and_monitor_of_a_dead_pid_give_noproc() -> None:
    """Linking to or monitoring a dead remote pid delivers NoProc with what its node remembers."""
    async with two_nodes() as (_, a, b), a.process(trap_exits=True) as me:
        dead = b.spawn(exit_with, Shutdown("past"))
        await b.wait(dead)
        me.link(dead)
        signal = await me.receive(timeout=5)
        assert signal.sender == dead and signal.reason.last_reason == Shutdown("past")
        ref = me.monitor(dead)
        down = await me.receive(timeout=5)
        assert down.ref == ref and down.reason.last_reason == Shutdown("past")


async def test_closing_a_node_reports_each_remote_process_exit() -> None:
    """Leaving a node's block stops its processes; links and monitors across get their reasons."""
    net = InMemoryNetwork()
    async with Node("a", transport=net.transport()) as a, a.process(trap_exits=True) as me:
        async with Node("b", transport=net.transport()) as b:
            linked = b.spawn(idle)
            ref = me.monitor(linked)
            me.link(linked)
        stopping = Shutdown("node stopping")
        assert [await me.receive(timeout=5) for _ in range(2)] == [
            ExitSignal(linked, stopping),
            Down(ref, linked, stopping),
        ]
        assert me.info().links == () and me.info().monitors == ()
        assert net.node_names == ["a"]


async def test_losing_a_node_fires_noconnection_on_every_link_and_monitor() -> None:
    """A node cut off the network fires NoConnection on every link and monitor across, both ways."""
    net = InMemoryNetwork()
    async with Node("a", transport=net.transport()) as a, a.process(trap_exits=True) as me:
        b = Node("b", transport=net.transport(), shutdown_timeout=0)
        async with b, b.process(trap_exits=True) as far:
            linked = b.spawn(idle, trap_exits=True)
            watched = b.spawn(idle, trap_exits=True)
            me.link(linked)
            ref = me.monitor(watched)
            me.link(far.pid)
            ref_far = me.monitor(far.pid)
            far_ref = far.monitor(me.pid)
            net.disconnect("b")
            lost = NoConnection("b")
            got = [await me.receive(timeout=5) for _ in range(4)]
            assert sorted(map(repr, got)) == sorted(
                map(
                    repr,
                    [
                        ExitSignal(linked, lost),
                        Down(ref, watched, lost),
                        ExitSignal(far.pid, lost),
                        Down(ref_far, far.pid, lost),
                    ],
                )
            )
            assert me.info().links == () and me.info().monitors == () and me.info().monitored_by == ()
            # The far side sees a go as well, and can no longer reach it.
            got_far = {await far.receive(timeout=5), await far.receive(timeout=5)}
            assert got_far == {
                ExitSignal(me.pid, NoConnection("a")),
                Down(far_ref, me.pid, NoConnection("a")),
            }
            far.send(me.pid, "lost")
            ref_again = far.monitor(me.pid)
            assert await far.receive(timeout=0) == Down(ref_again, me.pid, NoConnection("a"))
            assert net.node_names == ["a"]
        assert me.mailbox_size == 0


async def test_disconnect_of_an_unknown_node_is_refused() -> None:
    """Disconnecting a name that is not attached raises ValueError naming it."""
    net = InMemoryNetwork()
    with pytest.raises(ValueError, match="'ghost'"):
        net.disconnect("ghost")


async def test_after_a_node_left_links_and_monitors_to_it_give_noconnection() -> None:
    """Linking to or monitoring a pid of a node that is gone fires NoConnection at once."""
    net = InMemoryNetwork()
    async with Node("a", transport=net.transport()) as a, a.process(trap_exits=True) as me:
        async with Node("b", transport=net.transport()) as b:
            gone = b.spawn(idle)
        me.send(gone, "dropped")
        me.link(gone)
        assert await me.receive(timeout=0) == ExitSignal(gone, NoConnection("b"))
        ref = me.monitor(gone)
        assert await me.receive(timeout=0) == Down(ref, gone, NoConnection("b"))
        with pytest.raises(CallFailed) as info:
            await me.call(gone, "req", timeout=5)
        assert info.value.reason == NoConnection("b")


async def test_a_node_without_transport_reaches_no_other() -> None:
    """Without a transport, a remote link or monitor fires NoConnection and sends are dropped."""
    async with Node("alone") as node, node.process(trap_exits=True) as me:
        elsewhere = Pid("other", 1, 1)
        me.send(elsewhere, "nowhere")
        me.send(("name", "other"), "nowhere")
        ref = me.monitor(elsewhere)
        assert await me.receive(timeout=0) == Down(ref, elsewhere, NoConnection("other"))
        me.link(elsewhere)
        assert await me.receive(timeout=0) == ExitSignal(elsewhere, NoConnection("other"))


async def test_pids_of_an_earlier_incarnation_are_stale() -> None:
    """A pid of a node's earlier incarnation is dead on the node's new incarnation."""
    net = InMemoryNetwork()
    async with Node("a", transport=net.transport()) as a, a.process(trap_exits=True) as me:
        async with Node("b", transport=net.transport()) as old_b:
            stale = old_b.spawn(idle)
        async with Node("b", transport=net.transport()) as new_b:
            assert new_b.incarnation > stale.incarnation
            fresh = new_b.spawn(forward, me.pid)
            assert fresh.serial == stale.serial  # same serial, new incarnation: different pid
            me.send(stale, "to the old one")
            ref = me.monitor(stale)
            assert await me.receive(timeout=5) == Down(ref, stale, NoProc(stale))
            me.link(stale)
            assert await me.receive(timeout=5) == ExitSignal(stale, NoProc(stale))
            me.send(fresh, "to the new one")
            assert await me.receive(timeout=5) == "to the new one"
            assert not new_b.is_alive(stale)
            with pytest.raises(CallFailed):
                await me.call(stale, "req", timeout=5)


async def test_a_stale_local_pid_is_dead_too() -> None:
    """A pid of this node's name but an earlier incarnation is NoProc locally."""
    async with Node("same") as old:
        stale = old.spawn(idle)
    async with Node("same") as node, node.process(trap_exits=True) as me:
        assert me.pid.serial == stale.serial and me.pid != stale
        ref = me.monitor(stale)
        assert await me.receive(timeout=0) == Down(ref, stale, NoProc(stale))
        me.link(stale)
        assert await me.receive(timeout=0) == ExitSignal(stale, NoProc(stale))


async def test_spawn_for_a_remote_owner() -> None:
    """A process started on one node for an owner on another is linked and monitored across."""
    async with two_nodes() as (_, a, b), a.process(trap_exits=True) as sup:
        ref = sup.reserve_monitor()
        async with b.process() as starter:
            child = starter.spawn_for(sup.pid, ref, exit_on_message)
        sup.bind_monitor(ref, child)
        assert child in sup.info().links
        sup.send(child, Shutdown("done"))
        got = {await sup.receive(timeout=5), await sup.receive(timeout=5)}
        assert got == {ExitSignal(child, Shutdown("done")), Down(ref, child, Shutdown("done"))}


async def test_spawn_for_a_dead_remote_owner_exits_noproc() -> None:
    """A process started for a remote owner that is already dead exits with NoProc."""
    async with two_nodes() as (_, a, b), a.process() as me:
        owner = a.spawn(exit_with, Normal())
        await a.wait(owner)
        async with b.process() as starter:
            child = starter.spawn_for(owner, me.reserve_monitor(), idle)
        reason = await b.wait(child)
        assert isinstance(reason, NoProc) and reason.pid == owner


async def test_the_same_name_twice_on_one_network_is_refused() -> None:
    """A second node with a name already on the network fails to start, and the first runs on."""
    net = InMemoryNetwork()
    async with Node("dup", transport=net.transport()) as first, first.process() as me:
        with pytest.raises(ValueError, match="'dup'"):
            async with Node("dup", transport=net.transport()):
                pass
        me.send(me.pid, "still fine")
        assert await me.receive(timeout=0) == "still fine"
