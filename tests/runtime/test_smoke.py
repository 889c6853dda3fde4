"""A first check that a node runs a process on both backends."""

from __future__ import annotations

import pytest

from refcount_starter.runtime import Call, Node, Process

pytestmark = pytest.mark.anyio


async def echo(p: Process) -> None:
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, ("echo", message.request))


async def test_call_round_trip() -> None:
    """A call to a live process returns its reply."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(echo)
        assert await me.call(pid, 42, timeout=5) == ("echo", 42)
