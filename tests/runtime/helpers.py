"""Process functions shared by the runtime tests."""

from __future__ import annotations

from typing import Any

from refcount_starter.runtime import Call, Pid, Process, ProcessExit
from refcount_starter.runtime.reasons import ExitReason


async def idle(p: Process) -> None:
    """Wait for ever (until an exit signal ends the process)."""
    await p.receive(type(None))


async def forward(p: Process, to: Pid) -> None:
    """Forward every message (``ExitSignal`` and ``Down`` included) to ``to``."""
    async for message in p.messages():
        p.send(to, message)


async def echo(p: Process) -> None:
    """Answer each ``Call`` with ``("echo", request)``; exit on the request ``"stop"``."""
    async for message in p.messages():
        if isinstance(message, Call):
            if message.request == "stop":
                return
            p.reply(message, ("echo", message.request))


async def exit_with(p: Process, reason: ExitReason) -> None:
    """Exit at once with ``reason``."""
    raise ProcessExit(reason)


async def exit_on_message(p: Process) -> None:
    """Wait for one message: an ``ExitReason`` to exit with, or anything else to raise."""
    message: Any = await p.receive()
    if isinstance(message, ExitReason):
        raise ProcessExit(message)
    raise RuntimeError(f"asked to crash: {message!r}")
