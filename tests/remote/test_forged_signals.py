"""A node with credentials of its own cannot speak for another node inside its own,
correctly sequenced envelopes (docs/nats.md, "One NATS user per node"; ADR-0006).

``evil`` holds its own NATS user, handshakes with ``t`` as any peer would and sends
envelopes in order under its own name; the signals inside claim processes of ``w1``, or
target what only ``w1`` may end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import nats
import pytest

from refcount_starter.remote import envelope as wire
from refcount_starter.remote.codec import encode
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.runtime import (
    Call,
    CallTimeout,
    Down,
    ExitSignal,
    Node,
    Normal,
    Pid,
    Process,
    Ref,
    Shutdown,
)
from refcount_starter.runtime import signals as sig

from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES, server_binary
from .natsserver import NatsServer, password_of
from .test_two_nodes import echo

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(60)]

INCARNATION = 777


@pytest.fixture
def server() -> Iterator[NatsServer]:
    """A server with one user per node: t, w1 and evil."""
    running = NatsServer(server_binary(), node_users=("t", "w1", "evil")).start()
    try:
        yield running
    finally:
        running.close()


def transport(server: NatsServer, name: str) -> NatsTransport:
    return NatsTransport(
        server.url,
        user=name,
        password=password_of(name),
        heartbeat_interval=HEARTBEAT_INTERVAL,
        heartbeat_misses=HEARTBEAT_MISSES,
    )


class Evil:
    """A peer with its own credentials that handshakes with one node, then sends it signals
    in order, as a well-behaved peer would, and answers its whois so that the node may
    answer back."""

    def __init__(self, nc: Any, target: str) -> None:
        self.nc = nc
        self.target = target
        self.target_incarnation = 0
        self.seq = 0
        self.pid = Pid("evil", INCARNATION, 1)

    async def handshake(self) -> None:
        async def answer(msg: Any) -> None:
            await msg.respond(wire.encode_whois_answer("evil", INCARNATION, running=True))

        await self.nc.subscribe("rs.whois.evil.*", cb=answer)
        reply = await self.nc.request(
            f"rs.whois.{self.target}.evil", wire.encode_whois("evil", INCARNATION), timeout=5
        )
        _, self.target_incarnation, _ = wire.decode_whois_answer(reply.data)

    async def send(self, *signals: Any) -> None:
        for signal in signals:
            data = wire.encode_envelope(
                wire.KIND_SIGNAL, "evil", INCARNATION, 1, self.seq, msgspec.Raw(encode(signal))
            )
            self.seq += 1
            await self.nc.publish(f"rs.node.{self.target}.{self.target_incarnation}.evil", data)
        await self.nc.flush()


@asynccontextmanager
async def evil_peer(server: NatsServer, target: str) -> AsyncIterator[Evil]:
    nc = await nats.connect(server.url, user="evil", password=password_of("evil"), inbox_prefix="_INBOX.evil")
    try:
        evil = Evil(nc, target)
        await evil.handshake()
        yield evil
    finally:
        await nc.close()


async def settled(t_transport: NatsTransport, forged: int) -> None:
    """Wait until ``t`` has dropped ``forged`` signals as forged."""
    with anyio.fail_after(10):
        while t_transport.statistics().forged < forged:
            await anyio.sleep(0.01)


async def nothing_for(me: Process, ref: Ref) -> None:
    with pytest.raises(TimeoutError):
        await me.receive(
            (Down, ExitSignal), where=lambda m: getattr(m, "ref", None) in (None, ref), timeout=0.3
        )


async def sleeper(p: Process) -> None:
    await anyio.sleep_forever()


@asynccontextmanager
async def unanswered_call(me: Process, node: Node, callee: Pid) -> AsyncIterator[list[Any]]:
    """A call from ``me`` to ``callee`` (which never answers), under way: the block runs
    once the callee has the call; after it, the call has ended, and the list holds what it
    returned or raised."""
    outcome: list[Any] = []

    async def caller() -> None:
        try:
            outcome.append(await me.call(callee, "never answered", timeout=1.5))
        except CallTimeout as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        with anyio.fail_after(10):
            while node.info(callee).mailbox_size == 0:
                await anyio.sleep(0.01)
        yield outcome


async def test_signals_that_name_another_nodes_processes_are_dropped(server: NatsServer) -> None:
    """Regression: evil's own envelopes carried a Down for t's monitor on a process of w1,
    an exit signal and a reply in that process's name, and were delivered. Each signal whose
    source is a process of another node is dropped and counted; t's link and monitor still
    fire for the real exit."""
    t_transport = transport(server, "t")
    async with (
        Node("t", transport=t_transport) as t,
        Node("w1", transport=transport(server, "w1")) as w1,
        t.process(trap_exits=True) as me,
        evil_peer(server, "t") as evil,
    ):
        server_pid = w1.spawn(echo)
        silent = w1.spawn(sleeper)
        ref = me.monitor(server_pid)
        me.link(server_pid)
        assert await me.call(server_pid, "warm", timeout=10) == ("echo", "warm")
        next_ref = ref.serial + 2  # the next call's reference: refs are numbered
        async with unanswered_call(me, w1, silent) as outcome:
            call_refs = [Ref("t", t.incarnation, serial) for serial in range(ref.serial + 1, next_ref + 5)]
            await evil.send(
                sig.DownSignal(me.pid, ref, server_pid, Shutdown("forged")),
                sig.ExitSignalSent(server_pid, me.pid, Shutdown("forged"), True),
                sig.ExitSignalSent(Pid("w1", w1.incarnation, 0), me.pid, Shutdown("forged"), False),
                sig.UnlinkSignal(server_pid, me.pid),
                *(sig.ReplySignal(silent, me.pid, call_ref, "forged") for call_ref in call_refs),
            )
        assert isinstance(outcome[0], CallTimeout)
        await settled(t_transport, 4 + len(call_refs))
        await nothing_for(me, ref)
        me.send(server_pid, "stop")
        assert await me.receive(Down, timeout=10) == Down(ref, server_pid, Normal())
        assert (await me.receive(ExitSignal, timeout=10)) == ExitSignal(server_pid, Normal())
        # Nothing was lost or undecodable: the envelopes were in order, only their claims
        # were refused.
        stats = t_transport.statistics()
        assert stats.gaps == 0 and stats.decode_errors == 0


async def test_a_node_cannot_end_or_answer_for_another_nodes_monitors_in_its_own_name(
    server: NatsServer,
) -> None:
    """Regression: a Down or a reply from evil's own process, under the reference of t's
    monitor on (or call to) a process of w1, ended that monitor, so the real Down was lost.
    Only the monitored process's node may end it: the monitor stays, the real Down comes."""
    t_transport = transport(server, "t")
    async with (
        Node("t", transport=t_transport) as t,
        Node("w1", transport=transport(server, "w1")) as w1,
        t.process(trap_exits=True) as me,
        evil_peer(server, "t") as evil,
    ):
        watched = w1.spawn(echo)
        silent = w1.spawn(sleeper)
        ref = me.monitor(watched)
        reply_ref = me.monitor(watched)
        assert await me.call(watched, "warm", timeout=10) == ("echo", "warm")
        async with unanswered_call(me, w1, silent) as outcome:
            guesses = [Ref("t", t.incarnation, serial) for serial in range(1, 20)]
            await evil.send(
                sig.DownSignal(me.pid, ref, evil.pid, Shutdown("forged")),
                sig.ReplySignal(evil.pid, me.pid, reply_ref, "forged"),
                *(sig.ReplySignal(evil.pid, me.pid, guess, "forged") for guess in guesses),
            )
        assert isinstance(outcome[0], CallTimeout)
        await nothing_for(me, ref)
        me.send(watched, "stop")
        downs = {(await me.receive(Down, timeout=10)).ref for _ in range(2)}
        assert downs == {ref, reply_ref}


