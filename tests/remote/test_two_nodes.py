"""Two nodes in one OS process, connected through a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.runtime import (
    Call,
    CallFailed,
    CallTimeout,
    Crashed,
    Down,
    ExitSignal,
    NoConnection,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    Shutdown,
)

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(30)]

MakeTransport = Callable[..., NatsTransport]


@asynccontextmanager
async def two_nodes(make_transport: MakeTransport) -> AsyncIterator[tuple[Node, Node]]:
    async with (
        Node("a", transport=make_transport()) as a,
        Node("b", transport=make_transport()) as b,
    ):
        yield a, b


@asynccontextmanager
async def warm_echo(
    a_transport: NatsTransport, b_transport: NatsTransport
) -> AsyncIterator[tuple[Node, Node, Process, Pid]]:
    """Nodes a and b on these transports, a process on a, and an echo on b it has called once."""
    async with (
        Node("a", transport=a_transport) as a,
        Node("b", transport=b_transport) as b,
        a.process() as me,
    ):
        pid = b.spawn(echo)
        assert await me.call(pid, "warm", timeout=10) == ("echo", "warm")
        yield a, b, me, pid


async def echo(p: Process) -> None:
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, ("echo", message.request))
        elif isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], Pid):
            p.send(message[0], ("echo", message[1]))
        elif message == "stop":
            return
        elif message == "crash":
            raise ValueError("asked to crash")


async def test_send_by_pid_and_reply(make_transport: MakeTransport) -> None:
    """A message to a pid on another node arrives, and so does the answer."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        me.send(server, (me.pid, {"k": [1, (2, 3)]}))
        assert await me.receive(timeout=10) == ("echo", {"k": [1, (2, 3)]})


async def test_send_to_registered_name_on_a_node(make_transport: MakeTransport) -> None:
    """``send((name, node), msg)`` reaches the process registered under that name there."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        b.spawn(echo, name="echo")
        me.send(("echo", "b"), (me.pid, "hi"))
        assert await me.receive(timeout=10) == ("echo", "hi")


async def test_call_across_nodes(make_transport: MakeTransport) -> None:
    """``call`` to a pid on another node returns its reply."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        assert await me.call(server, "ping", timeout=10) == ("echo", "ping")


async def test_call_to_a_dead_remote_pid_fails_with_noproc(make_transport: MakeTransport) -> None:
    """A call to a pid that died on another node fails with ``NoProc``, never hangs."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        b.send(server, "stop")
        assert await b.wait(server) == Normal()
        with pytest.raises(CallFailed) as failed:
            await me.call(server, "ping", timeout=10)
        assert isinstance(failed.value.reason, NoProc)


async def test_messages_keep_their_order(make_transport: MakeTransport) -> None:
    """A thousand messages from one process to another node arrive in the order sent."""

    async def collect(p: Process, reply_to: Pid, count: int) -> None:
        got = [await p.receive() for _ in range(count)]
        p.send(reply_to, got)

    async with two_nodes(make_transport) as (a, b), a.process() as me:
        collector = b.spawn(collect, me.pid, 1000)
        for i in range(1000):
            me.send(collector, i)
        assert await me.receive(timeout=20) == list(range(1000))


async def test_link_across_nodes_carries_the_crash(make_transport: MakeTransport) -> None:
    """A linked process on another node that crashes sends its ``Crashed`` reason."""
    async with two_nodes(make_transport) as (a, b), a.process(trap_exits=True) as me:
        server = b.spawn(echo)
        me.link(server)
        await me.call(server, "sync", timeout=10)  # the link is in place on b
        me.send(server, "crash")
        signal = await me.receive(ExitSignal, timeout=10)
        assert signal.sender == server
        assert isinstance(signal.reason, Crashed) and signal.reason.exc_type == "ValueError"


async def test_monitor_across_nodes(make_transport: MakeTransport) -> None:
    """A monitor on a pid of another node gets ``Down`` with its exit reason."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        ref = me.monitor(server)
        me.send(server, "stop")
        assert await me.receive(Down, timeout=10) == Down(ref, server, Normal())


async def test_exit_signal_across_nodes(make_transport: MakeTransport) -> None:
    """``exit(pid, reason)`` reaches a trapping process on another node as ``ExitSignal``."""

    async def trapper(p: Process, report_to: Pid) -> None:
        signal = await p.receive(ExitSignal)
        # Wrapped: an ExitSignal sent on as it is, naming a process of another node than
        # b, would be dropped as an imitation (see docs/nats.md).
        p.send(report_to, ("trapped", signal))

    async with two_nodes(make_transport) as (a, b), a.process() as me:
        target = b.spawn(trapper, me.pid, trap_exits=True)
        me.exit(target, Shutdown(("db", 3)))
        assert await me.receive(timeout=10) == ("trapped", ExitSignal(me.pid, Shutdown(("db", 3))))


