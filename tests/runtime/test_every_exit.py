"""Every way out of a process function ends the process with a reason (ADR-0010)."""

from __future__ import annotations

import logging
import subprocess
import sys

import anyio
import pytest

from refcount_starter.runtime import (
    Crashed,
    Down,
    Node,
    Normal,
    Pid,
    Process,
    ProcessExit,
    ProcessNotAlive,
    Shutdown,
)
from refcount_starter.runtime.runners import exit_in_group

from .helpers import idle

pytestmark = pytest.mark.anyio


class Custom(BaseException):
    """A BaseException of the user's own, not an Exception."""


async def raising(p: Process, exc: BaseException) -> None:
    raise exc


async def exits_by(p: Process, how: str) -> None:
    if how == "sys.exit":
        sys.exit(3)
    if how == "generator":
        raise GeneratorExit()
    raise Custom("custom")


@pytest.mark.parametrize(
    ("how", "exc_type"),
    [("sys.exit", "SystemExit"), ("generator", "GeneratorExit"), ("custom", "Custom")],
)
async def test_a_base_exception_crashes_only_its_process_and_is_logged(
    how: str, exc_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SystemExit, GeneratorExit and a custom BaseException end the process ``Crashed``,
    logged once; its watchers learn it, and the node (and its other processes) run on."""
    caplog.set_level(logging.ERROR, logger="refcount_starter.runtime.node")
    async with Node() as node, node.process() as me:
        bystander = me.spawn(idle)
        pid, ref = me.spawn_monitor(exits_by, how)
        down = await me.receive(Down, timeout=5)
        assert down.ref == ref and isinstance(down.reason, Crashed)
        assert down.reason.exc_type.rsplit(".", 1)[-1] == exc_type
        assert [r.getMessage() for r in caplog.records] == [f"process {pid} crashed"]
        assert node.is_alive(bystander)
        me.send(me.pid, "still works")
        assert await me.receive() == "still works"


KEYBOARD_INTERRUPT = """
import sys, anyio
from refcount_starter.runtime import Node

async def interrupt(p):
    raise KeyboardInterrupt

async def main():
    async with Node() as node, node.process() as me:
        me.spawn(interrupt)
        await me.receive()

try:
    anyio.run(main, backend=sys.argv[1])
except BaseException as exc:
    group = isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is not None
    print("interrupted" if group or isinstance(exc, KeyboardInterrupt) else repr(exc))
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_keyboard_interrupt_stops_the_program(backend: str) -> None:
    """Ctrl-C in a process propagates out of the run (on trio inside the nursery's group)."""
    done = subprocess.run(
        [sys.executable, "-c", KEYBOARD_INTERRUPT, backend],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "interrupted", done.stderr


async def test_process_exit_and_return_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Returning exits Normal and ProcessExit(reason) exits with reason; neither is logged."""
    caplog.set_level(logging.ERROR, logger="refcount_starter.runtime.node")
    async with Node() as node, node.process() as me:

        async def returns(p: Process) -> None:
            return None

        assert await node.wait(me.spawn(returns)) == Normal()
        assert await node.wait(me.spawn(raising, ProcessExit(Shutdown("done")))) == Shutdown("done")
        assert caplog.records == []


async def test_a_killed_process_exits_killed_even_when_it_raises_in_finally() -> None:
    """A kill wins over what the process raises while it unwinds."""

    async def stubborn(p: Process, to: Pid) -> None:
        try:
            p.send(to, "ready")
            await p.receive(type(None))
        finally:
            raise Custom("late")

    async with Node() as node, node.process() as me:
        pid = me.spawn(stubborn, me.pid)
        assert await me.receive(timeout=5) == "ready"
        node.exit(pid, Shutdown("go"))
        assert await node.wait(pid) == Shutdown("go")


async def test_info_describes_a_process() -> None:
    """``Process.info()`` and ``Node.info(pid)`` show state without private fields."""
    async with Node() as node, node.process(name="me") as me:
        pid, ref = me.spawn_monitor(idle)
        me.link(pid)
        await anyio.wait_all_tasks_blocked()
        info = node.info(pid)
        assert info.status == "waiting" and info.links == (me.pid,)
        assert info.monitored_by == ((ref, me.pid),) and info.parent == me.pid
        assert info.function is not None and info.function.endswith("helpers.idle")
        mine = me.info()
        assert mine.registered_name == "me" and mine.monitors == ((ref, pid),)
        assert mine.function is None and mine.status == "runnable"
        me.unlink(pid)
        me.exit(pid, Shutdown())
        await me.receive(Down)
        with pytest.raises(ProcessNotAlive):
            node.info(pid)
        with pytest.raises(TypeError, match="Pid"):
            node.info("me")  # type: ignore[arg-type]


async def exits_from_a_task(p: Process) -> None:
    """Raises ProcessExit in a task of its own task group."""

    async def leave() -> None:
        raise ProcessExit(Shutdown("from a task"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leave)
        await anyio.sleep_forever()


async def test_process_exit_from_a_task_of_the_process_ends_it_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Guards against a ProcessExit raised in a task of the process's own task group ending
    it as Crashed(ExceptionGroup): it ends with that reason, unlogged."""
    async with Node() as node:
        pid = node.spawn(exits_from_a_task)
        assert await node.wait(pid) == Shutdown("from a task")
        assert not caplog.records


def test_only_a_group_of_process_exits_is_an_exit() -> None:
    """The first ProcessExit of a group of them, nested or not, is the exit; a group that
    also holds anything else is the crash it is."""
    first, second = ProcessExit(Shutdown("first")), ProcessExit(Normal())
    assert exit_in_group(BaseExceptionGroup("", [first, second])) == Shutdown("first")
    assert exit_in_group(BaseExceptionGroup("", [BaseExceptionGroup("", [first]), second])) == Shutdown(
        "first"
    )
    assert exit_in_group(BaseExceptionGroup("", [first, ValueError("and a crash")])) is None
    assert exit_in_group(first) is None
    assert exit_in_group(ValueError()) is None


async def test_process_exit_from_a_task_of_a_process_block_ends_it_with_its_reason() -> None:
    """As for a spawned process: a ProcessExit raised in a task group inside a
    ``node.process()`` block ends the block's process with its reason, not Crashed."""
    async with Node() as node, node.process() as watcher:
        async with node.process() as me:
            ref = watcher.monitor(me.pid)

            async def leave() -> None:
                raise ProcessExit(Shutdown("from a task"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(leave)
                await anyio.sleep_forever()
        down = await watcher.receive(Down, where=lambda d: d.ref == ref)
        assert down.reason == Shutdown("from a task")
