"""Messages of any size up to the limit arrive whole; above it ``send`` refuses at the sender.

Regression tests for issue 12, cases 1 and 2: a burst packed into one NATS message over the
server's ``max_payload``, and a single message over it, were dropped and ended the session
without a word to the sender.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refcount_starter.remote import envelope as wire
from refcount_starter.remote.errors import MessageTooLarge
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.remote.service import spawn_remote
from refcount_starter.runtime import (
    Call,
    Down,
    ExitSignal,
    NoConnection,
    Node,
    Process,
    ProcessExit,
    Shutdown,
)

from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES, server_binary
from .natsserver import PASSWORD, USER, NatsServer
from .nodeproc import node_process
from .test_two_nodes import echo

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(90)]

#: A server limit well below nats-server's default of 1 MB.
SMALL_PAYLOAD = 64 * 1024


@pytest.fixture(params=[None, SMALL_PAYLOAD], ids=["default-max-payload", "64KiB-max-payload"])
def server(request: pytest.FixtureRequest) -> Iterator[NatsServer]:
    """A nats-server with its default ``max_payload`` (1 MB), or a small one."""
    server = NatsServer(server_binary(), max_payload=request.param).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def transport_on(server: NatsServer) -> Callable[..., NatsTransport]:
    def make(**options: Any) -> NatsTransport:
        options.setdefault("heartbeat_interval", HEARTBEAT_INTERVAL)
        options.setdefault("heartbeat_misses", HEARTBEAT_MISSES)
        return NatsTransport(server.url, user=USER, password=PASSWORD, **options)

    return make


async def test_a_burst_larger_than_max_payload_arrives_whole_across_processes(
    server: NatsServer, transport_on: Callable[..., NatsTransport], tmp_path: Path
) -> None:
    """2,500 sends of 500 bytes in one loop iteration reach a node process, in order, and
    come back; batches stay within the server's max_payload, so no session ends."""
    count = 2_500
    transport = transport_on()
    async with (
        node_process(server, "w1", tmp_path),
        Node("t", transport=transport) as t,
        t.process() as me,
    ):
        pid, _ = await spawn_remote(me, "w1", "test.echo")
        watch = me.monitor(pid)
        for i in range(count):
            me.send(pid, (me.pid, (i, "x" * 500)))
        got = [await me.receive(tuple, timeout=20) for _ in range(count)]
        assert got == [("echo", (i, "x" * 500)) for i in range(count)]
        stats = transport.statistics()
        assert stats.batches >= 1
        assert stats.sessions_ended == 0 and stats.undeliverable == 0
        with pytest.raises(TimeoutError):
            await me.receive(Down, where=lambda d: d.ref == watch, timeout=0)


