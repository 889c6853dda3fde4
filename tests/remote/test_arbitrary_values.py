"""Arbitrary values across two nodes on one nats-server: each is delivered equal or refused
at the call, and the session stays up; what cannot travel in an exit or a reply still
reaches the other node as a stand-in."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import attrs
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refcount_starter import supervisor
from refcount_starter.remote.codec import MAX_DEPTH, MAX_INT_BITS, Unencodable
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.runtime import (
    Call,
    Crashed,
    Down,
    ExitSignal,
    Node,
    Pid,
    Process,
    ProcessExit,
    Ref,
    Shutdown,
)
from refcount_starter.supervisor import ChildRunning, ChildSpec, RunClosure

from . import closures_for_tests  # noqa: F401  (registers test.sleeper)

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(120)]

MakeTransport = Callable[..., NatsTransport]


@asynccontextmanager
async def two_nodes(make_transport: MakeTransport) -> AsyncIterator[tuple[Node, Node]]:
    async with (
        Node("a", transport=make_transport()) as a,
        Node("b", transport=make_transport()) as b,
    ):
        yield a, b


def same(a: Any, b: Any) -> bool:
    """Equality that also checks types all the way down (a tuple must not come back a list,
    nor True come back 1), with NaN equal to NaN (also in an attrs value's fields)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if attrs.has(type(a)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)


def nested_lists(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def cycle() -> list[Any]:
    looped: list[Any] = ["start"]
    looped.append({"back": looped})
    return looped


class LocalOnly:
    """A class no node registered."""

    def __repr__(self) -> str:
        return "LocalOnly()"


names = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)
counts = st.integers(min_value=0, max_value=2**63 - 1)
texts = st.text(st.characters() | st.characters(codec=None, categories=["Cs"]), max_size=12)
# Huge ints around the limit, drawn by their size (Hypothesis cannot print the ints beyond
# 4,300 digits it would draw itself).
huge_ints = st.builds(
    lambda bits, sign: sign * (2**bits - 1), st.integers(60, MAX_INT_BITS + 2), st.sampled_from([1, -1])
)
ints = st.integers() | huge_ints
hashables = st.recursive(
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=False)
    | texts
    | st.binary(max_size=12)
    | st.builds(Pid, names, counts, counts)
    | st.builds(Ref, names, counts, counts),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
leaves = (
    hashables
    | st.floats()
    | st.builds(Crashed, texts, texts)
    | st.builds(LocalOnly)
    | st.builds(bytearray, st.binary(max_size=4))
    | st.builds(cycle)
    # Around the nesting limit (the signal and the (tag, value) tuple take two levels).
    | st.integers(MAX_DEPTH - 4, MAX_DEPTH).map(nested_lists)
)
arbitrary = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(texts, inner, max_size=3)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.builds(Shutdown, inner)
    ),
    max_leaves=16,
)


async def keep(p: Process, received: MemoryObjectSendStream[Any] | None = None) -> None:
    """Pass every message on to ``received``; answer calls with their request."""
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, message.request)
        elif received is not None:
            received.send_nowait(message)


