"""Log records: each from a named ``refcount_starter.*`` logger, with the node and the pid in
its extra fields, so that a handler (or structlog) can route it; nothing is printed."""

from __future__ import annotations

import logging

import anyio
import pytest

from refcount_starter.observe.web import create_app, serve
from refcount_starter.runtime import Node, Process
from refcount_starter.starter import spawn_child_starter

pytestmark = pytest.mark.anyio


async def crash(p: Process) -> None:
    raise RuntimeError("on purpose")


async def idle(p: Process) -> None:
    await p.receive(type(None))


async def test_the_observer_logs_where_it_serves(caplog: pytest.LogCaptureFixture) -> None:
    """The page's server says where it listens through its logger, with the port as a field."""
    caplog.set_level(logging.INFO, logger="refcount_starter")
    shutdown = anyio.Event()

    async def source() -> list[object]:
        return []

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve(create_app(source), port=0, shutdown=shutdown, ready=lambda port: shutdown.set())
        )
    ours = [r for r in caplog.records if r.name == "refcount_starter.observe.web"]
    (record,) = [r for r in ours if r.getMessage().startswith("observer serving on http://127.0.0.1:")]
    assert isinstance(record.__dict__["port"], int)


async def test_every_library_record_carries_the_node_and_the_pid(caplog: pytest.LogCaptureFixture) -> None:
    """A crash and a starter's refusal are logged with ``node`` and ``pid`` fields."""
    caplog.set_level(logging.DEBUG, logger="refcount_starter")
    async with Node("logs") as node, node.process() as me:
        crashed = me.spawn(crash)
        assert await node.wait(crashed) is not None
        starter = await spawn_child_starter(me, idle)
        await me.call(starter.pid, "not a request")
    records = [r for r in caplog.records if r.name.startswith("refcount_starter.")]
    assert len(records) >= 2
    for record in records:
        assert record.__dict__.get("node") == "logs", record.getMessage()
        assert isinstance(record.__dict__.get("pid"), str), record.getMessage()
