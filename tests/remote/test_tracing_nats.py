"""Traces across OS processes: the NATS transport carries a call's, an exit signal's and a
``Down``'s trace context in the headers of the message that holds it.

The node processes import ``traced_node``: they trace into memory and answer calls for their
spans (``test.spans``), which the tests put together with the spans of their own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from refcount_starter import supervisor, tracing
from refcount_starter.remote import envelope as wire
from refcount_starter.remote.codec import encode
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.remote.service import spawn_remote
from refcount_starter.runtime import Call, Kill, Node, Pid, Process, Ref
from refcount_starter.runtime.signals import CallSignal
from refcount_starter.starter.remote import RemoteStarter, spawn_remote_starter
from refcount_starter.supervisor import (
    ChildRunning,
    ChildSpec,
    RestartOne,
    RunClosure,
    SupervisedChildStarted,
)

from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES, server_binary
from .natsserver import PASSWORD, USER, NatsServer
from .nodeproc import node_process
from .spans import Span, as_value, chain, spans_in_memory

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(90)]

MakeTransport = Callable[..., NatsTransport]

TRACED = ("tests.remote.traced_node",)
#: How long a step that crosses OS processes may take on a loaded two-core machine.
SETTLE = 20.0


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """This OS process's spans, into memory."""
    with spans_in_memory() as exporter:
        yield exporter


def traceparent(span: Span) -> str:
    return f"00-{span[1]}-{span[2]}-"


def named(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span[0] == name]


class Tap:
    """Everything published on the nodes' subjects, read through a connection of its own."""

    def __init__(self, nc: Any, subscription: Any) -> None:
        self.nc = nc
        self.subscription = subscription

    async def taken(self) -> list[Any]:
        """The messages published since the last call. The tap publishes a marker and reads up
        to it: the server delivers it after whatever it routed before, so every message that
        another node has already received is among them."""
        marker = "rs.node.tap.0.tap"
        await self.nc.publish(marker, b"")
        messages = []
        with anyio.fail_after(SETTLE):
            while True:
                msg = await self.subscription.next_msg(timeout=SETTLE)
                if msg.subject == marker:
                    return messages
                messages.append(msg)


@asynccontextmanager
async def tap(server: NatsServer) -> AsyncIterator[Tap]:
    nc = await nats.connect(server.url, user=USER, password=PASSWORD)
    try:
        yield Tap(nc, await nc.subscribe("rs.node.>"))
    finally:
        await nc.close()


def one_envelope(msg: Any) -> int:
    """The kind of the one envelope a message holds (a batch is refused)."""
    header = wire.decode_header(msg.data)
    assert header[1] != wire.KIND_BATCH, f"a batch on {msg.subject}"
    return header[1]