async def test_arbitrary_values_arrive_equal_or_are_refused_at_the_call(
    make_transport: MakeTransport,
) -> None:
    """Each value, whatever it holds, is delivered equal (by ``send`` and by ``call``) or
    refused at the call with ``Unencodable``; a normal message goes through after each
    refusal and no session ends."""
    a_transport, b_transport = make_transport(), make_transport()
    sent, received = anyio.create_memory_object_stream[Any](10)
    async with (
        sent,
        received,
        Node("a", transport=a_transport) as a,
        Node("b", transport=b_transport) as b,
        a.process() as me,
    ):
        server = b.spawn(keep, sent)
        outcomes = {"delivered": 0, "refused": 0}

        async def next_message() -> Any:
            with anyio.fail_after(10):
                message = await received.receive()
            assert received.statistics().current_buffer_used == 0  # nothing else arrived
            return message

        async def one(value: Any) -> None:
            try:
                me.send(server, ("value", value))
            except Unencodable as refused:
                outcomes["refused"] += 1
                assert str(refused)  # it names the part and why (the codec tests check how)
                with pytest.raises(Unencodable):
                    await me.call(server, ("value", value), timeout=10)
                me.send(server, "still up")
                assert await next_message() == "still up"
                return
            outcomes["delivered"] += 1
            got = await next_message()
            assert same(got, ("value", value)), f"{got!r:.1000} != {value!r:.1000}"
            assert same(await me.call(server, ("value", value), timeout=10), ("value", value))

        @settings(
            max_examples=150,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(arbitrary)
        def check(value: Any) -> None:
            anyio.from_thread.run(one, value)

        await anyio.to_thread.run_sync(check)
        assert outcomes["delivered"] > 20 and outcomes["refused"] > 20, outcomes
        for transport in (a_transport, b_transport):
            stats = transport.statistics()
            assert stats.sessions_ended == 0 and stats.decode_errors == 0, stats


async def crash_with(p: Process, exc: BaseException) -> None:
    await p.receive()
    raise exc


async def test_a_crash_whose_text_holds_a_lone_surrogate_still_reaches_remote_watchers(
    make_transport: MakeTransport,
) -> None:
    """Regression (a non-UTF-8 file name in an exception): a process that crashes with such a
    text fires its remote monitor and link with a ``Crashed`` holding the text escaped, and
    the session stays up."""
    async with two_nodes(make_transport) as (a, b), a.process(trap_exits=True) as me:
        pid = b.spawn(crash_with, ValueError("cannot read caf\udce9.txt"))
        ref = me.monitor(pid)
        me.link(pid)
        me.send(pid, "go")
        local = await b.wait(pid)  # on its own node, the reason keeps the raw text
        assert isinstance(local, Crashed) and "caf\udce9.txt" in local.message
        down = await me.receive(Down, where=lambda m: m.ref == ref, timeout=10)
        signal = await me.receive(ExitSignal, timeout=10)
        for reason in (down.reason, signal.reason):
            assert isinstance(reason, Crashed) and "caf\\udce9.txt" in reason.message
        assert await me.call(b.spawn(keep), "fine", timeout=10) == "fine"


async def test_an_exit_reason_nested_too_deeply_still_reaches_remote_watchers(
    make_transport: MakeTransport,
) -> None:
    """Regression (RecursionError half-way through an exit): a reason nested far beyond the
    codec's limit still fires the remote monitor, with its stand-in: a ``Shutdown`` whose
    detail says why."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        pid = b.spawn(crash_with, ProcessExit(Shutdown(nested_lists(5000))))
        ref = me.monitor(pid)
        me.send(pid, "go")
        down = await me.receive(Down, where=lambda m: m.ref == ref, timeout=5)
        assert type(down.reason) is Shutdown and "nest at most" in down.reason.detail
        assert await me.call(b.spawn(keep), "fine", timeout=10) == "fine"


async def host_supervisor(p: Process, reply_to: Pid, key: str) -> None:
    """Start a supervisor here with one child under ``key``; tell ``reply_to`` its pid."""
    sup = await supervisor.start(p, children=[ChildSpec(key, RunClosure("test.sleeper"))])
    p.send(reply_to, ("supervisor", sup.pid))
    await anyio.sleep_forever()


async def test_list_children_from_another_node_survives_a_key_with_a_lone_surrogate(
    make_transport: MakeTransport,
) -> None:
    """Regression: ``list_children()`` from another node, on a supervisor whose child key holds
    a lone surrogate, gets an error naming why, and the supervisor keeps running."""
    async with two_nodes(make_transport) as (a, b), a.process() as me:
        b.spawn(host_supervisor, me.pid, "caf\udce9")
        _, pid = await me.receive(tuple, timeout=10)
        sup = supervisor.Supervisor(pid, me)
        with pytest.raises(RuntimeError, match=r"cannot cross nodes.*lone surrogate '\\udce9'"):
            await sup.list_children()
        assert b.is_alive(pid)
        with pytest.raises(RuntimeError, match="cannot cross nodes"):
            await sup.statistics()  # it names the keys too (restarts_by_key)
        assert b.is_alive(pid)
        ordinary = ChildSpec("plain", RunClosure("test.sleeper"))
        assert type(await sup.start_new_child(ordinary)) is ChildRunning
        with pytest.raises(Unencodable, match="lone surrogate"):
            await sup.lookup_child("caf\udce9")  # refused at the call, on this node
        child = await sup.lookup_child("plain")
        assert child is not None and child.key == "plain"
