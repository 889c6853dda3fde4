"""Call and reply: a monitor, a send and a selective receive of the reply or the Down."""

from __future__ import annotations

import logging

import anyio
import pytest

from refcount_starter.runtime import (
    Call,
    CallFailed,
    CallTimeout,
    Crashed,
    Down,
    Node,
    NoProc,
    Normal,
    Process,
    Shutdown,
)

from .helpers import echo, exit_with, idle

pytestmark = pytest.mark.anyio


async def test_call_returns_the_reply() -> None:
    """A call to a live process returns the value it replied with."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(echo)
        assert await me.call(pid, "hi") == ("echo", "hi")
        assert await me.call(pid, 2, timeout=5) == ("echo", 2)


async def test_call_leaves_no_monitor_or_message_behind() -> None:
    """After a successful call the caller holds no monitor and no stray message."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(echo)
        me.send(me.pid, "unrelated")
        await me.call(pid, 1, timeout=5)
        assert me.info().monitors == ()
        assert me.queued() == ["unrelated"]


async def test_call_by_registered_name() -> None:
    """A call can address the callee by its registered name, or (name, node)."""
    async with Node() as node, node.process() as me:
        me.spawn(echo, name="echo")
        assert await me.call("echo", 1, timeout=5) == ("echo", 1)
        assert await me.call(("echo", node.name), 2, timeout=5) == ("echo", 2)


async def test_call_to_a_dead_process_fails_with_noproc() -> None:
    """Calling a dead pid raises CallFailed carrying NoProc with its last reason, at once."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_with, Shutdown("gone"))
        await node.wait(pid)
        with pytest.raises(CallFailed, match=str(pid)) as info:
            await me.call(pid, "anyone?")
        assert isinstance(info.value.reason, NoProc)
        assert info.value.reason.last_reason == Shutdown("gone")
        assert info.value.target == pid


async def test_call_fails_with_the_callee_exit_reason() -> None:
    """A callee that crashes before replying makes the call raise CallFailed(Crashed)."""

    async def crash_on_call(p: Process) -> None:
        call = await p.receive(Call)
        raise ValueError(f"cannot handle {call.request!r}")

    async with Node() as node, node.process() as me:
        logging.getLogger("refcount_starter.runtime.node").disabled = True
        try:
            pid = me.spawn(crash_on_call)
            with pytest.raises(CallFailed) as info:
                await me.call(pid, "req")
        finally:
            logging.getLogger("refcount_starter.runtime.node").disabled = False
        assert isinstance(info.value.reason, Crashed)
        assert info.value.reason.message == "cannot handle 'req'"
        assert me.info().monitors == ()


async def test_call_fails_when_the_callee_exits_normally_without_replying() -> None:
    """A callee that returns without replying makes the call fail with Normal, not hang."""

    async def ignore(p: Process) -> None:
        await p.receive(Call)

    async with Node() as node, node.process() as me:
        with pytest.raises(CallFailed) as info:
            await me.call(me.spawn(ignore), "req")
        assert info.value.reason == Normal()


async def test_call_timeout_raises_and_cleans_up() -> None:
    """A call with no reply in time raises CallTimeout (a TimeoutError), leaving no monitor."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle)
        with pytest.raises(CallTimeout, match=r"0\.01") as info:
            await me.call(pid, "req", timeout=0.01)
        assert isinstance(info.value, TimeoutError) and info.value.target == pid
        assert me.info().monitors == ()
        me.exit(pid, Shutdown())
        await node.wait(pid)
        assert me.mailbox_size == 0  # no Down from the dropped monitor


