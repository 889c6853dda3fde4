"""The event stream's subscribers: a subscriber that exits is dropped."""

from __future__ import annotations

from typing import Any

import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import Address, Node, Pid, Process
from refcount_starter.runtime.table import Table
from refcount_starter.supervisor import (
    ChildSpec,
    RestartLimit,
    RestartOne,
    SupervisedChildStarted,
    Supervisor,
    SupervisorEvent,
)

from .helpers import next_event, pid_of, worker

pytestmark = pytest.mark.anyio


def spy_on_events(monkeypatch: pytest.MonkeyPatch, node: Node, sup: Supervisor) -> list[Pid]:
    """Record the pid each event of ``sup`` is sent to, as the node routes it."""
    sent: list[Pid] = []
    route = Table.send

    def send(table: Table, sender: Pid | None, to: Address, message: Any) -> None:
        if table.name == node.name and sender == sup.pid and isinstance(message, SupervisorEvent):
            assert type(to) is Pid
            sent.append(to)
        route(table, sender, to, message)

    monkeypatch.setattr(Table, "send", send)
    return sent


async def listener(p: Process) -> None:
    """Takes events until told to leave."""
    await p.receive(where=lambda m: m == "leave")


async def restart(me: Process, sup: Supervisor) -> None:
    """Crash child "a" and wait until it runs again (the caller is subscribed)."""
    me.send(await pid_of(sup, "a"), "crash")
    await next_event(me, SupervisedChildStarted, key="a")


async def test_subscriber_that_exits_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards against a supervisor that keeps a dead subscriber: once a subscriber has exited,
    the supervisor sends it no more events (it watches it with a monitor)."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(RestartLimit(10, 60.0)), [ChildSpec("a", worker)])
        sent = spy_on_events(monkeypatch, node, sup)
        other = me.spawn(listener)
        await sup.subscribe(other)
        await sup.subscribe()
        await restart(me, sup)
        assert other in sent and me.pid in sent
        me.send(other, "leave")
        await node.wait(other)
        # The subscriber's Down reached the supervisor before the crash below.
        sent.clear()
        await restart(me, sup)
        assert me.pid in sent and other not in sent
        await sup.shutdown_and_wait()


async def test_subscriber_dead_at_subscribe_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards against a subscription for a pid that is already dead: it is dropped at once."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(RestartLimit(10, 60.0)), [ChildSpec("a", worker)])
        sent = spy_on_events(monkeypatch, node, sup)
        gone = me.spawn(listener)
        me.send(gone, "leave")
        await node.wait(gone)
        await sup.subscribe(gone)
        await sup.subscribe()
        await restart(me, sup)
        assert me.pid in sent and gone not in sent
        await sup.shutdown_and_wait()


async def test_unsubscribed_process_gets_no_events() -> None:
    """After ``unsubscribe`` the caller receives no more events, and can subscribe again."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(RestartLimit(10, 60.0)), [ChildSpec("a", worker)])
        await sup.subscribe()
        await sup.unsubscribe()
        first = await pid_of(sup, "a")
        me.send(first, "crash")
        await node.wait(first)
        await pid_of(sup, "a")  # answered after the restart: any event would be here by now
        assert me.mailbox_size == 0
        await sup.subscribe()
        await restart(me, sup)
        await sup.shutdown_and_wait()