async def test_a_message_larger_than_max_payload_arrives_whole_across_processes(
    server: NatsServer, transport_on: Callable[..., NatsTransport], tmp_path: Path
) -> None:
    """A single 1.2 MB message goes out in fragments, is reassembled on a node process, and
    its echo comes back the same way; the session stays up."""
    payload = bytes(range(256)) * (1_200_000 // 256)
    transport = transport_on()
    async with (
        node_process(server, "w1", tmp_path),
        Node("t", transport=transport) as t,
        t.process() as me,
    ):
        pid, _ = await spawn_remote(me, "w1", "test.echo")
        me.send(pid, (me.pid, payload))
        me.send(pid, (me.pid, "after"))
        assert await me.receive(tuple, timeout=20) == ("echo", payload)
        assert await me.receive(tuple, timeout=20) == ("echo", "after")
        stats = transport.statistics()
        assert stats.fragments >= 2
        assert stats.sessions_ended == 0 and stats.undeliverable == 0


async def test_a_message_above_the_limit_is_refused_at_the_sender_and_nothing_else_changes(
    transport_on: Callable[..., NatsTransport],
) -> None:
    """Above ``max_message_size``, ``send`` raises ``MessageTooLarge`` naming the sizes;
    nothing is sent, and the session and the next messages are unaffected."""
    a_transport = transport_on(max_message_size=100_000)
    async with (
        Node("a", transport=a_transport) as a,
        Node("b", transport=transport_on()) as b,
        a.process() as me,
    ):
        pid = b.spawn(echo)
        assert await me.call(pid, "warm", timeout=10) == ("echo", "warm")
        before = a_transport.statistics()
        with pytest.raises(MessageTooLarge, match=r"larger than .*max_message_size of 100000") as refused:
            me.send(pid, (me.pid, b"x" * 200_000))
        assert refused.value.node == "b" and refused.value.size > 200_000
        assert a_transport.statistics().sent == before.sent
        me.send(pid, (me.pid, b"y" * 90_000))
        assert await me.receive(tuple, timeout=10) == ("echo", b"y" * 90_000)
        assert await me.call(pid, "still", timeout=10) == ("echo", "still")
        assert a_transport.statistics().sessions_ended == 0


async def test_fragments_beyond_the_receivers_limit_end_the_session_on_both_sides(
    transport_on: Callable[..., NatsTransport],
) -> None:
    """A receiver with a smaller limit does not reassemble more than it: the session ends,
    and both sides' links fire ``NoConnection`` (never a silent loss)."""
    async with (
        Node("a", transport=transport_on()) as a,
        Node("b", transport=transport_on(max_message_size=100_000)) as b,
        a.process(trap_exits=True) as me,
    ):
        pid = b.spawn(echo)
        me.link(pid)
        assert await me.call(pid, "warm", timeout=10) == ("echo", "warm")
        me.send(pid, (me.pid, b"z" * 2_000_000))
        assert await me.receive(ExitSignal, timeout=10) == ExitSignal(pid, NoConnection("b"))


async def test_unfinished_fragmented_signals_are_bounded_across_all_peers(
    transport_on: Callable[..., NatsTransport],
) -> None:
    """Regression: made-up peers that each sent almost ``max_message_size`` of pieces and
    never the last one held it for ever, so a few of them held many times the limit. What
    all peers hold together stays within ``max_reassembly_bytes``: the oldest unfinished
    signal is dropped and its session ended; a real peer's large message still arrives."""
    limit = 400_000
    assert transport_on(max_message_size=limit).options.reassembly_limit == 8 * limit  # default
    victim = transport_on(max_message_size=limit, max_reassembly_bytes=2 * limit)
    assert victim.options.reassembly_limit == 2 * limit
    async with (
        Node("v", transport=victim) as v,
        Node("a", transport=transport_on()) as a,
        a.process() as me,
    ):
        pid = v.spawn(echo)
        assert await me.call(pid, "warm", timeout=10) == ("echo", "warm")
        raw = await nats.connect(victim.options.servers[0], user=USER, password=PASSWORD)
        piece = b"x" * 30_000
        try:
            for k in range(4):
                name = f"stalled{k}"
                answer = await raw.request(f"rs.whois.v.{name}", wire.encode_whois(name, 9), timeout=5)
                _, incarnation, _ = wire.decode_whois_answer(answer.data)
                for seq in range(12):  # 360,000 bytes, never the last piece
                    data = wire.encode_envelope(wire.KIND_FRAGMENT, name, 9, 1, seq, piece)
                    await raw.publish(f"rs.node.v.{incarnation}.{name}", data)
                await raw.flush()
                with anyio.fail_after(10):
                    while victim.statistics().received < 12 * (k + 1):
                        await anyio.sleep(0.01)
                assert victim.statistics().reassembling <= 2 * limit
        finally:
            await raw.close()
        stats = victim.statistics()
        # The third and fourth made room: the first and second were dropped, oldest first.
        assert stats.reassembly_drops == 2 and stats.reassembling == 2 * 360_000
        assert stats.sessions_ended == 2
        big = b"z" * (limit - 1_000)
        assert await me.call(pid, big, timeout=10) == ("echo", big)
        # In fragments (under the small max_payload), it made room by dropping the oldest
        # stalled signal in turn; a's session never ended.
        stats = victim.statistics()
        assert stats.reassembly_drops in (2, 3) and stats.sessions_ended == stats.reassembly_drops


async def test_an_exit_reason_above_the_limit_still_fires_the_link(
    transport_on: Callable[..., NatsTransport],
) -> None:
    """A process exiting with a reason too large to travel still breaks its remote link,
    with a ``Crashed`` stand-in that says why."""

    async def dies_big(p: Process) -> None:
        await p.receive()
        raise ProcessExit(Shutdown("r" * 200_000))

    async with (
        Node("a", transport=transport_on()) as a,
        Node("b", transport=transport_on(max_message_size=100_000)) as b,
        a.process(trap_exits=True) as me,
    ):
        pid = b.spawn(dies_big)
        me.link(pid)
        assert await me.call(b.spawn(echo), "sync", timeout=10) == ("echo", "sync")
        me.send(pid, "go")
        signal = await me.receive(ExitSignal, timeout=10)
        # A Shutdown stays a Shutdown (normal for restart policies), saying why it was replaced.
        assert signal.sender == pid and type(signal.reason) is Shutdown
        assert "max_message_size" in str(signal.reason.detail)


async def test_a_reply_above_the_limit_raises_in_the_replier_and_leaves_the_call_open(
    transport_on: Callable[..., NatsTransport],
) -> None:
    """A reply too large to travel raises ``MessageTooLarge`` in the replier; the call stays
    open, so a smaller reply still ends it."""

    async def answers_big(p: Process) -> None:
        call = await p.receive(Call)
        try:
            p.reply(call, b"x" * 200_000)
        except MessageTooLarge:
            p.reply(call, "too large")

    async with (
        Node("a", transport=transport_on()) as a,
        Node("b", transport=transport_on(max_message_size=100_000)) as b,
        a.process() as me,
    ):
        assert await me.call(b.spawn(answers_big), "q", timeout=10) == "too large"


async def test_many_large_messages_keep_their_order_with_small_ones(
    transport_on: Callable[..., NatsTransport],
) -> None:
    """Large and small messages sent in one go arrive in the order sent."""
    async with (
        Node("a", transport=transport_on()) as a,
        Node("b", transport=transport_on()) as b,
        a.process() as me,
    ):
        pid = b.spawn(echo)
        sizes = [10, 300_000, 20, 1_500_000, 5, 70_000] * 3
        for i, size in enumerate(sizes):
            me.send(pid, (me.pid, (i, b"s" * size)))
        with anyio.fail_after(30):
            got = [await me.receive(tuple) for _ in sizes]
        assert got == [("echo", (i, b"s" * size)) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    "reason_detail",
    [pytest.param("file-\udcff.txt", id="lone-surrogate"), pytest.param("deep", id="deeply-nested")],
)
async def test_an_exit_reason_the_codec_refuses_still_fires_link_and_monitor(
    transport_on: Callable[..., NatsTransport], reason_detail: str
) -> None:
    """A process on another node exits with a reason that cannot be encoded (a lone
    surrogate from a non-UTF-8 file name, or a value nested too deep): its link and monitor
    still fire, with the codec's stand-in (a ``Shutdown`` stays a ``Shutdown``, described in
    text), and the session stays up."""
    detail: Any = reason_detail
    if reason_detail == "deep":
        for _ in range(100_000):
            detail = [detail]

    async def dies_oddly(p: Process) -> None:
        await p.receive()
        raise ProcessExit(Shutdown(detail))

    async with (
        Node("a", transport=transport_on()) as a,
        Node("b", transport=transport_on()) as b,
        a.process(trap_exits=True) as me,
    ):
        pid = b.spawn(dies_oddly)
        me.link(pid)
        ref = me.monitor(pid)
        server = b.spawn(echo)
        assert await me.call(server, "sync", timeout=10) == ("echo", "sync")
        me.send(pid, "go")
        signal = await me.receive(ExitSignal, timeout=10)
        assert signal.sender == pid and type(signal.reason) is Shutdown
        down = await me.receive(Down, timeout=10)
        assert down.ref == ref and down.reason == signal.reason
        assert await me.call(server, "still up", timeout=10) == ("echo", "still up")


def _values() -> st.SearchStrategy[Any]:
    """Arbitrary Python values: text with lone surrogates, huge ints, deep nesting, bytes,
    containers of all kinds, and objects of a type no node registered."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**64, max_value=2**300) | st.integers(max_value=-(2**64)),
        st.floats(allow_nan=False),
        # Text, with lone surrogates (as os.listdir gives for a non-UTF-8 file name).
        st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=10).map("".join),
        st.binary(max_size=200),
        st.builds(Unregistered),
    )
    hashable = st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.binary(max_size=10)
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=4).map(tuple),
            st.dictionaries(hashable, inner, max_size=4),
            st.frozensets(hashable, max_size=4),
            st.sets(hashable, max_size=4),
        ),
        max_leaves=20,
    )


class Unregistered:
    """A type no node registered: it cannot cross."""


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(_values(), min_size=1, max_size=25), depth=st.integers(min_value=0, max_value=3))
def test_arbitrary_values_are_delivered_equal_or_refused_at_the_call(
    transport_on: Callable[..., NatsTransport], values: list[Any], depth: int
) -> None:
    """Whatever a value holds, ``send`` either delivers it equal to the other node or refuses
    it at the call; no value ends the session or fires anything across it."""
    deep: Any = "bottom"
    for _ in range(depth * 50_000):
        deep = [deep]
    values = [*values, deep] if depth else values

    async def scenario() -> None:
        a_transport = transport_on()
        async with (
            Node("a", transport=a_transport) as a,
            Node("b", transport=transport_on()) as b,
            a.process(trap_exits=True) as me,
        ):
            pid = b.spawn(echo)
            me.link(pid)
            assert await me.call(pid, "warm", timeout=10) == ("echo", "warm")
            sent = []
            for value in values:
                try:
                    me.send(pid, (me.pid, value))
                except (TypeError, ValueError, RecursionError, MessageTooLarge):
                    continue  # refused at the call; nothing was sent
                sent.append(value)
            for value in sent:
                got = await me.receive(tuple, timeout=10)
                assert got == ("echo", value) and type(got[1]) is type(value)
            assert await me.call(pid, "still up", timeout=10) == ("echo", "still up")
            assert a_transport.statistics().sessions_ended == 0
            with pytest.raises(TimeoutError):
                await me.receive(ExitSignal, timeout=0)

    anyio.run(scenario, backend="asyncio")
