"""Property: messages and signals from one process to another arrive in the order sent.

Several senders run random scripts of sends, exit signals and checkpoints, interleaved by
the scheduler; a trapping receiver, linked to and monitoring every sender, must see each
sender's items in script order, then its link's ExitSignal, then its Down. On one node and
across two nodes of an InMemoryNetwork, on asyncio and on trio.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcount_starter.runtime import (
    Down,
    ExitSignal,
    InMemoryNetwork,
    Node,
    Normal,
    Pid,
    Process,
    Shutdown,
)

BACKENDS = ("asyncio", "trio")

#: One step of a sender's script: a message, an exit signal (Normal or Shutdown), or
#: a number of checkpoints that lets the scheduler run other senders.
step = st.one_of(
    st.just(("send",)),
    st.just(("exit",)),
    st.just(("exit_normal",)),
    st.tuples(st.just("yield"), st.integers(1, 3)),
)
scripts = st.lists(st.lists(step, max_size=12), min_size=1, max_size=5)


async def sender(p: Process, index: int, receiver: Pid, script: list[tuple[Any, ...]]) -> None:
    await p.receive(str)  # "go": every sender starts only once the receiver watches it
    for seq, action in enumerate(script):
        match action:
            case ("send",):
                p.send(receiver, ("msg", index, seq))
            case ("exit",):
                p.exit(receiver, Shutdown((index, seq)))
            case ("exit_normal",):
                p.exit(receiver, Normal())
            case ("yield", times):
                for _ in range(times):
                    await anyio.lowlevel.checkpoint()


def expected_items(index: int, pid: Pid, receiver: Pid, script: list[tuple[Any, ...]]) -> list[object]:
    """What the receiver must see from one sender, in order (before the Down)."""
    items: list[object] = []
    for seq, action in enumerate(script):
        if action == ("send",):
            items.append(("msg", index, seq))
        elif action == ("exit",):
            items.append(ExitSignal(pid, Shutdown((index, seq))))
        elif action == ("exit_normal",):
            items.append(ExitSignal(pid, Normal()))
    items.append(ExitSignal(pid, Normal()))  # the link, when the sender returns
    return items


async def run_and_check(all_scripts: list[list[tuple[Any, ...]]], *, across: bool) -> None:
    net = InMemoryNetwork()
    async with (
        Node("recv", transport=net.transport()) as home,
        Node("send", transport=net.transport()) as away,
        home.process(trap_exits=True) as me,
    ):
        senders_node = away if across else home
        pids: list[Pid] = []
        refs = {}
        for index, script in enumerate(all_scripts):
            # Alternate the spawning side across nodes, so that both directions are covered.
            node = senders_node if index % 2 == 0 else home
            pid = node.spawn(sender, index, me.pid, script)
            me.link(pid)
            refs[pid] = me.monitor(pid)
            pids.append(pid)
        for pid in pids:
            me.send(pid, "go")
        seen: dict[Pid, list[object]] = {pid: [] for pid in pids}
        downs = 0
        with anyio.fail_after(10):
            while downs < len(pids):
                message = await me.receive()
                if isinstance(message, Down):
                    assert message.ref == refs[message.pid] and message.reason == Normal()
                    seen[message.pid].append("down")
                    downs += 1
                elif isinstance(message, ExitSignal):
                    seen[message.sender].append(message)
                else:
                    seen[pids[message[1]]].append(message)
        for index, (pid, script) in enumerate(zip(pids, all_scripts, strict=True)):
            assert seen[pid] == [*expected_items(index, pid, me.pid, script), "down"]
        assert me.mailbox_size == 0


@settings(max_examples=100, deadline=None)
@given(scripts)
def test_per_pair_order_on_one_node(all_scripts: list[list[tuple[Any, ...]]]) -> None:
    """On one node, each sender's messages and signals reach the receiver in the order sent."""
    for backend in BACKENDS:
        anyio.run(lambda: run_and_check(all_scripts, across=False), backend=backend)


@settings(max_examples=100, deadline=None)
@given(scripts)
def test_per_pair_order_across_two_nodes(all_scripts: list[list[tuple[Any, ...]]]) -> None:
    """Across two nodes, each sender's messages and signals reach the receiver in the order sent."""
    for backend in BACKENDS:
        anyio.run(lambda: run_and_check(all_scripts, across=True), backend=backend)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", 1, 2, 3.5]), max_size=20), st.sampled_from([int, str, float]))
def test_selective_receive_keeps_the_rest_in_order(messages: list[object], kind: type) -> None:
    """Receiving every message of one type leaves all the others in their original order."""

    async def check() -> None:
        async with Node() as node, node.process() as me:
            for message in messages:
                me.send(me.pid, message)
            taken = []
            while True:
                try:
                    taken.append(await me.receive(kind, timeout=0))
                except TimeoutError:
                    break
            assert taken == [m for m in messages if type(m) is kind]
            assert me.queued() == [m for m in messages if type(m) is not kind]

    for backend in BACKENDS:
        anyio.run(check, backend=backend)


def test_the_property_would_catch_reordering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the order check fails if a mailbox delivered out of order (the test is not vacuous)."""
    from refcount_starter.runtime.mailbox import AsyncioMailbox

    original = AsyncioMailbox.put  # the asyncio mailbox has its own put (anyio.run's default)

    def put_first(self: AsyncioMailbox, message: object) -> None:
        original(self, message)
        if isinstance(message, tuple) and len(self._items) > 1:
            self._items.rotate(1)  # the newest message jumps the queue

    monkeypatch.setattr(AsyncioMailbox, "put", put_first)
    with pytest.raises(AssertionError):
        anyio.run(lambda: run_and_check([[("send",), ("send",), ("send",)]], across=False))
