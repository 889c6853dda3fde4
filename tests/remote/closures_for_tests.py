"""Remote-table functions the node processes of the tests run (``--import`` this module)."""

from __future__ import annotations

import os
from typing import Any

import anyio

from refcount_starter import supervisor
from refcount_starter.remote.closures import remotable
from refcount_starter.runtime import Call, ExitSignal, Pid, Process, ProcessExit, Shutdown
from refcount_starter.supervisor import RestartLimit, RestartOne


@remotable(name="test.echo")
async def echo(p: Process, register_as: str | None = None) -> None:
    """Answer calls with ``("echo", request)``; crash on ``"crash"``, return on ``"stop"``."""
    if register_as is not None:
        p.register(register_as)
    async for message in p.messages():
        if isinstance(message, Call):
            p.reply(message, ("echo", message.request))
        elif isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], Pid):
            p.send(message[0], ("echo", message[1]))
        elif message == "crash":
            raise ValueError("asked to crash")
        elif message == "stop":
            return


@remotable(name="test.sleeper")
async def sleeper(p: Process) -> None:
    """Wait for ever."""
    await anyio.sleep_forever()


@remotable(name="test.report_exit")
async def report_exit(p: Process, observer: str, observer_node: str) -> None:
    """Trap exits; report the first exit signal to ``(observer, observer_node)``."""
    p.trap_exits = True
    signal = await p.receive(ExitSignal)
    p.send((observer, observer_node), ("exit-seen", p.pid, signal.sender, signal.reason))


@remotable(name="test.supervisor")
async def supervisor_host(p: Process, reply_to: Pid) -> None:
    """Start a supervisor here (restart limit 10 in 10 s); send ``("supervisor", pid)`` to
    ``reply_to``; keep it running until this process is stopped."""
    sup = await supervisor.start(p, RestartOne(RestartLimit(10, 10.0)))
    p.send(reply_to, ("supervisor", sup.pid))
    await anyio.sleep_forever()


@remotable(name="test.exit_oddly")
async def exit_oddly(p: Process, how: str) -> None:
    """On any message, end with a reason that cannot be encoded: an exception whose text
    holds a lone surrogate (a non-UTF-8 file name, as ``os.listdir`` gives it), or a reason
    nested too deep."""
    await p.receive()
    if how == "surrogate":
        name = os.fsdecode(b"report-\xff.txt")
        raise FileNotFoundError(f"cannot open {name}")
    deep: Any = "bottom"
    for _ in range(200_000):
        deep = [deep]
    raise ProcessExit(Shutdown(deep))