async def test_link_to_a_dead_remote_pid_delivers_noproc(make_transport: MakeTransport) -> None:
    """Linking to a pid unknown on its (live) node delivers ``NoProc`` at once."""
    async with two_nodes(make_transport) as (a, b), a.process(trap_exits=True) as me:
        ghost = Pid("b", b.incarnation, 999_999)
        me.link(ghost)
        signal = await me.receive(ExitSignal, timeout=10)
        assert signal.sender == ghost and isinstance(signal.reason, NoProc)


async def test_pid_of_an_earlier_incarnation_is_stale(make_transport: MakeTransport) -> None:
    """A pid of an earlier incarnation of a live node is stale: monitoring it gives ``NoProc``."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        stale = Pid("b", b.incarnation - 1, server.serial)
        ref = me.monitor(stale)
        down = await me.receive(Down, timeout=10)
        assert down.ref == ref and isinstance(down.reason, NoProc)


async def test_unknown_node_gives_noconnection(make_transport: MakeTransport) -> None:
    """A monitor on a pid of a node nobody runs fires ``NoConnection``."""
    async with Node("a", transport=make_transport()) as a, a.process() as me:
        ref = me.monitor(Pid("nowhere", 1, 1))
        assert await me.receive(Down, timeout=15) == Down(ref, Pid("nowhere", 1, 1), NoConnection("nowhere"))


async def test_peer_node_exit_fires_noconnection(make_transport: MakeTransport) -> None:
    """When a node leaves, links and monitors across to it fire ``NoConnection``."""
    async with Node("a", transport=make_transport()) as a, a.process(trap_exits=True) as me:
        async with Node("b", transport=make_transport()) as b:

            async def sleeper(p: Process) -> None:
                await anyio.sleep_forever()

            linked = b.spawn(sleeper)
            watched = b.spawn(sleeper)
            me.link(linked)
            ref = me.monitor(watched)
            assert await me.call(b.spawn(echo), "sync", timeout=10) == ("echo", "sync")
        reasons = set()
        for _ in range(2):
            message = await me.receive((ExitSignal, Down), timeout=15)
            reasons.add((type(message), message.reason))
        # The node stopped its processes: their real reasons may arrive first; either way,
        # each watcher learns (Shutdown from the stopping node, or NoConnection).
        assert {kind for kind, _ in reasons} == {ExitSignal, Down}
        for _, reason in reasons:
            assert reason in (Shutdown("node stopping"), NoConnection("b"))
        assert ref is not None


async def test_unregistered_message_type_is_refused_at_send(make_transport: MakeTransport) -> None:
    """Sending a value of an unregistered type to another node raises a TypeError naming it."""

    class Secret:
        pass

    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        with pytest.raises(TypeError, match="Secret"):
            me.send(server, Secret())
        assert await me.call(server, "still fine", timeout=10) == ("echo", "still fine")


async def answer_twice(p: Process) -> None:
    """Answer a Call with a value that cannot cross nodes, then with one that can."""

    class LocalOnly:
        pass

    call = await p.receive(Call)
    try:
        p.reply(call, LocalOnly())
    except TypeError as exc:
        p.reply(call, ("refused", "LocalOnly" in str(exc)))


async def test_a_call_across_nodes_leaves_no_monitor_and_survives_an_unencodable_reply(
    make_transport: MakeTransport,
) -> None:
    """The reply ends the call's monitor on both nodes; a reply that cannot be encoded raises
    in the replier and leaves the call open, so the caller still gets the next reply."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        server = b.spawn(echo)
        for i in range(3):
            assert await me.call(server, i, timeout=10) == ("echo", i)
        assert b.info(server).monitored_by == () and b.inbound_calls == 0
        assert me.info().monitors == ()
        twice = b.spawn(answer_twice)
        assert await me.call(twice, "q", timeout=10) == ("refused", True)
        assert me.info().monitors == () and b.inbound_calls == 0


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_clearly(make_transport: MakeTransport) -> None:
    """On trio, attaching the NATS transport raises ``TransportNeedsAsyncio``."""
    from refcount_starter.remote.errors import TransportNeedsAsyncio

    with pytest.raises(TransportNeedsAsyncio, match="asyncio"):
        async with Node("t", transport=make_transport()):
            pass