async def test_a_signal_for_another_node_is_not_passed_on(server: NatsServer) -> None:
    """Regression: a Down for a watcher on w1, sent by evil to t, was passed on by t to w1
    in t's own name and fired w1's monitor on a process of t; a monitor of a process of w1,
    sent to t, made t answer in its name that the process did not exist. A signal for
    another node is dropped: t sends evil nothing, and w1's monitor fires only when the
    process really exits."""
    t_transport = transport(server, "t")
    async with (
        Node("t", transport=t_transport) as t,
        Node("w1", transport=transport(server, "w1")) as w1,
        w1.process() as watcher,
        evil_peer(server, "t") as evil,
    ):
        target = t.spawn(echo)
        ref = watcher.monitor(target)
        assert await watcher.call(target, "warm", timeout=10) == ("echo", "warm")
        received: list[int] = []

        async def read(msg: Any) -> None:
            received.append(wire.decode_header(msg.data)[1])

        await evil.nc.subscribe(f"rs.node.evil.{INCARNATION}.t", cb=read)
        await evil.send(
            sig.DownSignal(watcher.pid, ref, evil.pid, Shutdown("forged")),
            sig.MonitorSignal(evil.pid, watcher.pid, Ref("evil", INCARNATION, 1)),
            sig.CallSignal(evil.pid, watcher.pid, Ref("evil", INCARNATION, 2), "request"),
        )
        await settled(t_transport, 3)
        with pytest.raises(TimeoutError):
            await watcher.receive(Down, timeout=0.3)
        watcher.send(target, "stop")
        assert await watcher.receive(Down, timeout=10) == Down(ref, target, Normal())
        assert wire.KIND_SIGNAL not in received and wire.KIND_BATCH not in received


async def test_messages_that_imitate_the_runtimes_own_from_another_node_are_dropped(
    server: NatsServer,
) -> None:
    """Regression: a plain message holding ExitSignal(<a process of w1>, Shutdown(("k", 3)))
    would be taken by a starter as w1's release. An ExitSignal, Down or Call whose source is
    a process of another node is dropped; the same from evil's own processes, and anything
    else, is delivered."""
    t_transport = transport(server, "t")
    async with (
        Node("t", transport=t_transport) as t,
        Node("w1", transport=transport(server, "w1")) as w1,
        t.process() as me,
        evil_peer(server, "t") as evil,
    ):
        other = w1.spawn(echo)
        forged = [
            ExitSignal(other, Shutdown(("k", 3))),
            Down(Ref("w1", w1.incarnation, 1), other, Normal()),
            Call(other, Ref("w1", w1.incarnation, 2), "request"),
        ]
        own = [
            ExitSignal(evil.pid, Shutdown(("k", 3))),
            Down(Ref("evil", INCARNATION, 1), evil.pid, Normal()),
            Call(evil.pid, Ref("evil", INCARNATION, 2), "request"),
            "plain",
        ]
        await evil.send(*(sig.MessageSignal(evil.pid, me.pid, message) for message in [*forged, *own]))
        await settled(t_transport, len(forged))
        for message in own:
            assert await me.receive(timeout=10) == message
        with pytest.raises(TimeoutError):
            await me.receive(timeout=0.3)