async def test_call_timeout_zero_on_a_dead_process_still_reports_the_death() -> None:
    """``timeout=0`` on a dead callee reports CallFailed, since its Down is already there."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(exit_with, Normal())
        await node.wait(pid)
        with pytest.raises(CallFailed):
            await me.call(pid, "req", timeout=0)


async def test_the_callee_sees_call_with_sender_and_ref() -> None:
    """The callee receives Call(sender, ref, request); reply sends Reply(ref, value)."""
    async with Node() as node, node.process() as me:

        async def inspect(p: Process) -> None:
            call = await p.receive(Call)
            p.reply(call, (call.sender, call.request))

        pid = me.spawn(inspect)
        assert await me.call(pid, "what", timeout=5) == (me.pid, "what")


async def test_replies_to_concurrent_calls_are_not_mixed_up() -> None:
    """Many callers calling one server each get their own answer."""
    async with Node() as node, node.process() as me:
        server = me.spawn(echo)

        async def caller(p: Process, n: int) -> None:
            p.send(me.pid, (n, await p.call(server, n, timeout=5)))

        for n in range(20):
            me.spawn(caller, n)
        answers = dict([await me.receive(tuple, timeout=5) for _ in range(20)])
        assert answers == {n: ("echo", n) for n in range(20)}


async def test_reply_refuses_a_non_call() -> None:
    """Replying to something that is not a Call raises TypeError naming it."""
    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="'req'"):
            me.reply("req", 1)  # type: ignore[arg-type]


async def test_calling_oneself_is_refused() -> None:
    """Regression: a call to the caller itself raises ValueError instead of hanging for ever."""
    async with Node() as node, node.process(name="me") as me:
        with pytest.raises(ValueError, match="itself"):
            await me.call(me.pid, "req")
        with pytest.raises(ValueError, match="itself"):
            await me.call("me", "req")
        assert me.info().monitors == () and me.mailbox_size == 0


async def slow_replier(p: Process, release: anyio.Event, value: object) -> None:
    """Answers its first call once ``release`` is set, then reports that it has."""
    call = await p.receive(Call)
    await release.wait()
    p.reply(call, value)


@pytest.mark.parametrize("give_up", ["timeout", "cancel"])
async def test_a_late_reply_is_dropped(give_up: str) -> None:
    """Guards against a reply landing in the mailbox after its caller gave up (OTP 24 drops
    it through the call's alias): after a timeout or a cancellation, the callee's reply is
    dropped, and the next call gets its own answer."""
    async with Node() as node, node.process() as me:
        release = anyio.Event()
        pid = me.spawn(slow_replier, release, "late")
        if give_up == "timeout":
            with pytest.raises(CallTimeout):
                await me.call(pid, "req", timeout=0.01)
        else:
            with anyio.move_on_after(0.01):
                await me.call(pid, "req")
        release.set()
        assert await node.wait(pid) == Normal()
        assert me.queued() == []
        assert me.info().monitors == ()
        echo = me.spawn(slow_replier, release, "on time")
        assert await me.call(echo, "req") == "on time"


async def test_a_call_cancelled_at_once_gets_no_late_reply() -> None:
    """A call whose scope was cancelled before it could wait still sent its request: the
    reply to it is dropped."""
    async with Node() as node, node.process() as me:
        release = anyio.Event()
        release.set()
        pid = me.spawn(slow_replier, release, "too late")
        with anyio.CancelScope() as scope:
            scope.cancel()  # the call sends, then is cancelled at its first wait
            await me.call(pid, "req")
        assert await node.wait(pid) == Normal()
        assert me.queued() == []


async def test_a_cancelled_call_leaves_no_monitor_behind() -> None:
    """Regression: a call cancelled while waiting removed neither its monitor nor a later Down."""
    from refcount_starter.runtime import Kill

    async with Node() as node, node.process() as me:
        silent = me.spawn(idle)
        with anyio.move_on_after(0.01):
            await me.call(silent, "never answered")
        assert me.info().monitors == ()
        me.exit(silent, Kill())
        assert await node.wait(silent) is not None
        assert [m for m in me.queued() if isinstance(m, Down)] == []


async def test_two_tasks_receiving_on_one_process_is_a_clear_error() -> None:
    """Regression: a second task parking on the same mailbox overwrote the first one's wake-up."""
    async with Node() as node, node.process() as me:
        errors: list[BaseException] = []

        async def receive_one() -> None:
            try:
                await me.receive(timeout=5)
            except RuntimeError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_one)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(receive_one)
            await anyio.wait_all_tasks_blocked()
            me.send(me.pid, "wake the first")
        assert len(errors) == 1 and "one reader" in str(errors[0])


async def test_a_second_reader_is_caught_between_a_wake_up_and_the_resume() -> None:
    """The woken reader has not run yet when another task parks on the same mailbox: that is
    still a second reader, and it gets the error (the first one gets its message)."""
    async with Node() as node, node.process() as me:
        got: list[object] = []

        async def first() -> None:
            got.append(await me.receive())

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            me.send(me.pid, "one")  # wakes the first reader, which resumes later
            with pytest.raises(RuntimeError, match="one reader"):
                await me.receive(int, timeout=1)
        assert got == ["one"]