async def collector(p: Process, owner: Pid) -> None:
    """Collect messages until "done" or an exit signal; report them to ``owner``."""
    p.trap_exits = True
    p.link(owner)
    p.send(owner, "linked")
    got: list[int] = []
    while True:
        message = await p.receive()
        if isinstance(message, ExitSignal):
            p.send(owner, ("report", got, message.reason))
            return
        if message == "done":
            p.send(owner, ("report", got, None))
            return
        got.append(message)


async def test_dropped_envelopes_end_the_session_on_both_sides(make_transport: MakeTransport) -> None:
    """A receiver that drops envelopes (slow consumer) gets an unbroken prefix, and both sides'
    links fire ``NoConnection``: nothing is lost silently."""
    count = 5000
    async with (
        Node("a", transport=make_transport()) as a,
        Node("b", transport=make_transport(pending_msgs_limit=20)) as b,
        a.process(trap_exits=True) as me,
    ):
        pid = b.spawn(collector, me.pid)
        assert await me.receive(str, timeout=10) == "linked"
        for i in range(count):
            me.send(pid, i)
        me.send(pid, "done")
        _, got, reason = await me.receive(tuple, timeout=20)
        assert got == list(range(len(got))), "a hole in what arrived"
        if len(got) < count:
            assert reason == NoConnection("a")
            assert await me.receive(ExitSignal, timeout=10) == ExitSignal(pid, NoConnection("b"))
        else:
            assert reason is None


async def test_a_gap_in_the_sequence_ends_the_session_on_both_sides(make_transport: MakeTransport) -> None:
    """An envelope that skips a sequence number ends the session: both sides fire NoConnection."""
    import msgspec
    import nats

    from refcount_starter.remote.codec import encode

    b_transport = make_transport()
    async with (
        Node("a", transport=make_transport()) as a,
        Node("b", transport=b_transport) as b,
        a.process(trap_exits=True) as me,
    ):
        pid = b.spawn(collector, me.pid)
        assert await me.receive(str, timeout=10) == "linked"
        peer = b_transport._peers["a"]
        forged = msgspec.msgpack.encode(
            [3, 0, "a", a.incarnation, peer.epoch, peer.in_seq + 3, msgspec.Raw(encode(None))]
        )
        raw = await nats.connect(b_transport._servers[0], user="node", password="node-secret")
        try:
            await raw.publish(b_transport.node_subject("b", b.incarnation, "a"), forged)
            await raw.flush()
        finally:
            await raw.close()
        assert await me.receive(tuple, timeout=10) == ("report", [], NoConnection("a"))
        assert await me.receive(ExitSignal, timeout=10) == ExitSignal(pid, NoConnection("b"))
        assert b_transport.statistics().gaps == 1
        assert await me.call(b.spawn(echo), "fresh session", timeout=10) == ("echo", "fresh session")


async def test_an_unencodable_exit_reason_still_fires_the_link(make_transport: MakeTransport) -> None:
    """A process that exits with a reason that cannot cross nodes still breaks its remote link."""
    from refcount_starter.runtime import ProcessExit

    class LocalOnly:
        pass

    async def dies_oddly(p: Process) -> None:
        await p.receive()
        raise ProcessExit(Shutdown(LocalOnly()))

    async with two_nodes(make_transport) as (a, b), a.process(trap_exits=True) as me:
        pid = b.spawn(dies_oddly)
        me.link(pid)
        await me.call(b.spawn(echo), "sync", timeout=10)
        me.send(pid, "go")
        signal = await me.receive(ExitSignal, timeout=10)
        assert signal.sender == pid
        # A Shutdown stays a Shutdown (a transient child is not restarted), described in text.
        assert type(signal.reason) is Shutdown and "LocalOnly" in str(signal.reason.detail)


async def test_envelopes_queued_together_travel_as_one_batch_in_order(make_transport: MakeTransport) -> None:
    """Signals sent in one go to one node share NATS messages and still arrive in order."""
    a_transport = make_transport()
    async with warm_echo(a_transport, make_transport()) as (_, _, me, pid):
        for i in range(200):
            me.send(pid, (me.pid, i))
        assert [await me.receive(tuple, timeout=10) for _ in range(200)] == [("echo", i) for i in range(200)]
        assert a_transport.statistics().batches >= 1


