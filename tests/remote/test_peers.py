"""Peers and incarnations: restarts are accepted at once, strangers cut nobody off and cost
bounded memory and traffic.

Regression tests for issue 12, cases 5, 6 and 7: a node restarted with a smaller
incarnation was refused for good; one forged ``hello`` with a huge incarnation cut a live
node off for good; forged heartbeats with made-up names each made a peer that was kept and
sent heartbeats for ever.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest

import refcount_starter.runtime.pid as pid_module
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.remote.service import spawn_remote
from refcount_starter.runtime import Down, ExitSignal, NoConnection, Node

from .natsserver import PASSWORD, USER, NatsServer
from .nodeproc import node_process
from .test_processes import DETECTION_LIMIT, statistics_of
from .test_two_nodes import echo

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(90)]

MakeTransport = Callable[..., NatsTransport]


async def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll a counter of another connection's effect (nothing orders it with ours)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


async def raw_client(server: NatsServer) -> Any:
    return await nats.connect(server.url, user=USER, password=PASSWORD)


async def test_a_node_restarted_with_a_smaller_incarnation_is_accepted_at_once(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a node is seen down, its successor (another OS process, with a smaller
    incarnation, as after a clock step or a move to another host) is reached at once."""
    # The first w1 gets an incarnation above any random one (they are below 2**62).
    monkeypatch.setattr(pid_module, "_last_incarnation", 2**62 + 10)
    async with Node("t", transport=make_transport()) as t, t.process(trap_exits=True) as me:
        async with Node("w1", transport=make_transport()) as old:
            server = old.spawn(echo)
            me.link(server)
            assert await me.call(server, "old", timeout=10) == ("echo", "old")
        # It left: its goodbye ended the session (seen down), so the link fired.
        assert (await me.receive(ExitSignal, timeout=DETECTION_LIMIT)).sender == server
        async with node_process(nats_server, "w1", tmp_path) as w1:
            assert w1.incarnation < old.incarnation
            with anyio.fail_after(5):
                echo_pid, _ = await spawn_remote(me, "w1", "test.echo")
            assert echo_pid.incarnation == w1.incarnation
            assert await me.call(echo_pid, "new", timeout=10) == ("echo", "new")


