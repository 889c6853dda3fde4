"""OpenTelemetry spans, checked with the SDK's in-memory exporter: one trace per request, across
processes and nodes, and nothing at all until ``instrument()``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from refcount_starter import tracing
from refcount_starter.runtime import Call, InMemoryNetwork, Kill, Killed, Node, Pid, Process, Ref
from refcount_starter.runtime.signals import (
    CallSignal,
    DownSignal,
    ExitSignalSent,
    LinkSignal,
    MessageSignal,
)
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

from ..remote.spans import spans_in_memory

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
    with spans_in_memory() as exporter:
        yield exporter


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


# -- what a transport carries across OS processes --------------------------------------------

#: A W3C traceparent as another OS process would send it.
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
STRANGER = Pid("elsewhere", 1, 7)


def traceparent_of(span: ReadableSpan) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def capture_call_signal_headers(p: Process, into: dict[str, str]) -> None:
    """Answers one call, keeping the headers a transport would send with that call."""
    call = await p.receive(Call)
    into.update(tracing.signal_headers(CallSignal(call.sender, p.pid, call.ref, call.request)) or {})
    p.reply(call, None)


async def test_a_call_an_exit_and_its_down_carry_their_trace_and_nothing_else_does(
    exporter: InMemorySpanExporter,
) -> None:
    """A call carries its caller's span; an exit signal, and the Down and link exit signals of the
    process it ended, carry the exit's; other signals carry nothing, nor does anything untraced."""
    async with Node() as node, node.process() as me:
        headers: dict[str, str] = {}
        await me.call(me.spawn(capture_call_signal_headers, headers), "request")
        (call,) = by_name(exporter.get_finished_spans(), "call str")
        assert headers == {"traceparent": traceparent_of(call)}

        target = me.spawn(worker)
        me.exit(target, Kill())
        (exit_span,) = by_name(exporter.get_finished_spans(), "exit signal")
        carried = {"traceparent": traceparent_of(exit_span)}
        ref = Ref(node.name, node.incarnation, 10_000)
        assert tracing.signal_headers(ExitSignalSent(me.pid, target, Kill(), False)) == carried
        assert tracing.signal_headers(DownSignal(me.pid, ref, target, Killed())) == carried
        assert tracing.signal_headers(ExitSignalSent(target, me.pid, Killed(), True)) == carried

        assert tracing.signal_headers(MessageSignal(me.pid, target, "hello")) is None
        assert tracing.signal_headers(LinkSignal(me.pid, target)) is None
        assert tracing.signal_headers(CallSignal(me.pid, target, ref, "not waiting")) is None
        tracing.uninstrument()
        assert tracing.signal_headers(DownSignal(me.pid, ref, target, Killed())) is None
        del node


def test_an_exit_that_arrived_from_another_os_process_goes_on_with_its_target(
    exporter: InMemorySpanExporter,
) -> None:
    """What came with an exit signal (``exit()``) is sent on with its target's Down, and what
    came with a Down with the next Down about the same process; a link's exit signal is kept
    for its receiver only."""
    target, watcher, ref = Pid("here", 2, 3), Pid("third", 3, 4), Ref("here", 2, 9)
    tracing.adopt_signal_headers(
        ExitSignalSent(STRANGER, target, Kill(), False), {"traceparent": TRACEPARENT}
    )
    assert tracing.signal_headers(DownSignal(watcher, ref, target, Killed())) == {"traceparent": TRACEPARENT}

    dead = Pid("here", 2, 4)
    tracing.adopt_signal_headers(DownSignal(target, ref, dead, Killed()), {"traceparent": TRACEPARENT})
    assert tracing.signal_headers(DownSignal(watcher, ref, dead, Killed())) == {"traceparent": TRACEPARENT}

    # Header names are case-insensitive: another NATS client may capitalise them.
    other = Pid("here", 2, 6)
    tracing.adopt_signal_headers(DownSignal(target, ref, other, Killed()), {"Traceparent": TRACEPARENT})
    assert tracing.signal_headers(DownSignal(watcher, ref, other, Killed())) == {"traceparent": TRACEPARENT}

    linked = Pid("here", 2, 5)
    tracing.adopt_signal_headers(
        ExitSignalSent(STRANGER, linked, Killed(), True), {"traceparent": TRACEPARENT}
    )
    assert tracing.signal_headers(DownSignal(watcher, ref, linked, Killed())) is None


#: Headers another OS process (or anyone who can publish) might send.
HOSTILE: list[dict[str, Any]] = [
    {},
    {"traceparent": "garbage"},
    {"traceparent": f"00-{'0' * 32}-{'0' * 16}-01"},  # all-zero ids: invalid
    {"traceparent": "01" + TRACEPARENT[2:] + "-" + "f" * 1_000_000},  # a later version, huge
    {"traceparent": "garbage", "baggage": "key=value"},  # something to extract, but no trace
    {"traceparent": "\ufffd\ufffd-\ufffd"},  # what nats-py makes of bytes that are not UTF-8
    {"traceparent": TRACEPARENT.encode()},  # not text
    {"traceparent": None, "tracestate": 12},
    {"tracestate": "x" * 100_000, "baggage": "=" * 100_000},
    {"traceparent": "ff" + TRACEPARENT[2:]},  # version ff is invalid
]