async def test_a_call_to_a_node_in_another_os_process_is_one_trace(
    nats_server: NatsServer, make_transport: MakeTransport, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    """The callee's ``handle`` span, in the other OS process, is a child of the caller's
    ``call`` span; on the wire the call's message alone carries headers: its traceparent."""
    async with (
        node_process(nats_server, "n1", tmp_path, imports=TRACED) as n1,
        Node("t", transport=make_transport()) as t,
        t.process() as me,
        tap(nats_server) as tapped,
    ):
        echo, _ = await spawn_remote(me, "n1", "test.echo")
        spans_there, _ = await spawn_remote(me, "n1", "test.spans")
        await tapped.taken()
        exporter.clear()

        assert await me.call(echo, "traced", timeout=SETTLE) == ("echo", "traced")
        me.send(echo, (me.pid, "untraced"))
        assert await me.receive(tuple, timeout=SETTLE) == ("echo", "untraced")
        wire_messages = await tapped.taken()

        (call,) = named([as_value(s) for s in exporter.get_finished_spans()], "call str")
        there: list[Span] = await me.call(spans_there, None, timeout=SETTLE)
        (handle,) = named(there, "handle str")
        assert handle[1] == call[1] and handle[3] == call[2]
        assert handle[4]["rs.node"] == "n1" and handle[4]["rs.caller"] == str(me.pid)

        traced = [msg for msg in wire_messages if msg.headers]
        assert [msg.subject for msg in traced] == [f"rs.node.n1.{n1.incarnation}.t"]
        (headers,) = [msg.headers for msg in traced]
        assert set(headers) == {"traceparent"} and headers["traceparent"].startswith(traceparent(call))
        assert one_envelope(traced[0]) == wire.KIND_SIGNAL
        del t


async def test_untraced_nodes_send_no_headers(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """Without ``instrument()``, calls, messages, exit signals and Downs across OS processes
    travel without NATS headers."""
    assert not tracing.is_instrumented()
    async with (
        node_process(nats_server, "n1", tmp_path),
        Node("t", transport=make_transport()) as t,
        t.process(trap_exits=True) as me,
        tap(nats_server) as tapped,
    ):
        echo, watch = await spawn_remote(me, "n1", "test.echo")
        assert await me.call(echo, "untraced", timeout=SETTLE) == ("echo", "untraced")
        me.send(echo, (me.pid, "message"))
        assert await me.receive(tuple, timeout=SETTLE) == ("echo", "message")
        me.exit(echo, Kill())
        down = await me.receive(where=lambda m: getattr(m, "ref", None) == watch, timeout=SETTLE)
        assert down.pid == echo
        wire_messages = await tapped.taken()
        assert len(wire_messages) >= 5
        assert [msg.headers for msg in wire_messages] == [None] * len(wire_messages)
        del t


@asynccontextmanager
async def supervised_through_n1(
    server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> AsyncIterator[tuple[Process, supervisor.Supervisor, RemoteStarter, Pid]]:
    """Node t here, traced node n1 in another OS process; a process of t, and a supervisor on
    t whose child "db" runs on n1, started through a starter there; the pid of ``test.spans``
    on n1."""
    async with (
        node_process(server, "n1", tmp_path, imports=TRACED),
        Node("t", transport=make_transport()) as t,
        t.process() as me,
    ):
        starter = await spawn_remote_starter(me, "n1", RunClosure.of("test.echo"))
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("db", starter.child_start)])
        spans_there, _ = await spawn_remote(me, "n1", "test.spans")
        yield me, sup, starter, spans_there
        del t


async def test_a_restart_through_a_starter_in_another_os_process_is_one_trace(
    nats_server: NatsServer, make_transport: MakeTransport, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    """A call from this OS process has a process of node n1 (another OS process) kill a
    child that a supervisor here started through a starter on n1: the call, the kill, the
    supervisor's handling of the child's exit (a Down from n1), the start through the starter
    and the new child's spawn are one trace, crossing between the two OS processes three
    times."""
    async with supervised_through_n1(nats_server, make_transport, tmp_path) as (me, sup, _, spans_there):
        await sup.subscribe()
        (child,) = await sup.list_children()
        assert isinstance(child.state, ChildRunning) and child.state.pid.node == "n1"
        killer, _ = await spawn_remote(me, "n1", "test.kill")
        exporter.clear()

        await me.call(killer, child.state.pid, timeout=SETTLE)
        started = await me.receive(SupervisedChildStarted, timeout=SETTLE)
        there: list[Span] = await me.call(spans_there, None, timeout=SETTLE)
        spans = [as_value(s) for s in exporter.get_finished_spans()] + there

        (spawn,) = [s for s in named(there, "spawn") if s[4].get("rs.child") == str(started.pid)]
        assert [(s[0], s[4]["rs.node"]) for s in chain(spawn, spans)] == [
            ("spawn", "n1"),
            ("handle StartChild", "n1"),
            ("call StartChild", "t"),
            ("starter.start", "t"),
            ("handle Down", "t"),
            ("exit signal", "n1"),
            ("handle Pid", "n1"),
            ("call Pid", "t"),
        ]


async def test_a_release_sent_to_a_starter_in_another_os_process_is_handled_in_its_trace(
    nats_server: NatsServer, make_transport: MakeTransport, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    """``delete_child`` here releases the supervisor's reference with an exit signal to the
    starter on n1, which handles it in the trace of the ``delete_child`` call."""
    async with supervised_through_n1(nats_server, make_transport, tmp_path) as (_, sup, starter, spans_there):
        await sup.terminate_child("db")
        exporter.clear()
        await sup.delete_child("db")
        # The starter answers after it has taken the release, queued ahead of this call.
        await starter.statistics(timeout=SETTLE)
        there: list[Span] = await starter.caller.call(spans_there, None, timeout=SETTLE)
        spans = [as_value(s) for s in exporter.get_finished_spans()] + there

        (call,) = named(spans, "call DeleteChild")
        (release,) = [s for s in named(there, "handle ExitSignal") if s[1] == call[1]]
        assert release[4]["rs.pid"] == str(starter.pid) and "Shutdown" in release[4]["rs.reason"]
        assert [(s[0], s[4]["rs.node"]) for s in chain(release, spans)] == [
            ("handle ExitSignal", "n1"),
            ("exit signal", "t"),
            ("handle DeleteChild", "t"),
            ("call DeleteChild", "t"),
        ]


# -- headers from the network are untrusted --------------------------------------------------


async def publish_raw(server: NatsServer, messages: list[tuple[str, bytes, bytes | None]]) -> None:
    """Publish through a bare connection, in NATS's text protocol, so that a header block can
    hold any bytes at all; return once the server has taken them all (PING, PONG)."""
    host, port = server.url.removeprefix("nats://").rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        connect = {"verbose": False, "pedantic": False, "headers": True, "user": USER, "pass": PASSWORD}
        commands = [b"CONNECT " + json.dumps(connect).encode() + b"\r\n"]
        for subject, payload, headers in messages:
            if headers is None:
                commands.append(f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\n")
            else:
                sizes = f"{len(headers)} {len(headers) + len(payload)}"
                commands.append(f"HPUB {subject} {sizes}\r\n".encode() + headers + payload + b"\r\n")
        await stream.send(b"".join([*commands, b"PING\r\n"]))
        answer = b""
        with anyio.fail_after(SETTLE):
            while b"PONG\r\n" not in answer:
                answer += await stream.receive()
        assert b"-ERR" not in answer, answer


def header_block(*lines: bytes, status: bytes = b"") -> bytes:
    return b"NATS/1.0" + status + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

#: Header blocks another OS process, or anyone who may publish, might send.
HOSTILE: list[bytes | None] = [
    None,
    header_block(b"traceparent: garbage"),
    header_block(b"traceparent: \xff\xfe\xfd not UTF-8"),
    header_block(b"\xff\xfeparent: " + VALID),  # a name that is not ASCII
    header_block(b"traceparent: 01" + VALID[2:] + b"-" + b"f" * 200_000),  # huge
    header_block(b"traceparent: 00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"),
    header_block(b"no colon on this line"),
    header_block(status=b" 503"),
    header_block(b"traceparent: " + VALID, b"traceparent: garbage"),
    b"NATS/1.0\r\ntraceparent: " + VALID[:30],  # cut short
]


async def answer_each_call_then_tell(p: Process, observer: Pid) -> None:
    """Answers every call, then tells ``observer`` which request it answered."""
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, None)
            p.send(observer, ("handled", message.request))


async def test_hostile_headers_never_lose_the_call_and_leave_it_untraced(
    nats_server: NatsServer, make_transport: MakeTransport, exporter: InMemorySpanExporter
) -> None:
    """Calls from another node whose messages carry malformed, huge, non-UTF-8, cut or no
    headers at all (or a valid traceparent on a batch) are each delivered, untraced; the
    session goes on, and the next call with a valid traceparent joins its trace."""
    transport = make_transport()
    async with Node("b", transport=transport) as b, b.process() as me:
        callee = me.spawn(answer_each_call_then_tell, me.pid)
        nc = await nats.connect(nats_server.url, user=USER, password=PASSWORD)
        try:
            # The handshake a node makes before its first envelope.
            reply = await nc.request("rs.whois.b.forger", wire.encode_whois("forger", 1), timeout=SETTLE)
        finally:
            await nc.close()
        assert wire.decode_whois_answer(reply.data)[:2] == ("b", b.incarnation)

        subject = f"rs.node.b.{b.incarnation}.forger"

        def envelope(seq: int) -> bytes:
            call = CallSignal(Pid("forger", 1, seq + 1), callee, Ref("forger", 1, seq + 1), seq)
            return wire.encode_envelope(wire.KIND_SIGNAL, "forger", 1, 1, seq, msgspec.Raw(encode(call)))

        messages = [(subject, envelope(seq), headers) for seq, headers in enumerate(HOSTILE)]
        batched = len(messages)
        messages.append(
            (
                subject,
                wire.encode_batch("forger", 1, [envelope(batched)]),
                header_block(b"traceparent: " + VALID),
            )
        )
        messages.append((subject, envelope(batched + 1), header_block(b"traceparent: " + VALID)))
        await publish_raw(nats_server, messages)

        for seq in range(len(messages)):
            assert await me.receive(tuple, timeout=SETTLE) == ("handled", seq)
        (handle,) = named([as_value(s) for s in exporter.get_finished_spans()], "handle int")
        assert handle[4]["rs.caller"] == str(Pid("forger", 1, batched + 2))
        assert (handle[1], handle[3]) == tuple(VALID.decode().split("-")[1:3])
        statistics = transport.statistics()
        assert (statistics.decode_errors, statistics.gaps, statistics.sessions_ended) == (0, 0, 0)
        assert statistics.received == len(messages)


# -- sizes -----------------------------------------------------------------------------------


@pytest.fixture
def small_server() -> Iterator[NatsServer]:
    """A nats-server with a 16 KiB ``max_payload``."""
    server = NatsServer(server_binary(), max_payload=16 * 1024).start()
    try:
        yield server
    finally:
        server.close()


async def echo(p: Process) -> None:
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, len(message.request))


async def test_a_traced_call_right_at_max_payload_fits_with_its_headers(
    small_server: NatsServer, exporter: InMemorySpanExporter
) -> None:
    """The server counts headers in ``max_payload``: traced calls whose envelope alone would
    just fit, or just not, go whole or in fragments, and no session ends."""

    def transport() -> NatsTransport:
        return NatsTransport(
            small_server.url,
            user=USER,
            password=PASSWORD,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            heartbeat_misses=HEARTBEAT_MISSES,
        )

    a_transport, b_transport = transport(), transport()
    async with (
        Node("a", transport=a_transport) as a,
        Node("b", transport=b_transport) as b,
        a.process() as me,
    ):
        callee = b.spawn(echo)
        for size in range(16 * 1024 - 300, 16 * 1024 + 20, 7):
            assert await me.call(callee, "x" * size, timeout=SETTLE) == size
        assert a_transport.statistics().sessions_ended == 0
        assert a_transport.statistics().fragments > 0
        assert len(named([as_value(s) for s in exporter.get_finished_spans()], "handle str")) > 0


def test_the_transport_works_without_opentelemetry(nats_server: NatsServer) -> None:
    """With ``opentelemetry`` unimportable, two nodes talk over NATS, and ``instrument()``
    says which extra it needs."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None
        import anyio
        from refcount_starter import Node, tracing
        from refcount_starter.remote.natstransport import NatsTransport
        from refcount_starter.runtime import Call

        async def echo(p):
            call = await p.receive(Call)
            p.reply(call, ("echo", call.request))

        async def main():
            def transport():
                return NatsTransport({nats_server.url!r}, user={USER!r}, password={PASSWORD!r})
            async with Node("a", transport=transport()) as a, Node("b", transport=transport()) as b:
                async with a.process() as me:
                    print(await me.call(b.spawn(echo), "hi", timeout=20))
            try:
                tracing.instrument()
            except ImportError as exc:
                print(exc)

        anyio.run(main)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "('echo', 'hi')"
    assert "tracing needs the otel extra" in result.stdout.splitlines()[1]
