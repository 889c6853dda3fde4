"""OpenTelemetry spans, checked with the SDK's in-memory exporter: one trace per request, across
processes and nodes, and nothing at all until ``instrument()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from refcount_starter import tracing
from refcount_starter.runtime import Call, InMemoryNetwork, Kill, Node, Pid, Process, Ref
from refcount_starter.starter import StarterProcess, spawn_child_starter
from refcount_starter.supervisor import (
    TRANSIENT,
    ChildRunning,
    ChildSpec,
    RestartOne,
    SupervisedChildStarted,
    Supervisor,
)
from refcount_starter.supervisor import start as start_supervisor

pytestmark = pytest.mark.anyio


async def worker(p: Process) -> None:
    await p.receive(str)


async def relay(p: Process) -> None:
    """Answers a call by calling the process named in the request, and passing the answer on."""
    async for message in p.messages():
        if isinstance(message, Call):
            target = message.request
            answer = "done" if target is None else await p.call(target, None)
            p.reply(message, answer)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield exporter
    finally:
        tracing.uninstrument()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_of(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} has no parent"
    (parent,) = [s for s in spans if s.context.span_id == span.parent.span_id]
    return parent


def chain(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> list[str]:
    """The names from ``span`` up to its trace's root."""
    names = [span.name]
    while span.parent is not None:
        span = parent_of(span, spans)
        names.append(span.name)
    return names


async def test_a_child_start_through_a_starter_is_one_trace(exporter: InMemorySpanExporter) -> None:
    """start_new_child: the client's call, the supervisor's acquire and start, the starter's spawn."""
    async with Node("t") as node, node.process() as me:
        sup = await start_supervisor(me, RestartOne())
        starter = await spawn_child_starter(me, worker)
        exporter.clear()
        await sup.start_new_child(ChildSpec("db", starter.child_start, restart=TRANSIENT))
        spans = exporter.get_finished_spans()
        (spawn,) = by_name(spans, "spawn")
        assert chain(spawn, spans) == [
            "spawn",
            "handle AcquireAndStart",
            "call AcquireAndStart",
            "starter.acquire_and_start",
            "handle StartNewChild",
            "call StartNewChild",
        ]
        assert len({s.context.trace_id for s in spans}) == 1
        assert spawn.attributes is not None and spawn.attributes["rs.pid"] == str(starter.pid)
        assert spawn.attributes["rs.owner"] == str(sup.pid)

        # delete_child: the release is an exit signal in the same trace as the client's call.
        await sup.terminate_child("db")
        exporter.clear()
        await sup.delete_child("db")
        spans = exporter.get_finished_spans()
        (release,) = by_name(spans, "exit signal")
        assert chain(release, spans) == ["exit signal", "handle DeleteChild", "call DeleteChild"]
        assert release.attributes is not None
        assert release.attributes["rs.target"] == str(starter.pid)
        assert "Shutdown(detail=('db'" in str(release.attributes["rs.reason"])


async def test_a_call_across_three_nodes_is_one_trace(exporter: InMemorySpanExporter) -> None:
    """A call that goes from node a to b to c and back is one trace, each hop on its node."""
    network = InMemoryNetwork()
    async with (
        Node("a", transport=network.transport()) as a,
        Node("b", transport=network.transport()) as b,
        Node("c", transport=network.transport()) as c,
        a.process() as me,
    ):
        last = c.spawn(relay)
        middle = b.spawn(relay)
        assert await me.call(middle, last) == "done"
        spans = exporter.get_finished_spans()
        (innermost,) = by_name(spans, "handle NoneType")
        assert chain(innermost, spans) == ["handle NoneType", "call NoneType", "handle Pid", "call Pid"]
        nodes = [
            s.attributes["rs.node"]
            for s in (innermost, *(parent_of(innermost, spans),))
            if s.attributes is not None
        ]
        assert nodes == ["c", "b"]
        (root,) = by_name(spans, "call Pid")
        assert root.attributes is not None and root.attributes["rs.node"] == "a"
        assert len({s.context.trace_id for s in spans}) == 1