async def test_a_publish_that_must_wait_keeps_the_order(make_transport: MakeTransport) -> None:
    """When nats-py has to wait inside a publish (a full buffer, a reconnect), that publish is
    finished by a task and what was queued behind it follows, in order; nothing is lost."""
    import asyncio

    a_transport = make_transport()
    async with warm_echo(a_transport, make_transport()) as (_, _, me, pid):
        nc = a_transport._nc
        publish = nc.publish
        slowed = 0

        async def slow_publish(subject: str, data: bytes) -> None:
            nonlocal slowed
            if slowed < 5:
                slowed += 1
                await asyncio.sleep(0.01)  # suspends, as a publish waiting for its flusher does
            await publish(subject, data)

        nc.publish = slow_publish
        try:
            for i in range(100):
                me.send(pid, (me.pid, i))
                if i % 10 == 0:
                    await anyio.sleep(0)  # several loop iterations, so several publishes
            got = [await me.receive(tuple, timeout=10) for _ in range(100)]
        finally:
            nc.publish = publish
        assert got == [("echo", i) for i in range(100)]
        assert slowed >= 2  # the slow path ran, and went on after its first publish
        stats = a_transport.statistics()
        assert stats.undeliverable == 0 and stats.sent >= 101


async def test_a_full_client_buffer_publishes_from_a_task_in_order(make_transport: MakeTransport) -> None:
    """When nats-py's buffer would overflow (it then flushes by force, with a timeout that
    needs a task), the envelope goes through a task instead of the caller's send; the order
    holds and nothing is lost."""
    a_transport = make_transport(connect_options={"pending_size": 256})
    async with warm_echo(a_transport, make_transport()) as (_, _, me, pid):
        slow = a_transport._publisher._publish_slowly
        tasks = 0

        def counted(*args: object) -> object:
            nonlocal tasks
            tasks += 1
            return slow(*args)  # type: ignore[arg-type]

        a_transport._publisher._publish_slowly = counted  # type: ignore[method-assign]
        for i in range(50):
            me.send(pid, (me.pid, "x" * 100 + str(i)))
        got = [await me.receive(tuple, timeout=10) for _ in range(50)]
        assert got == [("echo", "x" * 100 + str(i)) for i in range(50)]
        assert tasks >= 1
        assert a_transport.statistics().undeliverable == 0


async def test_a_batch_inside_a_batch_is_dropped_and_counted(make_transport: MakeTransport) -> None:
    """A batch nested in a batch is undecodable input: dropped, counted, the node serves on."""
    import msgspec
    import nats

    b_transport = make_transport()
    async with warm_echo(make_transport(), b_transport) as (a, b, me, pid):
        inner = msgspec.msgpack.encode([3, 3, "a", a.incarnation, 0, 0, []])
        forged = msgspec.msgpack.encode([3, 3, "a", a.incarnation, 0, 0, [msgspec.Raw(inner)]])
        before = b_transport.statistics().decode_errors
        raw = await nats.connect(b_transport._servers[0], user="node", password="node-secret")
        try:
            await raw.publish(b_transport.node_subject("b", b.incarnation, "a"), forged)
            await raw.flush()
        finally:
            await raw.close()
        # The forged message comes on another connection: nothing orders it with ours, so
        # watch the counter, with a deadline.
        with anyio.fail_after(10):
            while b_transport.statistics().decode_errors == before:
                await anyio.sleep(0.005)
        assert await me.call(pid, "still serving", timeout=10) == ("echo", "still serving")


async def answer_when_told(p: Process) -> None:
    """Keeps the calls it gets; the call "answer" has it answer them all, then itself."""
    calls: list[Call] = []
    async for message in p.messages():
        if isinstance(message, Call):
            if message.request != "answer":
                calls.append(message)
                continue
            for call in calls:
                p.reply(call, "late")
            calls.clear()
            p.reply(message, "answered")


async def test_a_late_reply_from_another_node_is_dropped(make_transport: MakeTransport) -> None:
    """The reply to a call that timed out, sent from another node (as a plain Reply once the
    callee's node has dropped the call, or as a ReplySignal if it has not yet), is dropped
    where the caller is (ADR-0010)."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        pid = b.spawn(answer_when_told)
        with pytest.raises(CallTimeout):
            await me.call(pid, "req", timeout=0.05)
        # Answered after the late reply, on the same session: by then it has come and gone.
        assert await me.call(pid, "answer", timeout=10) == "answered"
        assert me.queued() == []
        assert me.info().monitors == ()
