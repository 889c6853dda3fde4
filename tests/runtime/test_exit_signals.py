"""Exit signals sent with ``exit``, Kill, trapping, and crashes."""

from __future__ import annotations

import logging

import anyio
import pytest

from refcount_starter.runtime import (
    Crashed,
    Down,
    ExitSignal,
    Kill,
    Killed,
    Node,
    Normal,
    Process,
    ProcessExit,
    Shutdown,
)

from .helpers import exit_on_message, forward, idle

pytestmark = pytest.mark.anyio


async def test_exit_normal_to_a_non_trapping_process_is_ignored() -> None:
    """``exit(pid, Normal())`` leaves a non-trapping process running."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(forward, me.pid)
        me.exit(pid, Normal())
        me.send(pid, "still there")
        assert await me.receive(timeout=5) == "still there"
        assert node.is_alive(pid)


async def test_exit_shutdown_stops_a_non_trapping_process() -> None:
    """``exit(pid, Shutdown(...))`` stops a non-trapping process with that reason."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle)
        me.exit(pid, Shutdown("enough"))
        assert await node.wait(pid) == Shutdown("enough")


async def test_a_trapping_process_receives_exit_signals_as_messages() -> None:
    """A trapping target gets ExitSignal(sender, reason) for every reason but Kill."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(forward, me.pid, trap_exits=True)
        for reason in (Normal(), Shutdown("x"), Killed(), Crashed("E", "m")):
            me.exit(pid, reason)
            assert await me.receive(timeout=5) == ExitSignal(me.pid, reason)
        assert node.is_alive(pid)
        me.exit(pid, Kill())  # it traps Shutdown too: do not leave it to the node's timeout


async def test_kill_cannot_be_trapped() -> None:
    """Kill through a trapping process stops it with Killed, sending no ExitSignal."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn_link(forward, me.pid, trap_exits=True)
        me.exit(pid, Kill())
        assert await me.receive(timeout=5) == ExitSignal(pid, Killed())
        assert await node.wait(pid) == Killed()


async def test_exit_normal_to_oneself_ends_the_process() -> None:
    """A non-trapping process that sends itself exit Normal exits Normal, as in Erlang."""
    async with Node() as node, node.process() as me:

        async def quit_self(p: Process) -> None:
            p.exit(p.pid, Normal())
            await idle(p)

        assert await node.wait(me.spawn(quit_self)) == Normal()


async def test_node_exit_sends_from_the_node() -> None:
    """``node.exit`` delivers an exit signal whose sender is the node's own pid."""
    async with Node() as node, node.process(trap_exits=True) as me:
        node.exit(me.pid, Shutdown())
        signal = await me.receive(timeout=0)
        assert signal.reason == Shutdown() and signal.sender.node == node.name
        assert signal.sender.serial == 0


async def test_exit_to_a_dead_pid_is_ignored() -> None:
    """An exit signal to a dead pid changes nothing and raises nothing."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle)
        me.exit(pid, Kill())
        await node.wait(pid)
        me.exit(pid, Shutdown())
        assert node.process_count == 1


async def test_process_exit_sets_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    """Raising ProcessExit(reason) in a process ends it with that reason, unlogged."""
    caplog.set_level(logging.DEBUG, logger="refcount_starter")
    async with Node() as node, node.process() as me:
        pid, ref = me.spawn_monitor(exit_on_message)
        me.send(pid, Shutdown(("k", 1)))
        assert await me.receive(timeout=5) == Down(ref, pid, Shutdown(("k", 1)))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_crash_is_logged_once_with_its_traceback_and_the_node_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An uncaught exception ends only its process with Crashed and is logged once at ERROR."""
    caplog.set_level(logging.DEBUG, logger="refcount_starter")
    async with Node() as node, node.process() as me:
        pid, ref = me.spawn_monitor(exit_on_message)
        me.send(pid, "kaboom")
        down = await me.receive(timeout=5)
        assert down.ref == ref and isinstance(down.reason, Crashed)
        assert down.reason.exc_type == "RuntimeError" and "kaboom" in down.reason.message
        survivor = me.spawn(forward, me.pid)
        me.send(survivor, "after the crash")
        assert await me.receive(timeout=5) == "after the crash"
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(crashes) == 1
    record = crashes[0]
    assert record.name == "refcount_starter.runtime.node" and str(pid) in record.getMessage()
    assert record.exc_info is not None and "kaboom" in str(record.exc_info[1])
    assert "exit_on_message" in caplog.text  # the traceback is in the log


async def test_crashed_names_the_exception_type_with_its_module() -> None:
    """A crash with a non-builtin exception names it by module and qualified name."""

    class CustomError(Exception):
        pass

    async def raise_custom(p: Process) -> None:
        raise CustomError("odd")

    async with Node() as node:
        logging.getLogger("refcount_starter.runtime.node").disabled = True
        try:
            reason = await node.wait(node.spawn(raise_custom))
        finally:
            logging.getLogger("refcount_starter.runtime.node").disabled = False
        assert isinstance(reason, Crashed) and reason.message == "odd"
        assert reason.exc_type.endswith("CustomError") and "." in reason.exc_type


async def test_a_killed_process_runs_its_cleanup_and_exits_killed() -> None:
    """A process killed while waiting runs its finally blocks and exits Killed."""
    async with Node() as node, node.process() as me:

        async def guarded(p: Process) -> None:
            try:
                await idle(p)
            finally:
                p.send(me.pid, "cleaned up")

        pid = me.spawn(guarded)
        await anyio.wait_all_tasks_blocked()
        me.exit(pid, Kill())
        assert await node.wait(pid) == Killed()
        assert await me.receive(timeout=0) == "cleaned up"


async def test_a_process_killed_before_it_runs_never_runs() -> None:
    """A process killed right after spawn exits Killed without running its function."""
    async with Node() as node, node.process() as me:
        ran = []

        async def record(p: Process) -> None:
            ran.append(p.pid)

        pid = me.spawn(record)
        me.exit(pid, Kill())
        assert await node.wait(pid) == Killed()
        assert ran == []


def test_process_exit_refuses_a_non_reason() -> None:
    """ProcessExit with something that is not an ExitReason raises TypeError naming it."""
    with pytest.raises(TypeError, match="'bye'"):
        ProcessExit("bye")  # type: ignore[arg-type]


async def test_a_kill_also_cancels_awaits_in_finally_blocks() -> None:
    """Regression: on asyncio a kill was one Task.cancel(), so an await in a finally outlived it."""
    from refcount_starter.runtime import Down, Kill, Killed

    async def stubborn(p: Process) -> None:
        try:
            await p.receive()
        finally:
            await anyio.sleep(30)

    async with Node() as node, node.process() as me:
        pid, ref = me.spawn_monitor(stubborn)
        await anyio.wait_all_tasks_blocked()
        me.exit(pid, Kill())
        with anyio.fail_after(5):
            down = await me.receive(Down)
        assert (down.ref, down.reason) == (ref, Killed())