async def test_a_killed_node_process_restarted_is_accepted_at_once(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """SIGKILL, seen down, then the same name started again: the first remote spawn to the
    new process succeeds, whatever the order of the two random incarnations."""
    async with Node("t", transport=make_transport()) as t, t.process(trap_exits=True) as me:
        async with node_process(nats_server, "w1", tmp_path) as w1:
            pid_1, ref = await spawn_remote(me, "w1", "test.sleeper")
            w1.signal(signal.SIGKILL)
            assert await me.receive(Down, timeout=DETECTION_LIMIT) == Down(ref, pid_1, NoConnection("w1"))
        async with node_process(nats_server, "w1", tmp_path) as again:
            assert again.incarnation != w1.incarnation
            with anyio.fail_after(5):
                echo_pid, _ = await spawn_remote(me, "w1", "test.echo")
            assert await me.call(echo_pid, "back", timeout=10) == ("echo", "back")


async def test_forged_claims_of_a_huge_incarnation_do_not_cut_a_live_node_off(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """A hello, a whois handshake and an envelope naming a live node process with a huge
    incarnation end nothing: the node asks the live one, which answers for itself."""
    transport = make_transport()
    huge = 2**63 - 1
    async with (
        node_process(nats_server, "w1", tmp_path) as w1,
        Node("t", transport=transport) as t,
        t.process(trap_exits=True) as me,
    ):
        echo_pid, ref = await spawn_remote(me, "w1", "test.echo")
        forged_envelope = msgspec.msgpack.encode([3, 1, "w1", huge, 1, 0, None])
        raw = await raw_client(nats_server)
        try:
            await raw.publish("rs.presence.w1", msgspec.msgpack.encode([3, "hello", "w1", huge]))
            await raw.publish(
                "rs.whois.t.w1", msgspec.msgpack.encode([3, "w1", huge]), reply="_INBOX.forger.1"
            )
            await raw.publish(transport.node_subject("t", t.incarnation, "w1"), forged_envelope)
            await raw.flush()
        finally:
            await raw.close()
        await wait_for(lambda: transport.statistics().verifications >= 1)
        assert transport.peers()["w1"] == w1.incarnation
        assert await me.call(echo_pid, "still here", timeout=10) == ("echo", "still here")
        stats = transport.statistics()
        assert stats.sessions_ended == 0 and stats.peers_up == 1
        with pytest.raises(TimeoutError):
            await me.receive((Down, ExitSignal), where=lambda m: getattr(m, "ref", None) == ref, timeout=0)


async def test_forged_heartbeats_from_made_up_names_make_no_peer_and_no_traffic(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """20,000 heartbeats from made-up node names onto a node process's subject: each is
    dropped and counted, no peer is made, and the node sends nothing in answer."""
    count = 20_000
    async with (
        node_process(nats_server, "w1", tmp_path) as w1,
        Node("t", transport=make_transport()) as t,
        t.process() as me,
    ):
        before = await statistics_of(me, "w1")
        raw = await raw_client(nats_server)
        try:
            for i in range(count):
                name = f"ghost{i}"
                forged = msgspec.msgpack.encode([3, 1, name, 1, 1, 0, None])
                await raw.publish(f"rs.node.w1.{w1.incarnation}.{name}", forged)
            await raw.flush()
        finally:
            await raw.close()
        with anyio.fail_after(20):
            while (stats := await statistics_of(me, "w1"))["strangers"] < before["strangers"] + count:
                await anyio.sleep(0.05)
        assert stats["peers"] == before["peers"] == 1  # t only
        # What w1 sent meanwhile: its answers to these statistics calls and heartbeats to t,
        # never anything per ghost.
        assert stats["sent"] - before["sent"] < count // 10


async def test_forged_handshakes_are_bounded_and_idle_peers_expire(make_transport: MakeTransport) -> None:
    """Whois handshakes from many made-up names fill the peer table only up to
    ``max_peers`` (the longest idle is forgotten first), and idle peers expire."""
    victim = make_transport(max_peers=50, peer_idle_timeout=0.5)
    async with (
        Node("v", transport=victim) as v,
        Node("a", transport=make_transport()) as a,
        a.process() as me,
    ):
        pid_on_v = v.spawn(echo)
        assert await me.call(pid_on_v, "hi", timeout=10) == ("echo", "hi")
        raw = await nats.connect(victim.options.servers[0], user=USER, password=PASSWORD)
        try:
            for i in range(500):
                await raw.publish(
                    f"rs.whois.v.ghost{i}", msgspec.msgpack.encode([3, f"ghost{i}", 1]), reply=f"_INBOX.x.{i}"
                )
            await raw.flush()
        finally:
            await raw.close()
        await wait_for(lambda: victim.statistics().peers == 50 and "ghost499" in victim.peers())
        assert "a" in victim.peers()  # the live peer was never forgotten
        assert await me.call(pid_on_v, "still", timeout=10) == ("echo", "still")
        await wait_for(lambda: set(victim.peers()) == {"a"})


async def test_an_envelope_from_a_node_without_a_handshake_is_dropped(make_transport: MakeTransport) -> None:
    """A well-formed envelope from a node that never asked who this node is creates no peer."""
    victim = make_transport()
    async with Node("v", transport=victim) as v:
        raw = await nats.connect(victim.options.servers[0], user=USER, password=PASSWORD)
        try:
            forged = msgspec.msgpack.encode([3, 0, "x", 7, 1, 0, msgspec.Raw(msgspec.msgpack.encode(None))])
            await raw.publish(victim.node_subject("v", v.incarnation, "x"), forged)
            await raw.flush()
        finally:
            await raw.close()
        await wait_for(lambda: victim.statistics().strangers == 1)
        assert victim.peers() == {}


async def test_a_node_restarted_before_it_is_seen_down_is_checked_and_accepted(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """Without advisories and with a long heartbeat bound, a killed node process started
    again is not left waiting for the bound: its hello and its handshake make the peer ask,
    the answer ends the old session (links fire) and the new one is reached at once."""
    bound = 0.25 * 60
    async with (
        Node("t", transport=make_transport(advisory_subject=None, heartbeat_misses=60)) as t,
        t.process(trap_exits=True) as me,
    ):
        async with node_process(nats_server, "w1", tmp_path) as w1:
            old, _ = await spawn_remote(me, "w1", "test.sleeper")
            me.link(old)
            w1.signal(signal.SIGKILL)
            await w1.process.wait()
        started = anyio.current_time()
        async with node_process(nats_server, "w1", tmp_path):
            with anyio.fail_after(bound / 2):
                assert await me.receive(ExitSignal) == ExitSignal(old, NoConnection("w1"))
                echo_pid, _ = await spawn_remote(me, "w1", "test.echo")
            assert await me.call(echo_pid, "new", timeout=10) == ("echo", "new")
        assert anyio.current_time() - started < bound


@asynccontextmanager
async def victim_and_stranger(
    make_transport: MakeTransport, **options: Any
) -> AsyncIterator[tuple[NatsTransport, Callable[[], Awaitable[None]], Any, str]]:
    """Node v (on a transport with ``options``) with an echo that node a has called; a raw
    client that may publish anything on v's subjects, and one of them. Yields v's
    transport, a check that the echo still answers a, the raw client and the subject."""
    victim = make_transport(**options)
    async with (
        Node("v", transport=victim) as v,
        Node("a", transport=make_transport()) as a,
        a.process() as me,
    ):
        pid_on_v = v.spawn(echo)

        async def still_served() -> None:
            assert await me.call(pid_on_v, "ping", timeout=10) == ("echo", "ping")

        await still_served()
        raw = await nats.connect(victim.options.servers[0], user=USER, password=PASSWORD)
        try:
            yield victim, still_served, raw, victim.node_subject("v", v.incarnation, "x")
        finally:
            await raw.close()


async def test_input_nested_too_deep_is_counted_and_logged_as_undecodable(
    make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: an envelope (or a batch, or a disconnect advisory) nested 10,000 levels
    deep raised RecursionError out of the transport's handler, uncounted. Each is dropped,
    counted in ``decode_errors`` and logged, and the node goes on."""
    deep = b"\x91" * 10_000 + b"\xc0"
    options = {"advisory_subject": "test.advisories"}
    async with victim_and_stranger(make_transport, **options) as (victim, still_served, raw, subject):
        await raw.publish(subject, b"\x97\x03\x00\xa1x\x01\x01\x00" + deep)  # a deep body
        await raw.publish(subject, b"\x97\x03\x03\xa1x\x01\x00\x00" + deep)  # a deep batch
        await raw.publish("test.advisories", b'{"client": {"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}")
        await raw.flush()
        await wait_for(lambda: victim.statistics().decode_errors == 3)
        assert sum("dropped undecodable input" in record.getMessage() for record in caplog.records) == 3
        await still_served()


async def test_a_flood_of_undecodable_input_is_counted_whole_and_logged_in_few_lines(
    make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a stranger's garbage was logged a line per message (660,000 lines for a
    flood). Every input is counted; at most ten lines a second say so one by one."""
    async with victim_and_stranger(make_transport) as (victim, still_served, raw, subject):
        started = time.monotonic()
        for _ in range(500):
            await raw.publish(subject, b"\xff garbage")
        await raw.flush()
        await wait_for(lambda: victim.statistics().decode_errors == 500)
        seconds = time.monotonic() - started
        lines = sum("dropped undecodable input" in record.getMessage() for record in caplog.records)
        assert 1 <= lines <= 10 * (int(seconds) + 2)  # ten a second at most
        await still_served()