async def test_hostile_headers_leave_a_call_untraced_and_delivered(exporter: InMemorySpanExporter) -> None:
    """Malformed, huge, non-text or missing headers are ignored: the call is handled, without
    a span; a valid context joins its trace."""
    async with Node() as node, node.process() as me:
        callee = me.spawn(answer_then_tell, me.pid)
        for serial, headers in enumerate(HOSTILE):
            tracing.adopt_signal_headers(
                CallSignal(STRANGER, callee, Ref("elsewhere", 1, serial), serial), headers
            )
            me.send(callee, Call(STRANGER, Ref("elsewhere", 1, serial), serial))
            assert await me.receive(str) == "handled"
            callee = me.spawn(answer_then_tell, me.pid)
        assert by_name(exporter.get_finished_spans(), "handle int") == []

        tracing.adopt_signal_headers(
            CallSignal(STRANGER, callee, Ref("elsewhere", 1, 99), 99), {"traceparent": TRACEPARENT}
        )
        me.send(callee, Call(STRANGER, Ref("elsewhere", 1, 99), 99))
        assert await me.receive(str) == "handled"
        (handle,) = by_name(exporter.get_finished_spans(), "handle int")
        assert traceparent_of(handle).split("-")[1] == TRACEPARENT.split("-")[1]
        assert (
            handle.parent is not None and format(handle.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
        )
        del node


class Recording(TextMapPropagator):
    """A propagator that keeps what it was given to extract, and raises if told to."""

    def __init__(self, *, fail: bool = False) -> None:
        self.seen: list[dict[str, str]] = []
        self.fail = fail

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        self.seen.append(dict(carrier))
        if self.fail:
            raise ValueError("cannot read this")
        return Context()

    def inject(self, carrier: Any, context: Context | None = None, setter: Any = None) -> None:
        pass

    @property
    def fields(self) -> set[str]:
        return {"traceparent", "x-trace"}


@pytest.mark.parametrize("fail", [False, True], ids=["reads", "raises"])
def test_a_propagator_sees_only_its_own_fields_as_text_of_at_most_8_kib(
    exporter: InMemorySpanExporter, fail: bool
) -> None:
    """Whatever propagator is in use, it is given only its own fields, as text of at most
    8 KiB; one that raises leaves the signal untraced."""
    propagator = Recording(fail=fail)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(propagator)
    try:
        headers = {"traceparent": "a" * 8193, "x-trace": "b" * 8192, "other": "c", "tracestate": "d"}
        target = Pid("here", 2, 3)
        tracing.adopt_signal_headers(ExitSignalSent(STRANGER, target, Kill(), False), headers)
        tracing.adopt_signal_headers(ExitSignalSent(STRANGER, target, Kill(), False), {"x-trace": b"e"})
    finally:
        propagate.set_global_textmap(previous)
    assert propagator.seen == [{"x-trace": "b" * 8192}]
    assert tracing.signal_headers(DownSignal(STRANGER, Ref("here", 2, 9), target, Killed())) is None


def _valid(traceparent: object) -> bool:
    """W3C Trace Context: four fields of hex digits (more only after a version other than 00);
    version ff and ids of all zeros are invalid."""
    if not isinstance(traceparent, str):
        return False
    match = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?", traceparent)
    if match is None:
        return False
    version, trace_id, span_id, more = match.groups()
    return (
        version != "ff"
        and not (version == "00" and more)
        and int(trace_id, 16) != 0
        and int(span_id, 16) != 0
    )


@given(
    traceparent=st.one_of(
        st.from_regex(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[0-9a-f]{0,4})?", fullmatch=True),
        st.text(),
        st.binary(),
        st.none(),
    ),
    others=st.dictionaries(
        st.one_of(st.sampled_from(["tracestate", "baggage"]), st.text(max_size=12)),
        st.one_of(st.text(), st.integers(), st.just("key=value")),
    ),
)
def test_only_a_valid_traceparent_is_kept_and_nothing_raises(
    traceparent: Any, others: dict[str, Any]
) -> None:
    """Whatever the headers hold, adopting them never raises, and a context is kept exactly
    when the traceparent is valid, with its trace and span ids."""
    target, watcher, ref = Pid("here", 2, 3), Pid("third", 3, 4), Ref("here", 2, 9)
    with spans_in_memory():
        headers = {**others, "traceparent": traceparent}
        tracing.adopt_signal_headers(ExitSignalSent(STRANGER, target, Kill(), False), headers)
        kept = tracing.signal_headers(DownSignal(watcher, ref, target, Killed()))
    if _valid(traceparent):
        assert kept is not None and kept["traceparent"].split("-")[1:3] == traceparent.split("-")[1:3]
    else:
        assert kept is None