async def test_a_restart_across_three_nodes_is_one_trace(exporter: InMemorySpanExporter) -> None:
    """Node c kills a child that a supervisor on b started through a starter on a: the kill,
    the supervisor's handling of the child's exit, the start through the starter and the new
    child's spawn are one trace, across the three nodes."""
    network = InMemoryNetwork()
    async with (
        Node("a", transport=network.transport()) as a,
        Node("b", transport=network.transport()) as b,
        Node("c", transport=network.transport()) as c,
        a.process() as on_a,
        b.process() as on_b,
        c.process() as on_c,
    ):
        starter = await spawn_child_starter(on_a, worker)
        sup = await start_supervisor(on_b, RestartOne(), [ChildSpec("db", StarterProcess(starter.pid))])
        await sup.subscribe()
        (child,) = await sup.list_children()
        assert isinstance(child.state, ChildRunning)
        exporter.clear()
        on_c.exit(child.state.pid, Kill())
        started = await on_b.receive(SupervisedChildStarted)
        spans = exporter.get_finished_spans()
        (spawn,) = [
            s
            for s in by_name(spans, "spawn")
            if s.attributes and s.attributes["rs.child"] == str(started.pid)
        ]
        names = chain(spawn, spans)
        assert names == [
            "spawn",
            "handle StartChild",
            "call StartChild",
            "starter.start",
            "handle Down",
            "exit signal",
        ]
        hops = [spawn]
        while hops[-1].parent is not None:
            hops.append(parent_of(hops[-1], spans))
        assert [s.attributes["rs.node"] for s in hops if s.attributes is not None] == [
            "a",
            "a",
            "b",
            "b",
            "b",
            "c",
        ]
        del a, b, c


async def capture_headers(p: Process, into: dict[str, str]) -> None:
    """Answers one call, keeping the headers a transport would send with it."""
    call = await p.receive(Call)
    into.update(tracing.headers_for(call.sender))
    p.reply(call, None)


async def answer_then_tell(p: Process, observer: Pid) -> None:
    """Answers one call, then tells ``observer`` it has."""
    call = await p.receive(Call)
    p.reply(call, None)
    p.send(observer, "handled")


async def test_headers_carry_a_call_to_another_os_process(exporter: InMemorySpanExporter) -> None:
    """What a transport puts in a message's headers lets a callee elsewhere join the caller's trace."""
    async with Node() as node, node.process() as me:
        assert tracing.headers_for(me.pid) == {}  # not calling: nothing to carry
        headers: dict[str, str] = {}
        await me.call(me.spawn(capture_headers, headers), "request")
        (call,) = by_name(exporter.get_finished_spans(), "call str")
        assert headers["traceparent"].split("-")[1] == format(call.context.trace_id, "032x")

        # On the receiving side: the context is kept for the sender until its callee takes the call.
        stranger = Pid("elsewhere", 1, 7)
        tracing.adopt_headers(stranger, headers)
        callee = me.spawn(answer_then_tell, me.pid)
        me.send(callee, Call(stranger, Ref("elsewhere", 1, 8), None))
        assert await me.receive(str) == "handled"
        (handle,) = by_name(exporter.get_finished_spans(), "handle NoneType")
        assert handle.context.trace_id == call.context.trace_id
        assert handle.attributes is not None and handle.attributes["rs.caller"] == str(stranger)
        del node


async def test_nothing_is_wrapped_until_instrumented() -> None:
    """Without instrument() the runtime's methods are its own; uninstrument() puts them back."""
    originals = (Process.call, Process.receive, Process.exit, Node.exit, StarterProcess.acquire)
    assert not tracing.is_instrumented()
    tracing.instrument(TracerProvider())
    try:
        assert tracing.is_instrumented() and Process.call is not originals[0]
        assert Process.call.__doc__ == originals[0].__doc__ and Process.call.__name__ == "call"
    finally:
        tracing.uninstrument()
    assert (Process.call, Process.receive, Process.exit, Node.exit, StarterProcess.acquire) == originals
    with tracing.span("restart", key="db"):
        pass  # a no-op when not instrumented


async def test_supervisor_client_calls_are_spans(exporter: InMemorySpanExporter) -> None:
    """Every client call is a span named after its request, with the caller and callee."""
    async with Node() as node, node.process() as me:
        sup: Supervisor = await start_supervisor(me, RestartOne())
        exporter.clear()
        await sup.list_children()
        (call,) = by_name(exporter.get_finished_spans(), "call ListChildren")
        assert call.attributes is not None
        assert call.attributes["rs.callee"] == str(sup.pid) and call.attributes["rs.pid"] == str(me.pid)
        del node
