"""The runtime under hostile and unusual use: every test names what a user relies on.

Calls killed or cancelled at each await, ``Down`` racing ``Reply``, predicates with side
effects, huge mailboxes, early exit signals, odd process functions, second readers, each on
asyncio and trio (ADR-0010).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import subprocess
import sys
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from refcount_starter.runtime import (
    BUDGET,
    Call,
    Crashed,
    Down,
    ExitSignal,
    InMemoryNetwork,
    Kill,
    Killed,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    ProcessExit,
    ProcessNotAlive,
    Reply,
    Shutdown,
)

from .helpers import echo, idle

pytestmark = pytest.mark.anyio


# -- calls -------------------------------------------------------------------------------


async def reply_then_exit(p: Process, reason: Any) -> None:
    """Answer one call, then exit at once with ``reason``."""
    call = await p.receive(Call)
    p.reply(call, "answer")
    raise ProcessExit(reason)


async def test_a_call_whose_callee_dies_right_after_replying_returns_the_reply() -> None:
    """The reply wins over the Down queued right behind it, and no Down is left behind."""
    async with Node() as node, node.process() as me:
        for reason in (Normal(), Shutdown("done"), Killed()):
            callee = me.spawn(reply_then_exit, reason)
            assert await me.call(callee, "q") == "answer"
            assert await node.wait(callee) == reason
            assert me.queued() == []
            assert me.info().monitors == ()


async def reply_and_die_before_reading(p: Process) -> None:
    """Reply, then exit before the caller runs again: Reply and Down queued together."""
    call = await p.receive(Call)
    p.reply(call, "late but there")
    p.exit(p.pid, Kill())
    await anyio.lowlevel.checkpoint()


async def test_a_reply_and_a_down_queued_together_give_the_reply() -> None:
    async with Node() as node, node.process() as me:
        me.send(me.pid, "backlog")
        callee = me.spawn(reply_and_die_before_reading)
        assert await me.call(callee, "q") == "late but there"
        assert await node.wait(callee) == Killed()
        assert me.queued() == ["backlog"]


async def caller(p: Process, callee: Pid, report: Pid) -> None:
    p.send(report, ("calling", p.pid))
    try:
        value = await p.call(callee, "q")
    finally:
        p.send(report, ("left", p.info().monitors))
    p.send(report, ("value", value))


async def silent(p: Process) -> None:
    """Take calls and never answer them."""
    while True:
        await p.receive(Call)


async def test_a_caller_killed_while_waiting_leaves_no_monitor_on_the_callee() -> None:
    async with Node() as node, node.process() as me:
        callee = me.spawn(silent)
        pid = me.spawn(caller, callee, me.pid)
        assert await me.receive() == ("calling", pid)
        while node.info(callee).monitored_by == ():
            await anyio.lowlevel.checkpoint()
        me.exit(pid, Shutdown("stop"))
        assert await node.wait(pid) == Shutdown("stop")
        assert await me.receive() == ("left", ())
        assert node.info(callee).monitored_by == ()


async def test_a_call_cancelled_by_its_scope_leaves_no_monitor_and_no_down() -> None:
    """A node.process() block whose call is cancelled keeps nothing of the call (ADR-0010,
    decision 7)."""
    async with Node() as node, node.process() as me:
        callee = me.spawn(silent)
        with anyio.move_on_after(0.01):
            await me.call(callee, "q")
        assert me.info().monitors == ()
        assert node.info(callee).monitored_by == ()
        me.exit(callee, Kill())
        assert await node.wait(callee) == Killed()
        assert me.queued() == []


async def reply_then_kill_the_caller(p: Process) -> None:
    """Answer a call, then send the caller an exit signal before it can run again."""
    call = await p.receive(Call)
    p.reply(call, "ok")
    p.exit(call.sender, Shutdown("between"))


async def test_a_caller_killed_between_the_reply_and_its_wake_up_exits_with_the_kill() -> None:
    """The reply is queued, the caller is killed before it runs: it exits with the kill's
    reason, not with the reply, and the callee keeps no monitor of it."""
    async with Node() as node, node.process() as me:
        callee = me.spawn(reply_then_kill_the_caller)
        pid = me.spawn(caller, callee, me.pid)
        assert await me.receive() == ("calling", pid)
        assert await node.wait(pid) == Shutdown("between")
        assert await me.receive() == ("left", ())
        assert await node.wait(callee) == Normal()


async def test_demonitor_with_flush_removes_a_down_already_queued() -> None:
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle)
        ref = me.monitor(pid)
        me.send(me.pid, "before")
        me.exit(pid, Kill())
        await node.wait(pid)
        me.send(me.pid, "after")
        assert [type(m) for m in me.queued()] == [str, Down, str]
        me.demonitor(ref, flush=True)
        assert me.queued() == ["before", "after"]
        me.demonitor(ref, flush=True)  # again: nothing to do, no error
        assert me.queued() == ["before", "after"]


# -- selective receive -----------------------------------------------------------------------


async def test_a_predicate_that_raises_leaves_the_mailbox_as_it_was() -> None:
    async with Node() as node, node.process() as me:
        for n in range(5):
            me.send(me.pid, n)

        def boom(message: Any) -> bool:
            if message == 3:
                raise ValueError("no threes")
            return False

        with pytest.raises(ValueError, match="no threes"):
            await me.receive(where=boom)
        assert me.queued() == [0, 1, 2, 3, 4]
        assert await me.receive(where=lambda m: m == 4) == 4
        assert me.queued() == [0, 1, 2, 3]


async def test_a_predicate_that_sends_to_its_own_process_sees_what_it_sent() -> None:
    """Messages the predicate sends while the mailbox is scanned are queued after the others
    and looked at in their turn."""
    async with Node() as node, node.process() as me:
        for n in range(3):
            me.send(me.pid, n)
        seen: list[Any] = []

        def echoing(message: Any) -> bool:
            seen.append(message)
            if isinstance(message, int) and message < 3:
                me.send(me.pid, f"echo {message}")
            return message == "echo 2"

        assert await me.receive(where=echoing, timeout=1) == "echo 2"
        assert seen == [0, 1, 2, "echo 0", "echo 1", "echo 2"]
        assert me.queued() == [0, 1, 2, "echo 0", "echo 1"]


async def test_a_predicate_that_takes_messages_is_refused_and_loses_none() -> None:
    """A predicate must not take messages of the mailbox it is scanning (flush): the
    receive fails with a RuntimeError saying so, and no message is lost or taken twice."""
    async with Node() as node, node.process() as me:
        for n in range(4):
            me.send(me.pid, n)
        taken: list[Any] = []

        def greedy(message: Any) -> bool:
            if message == 1 and not taken:
                taken.extend(me.flush())
            return message == 2

        with pytest.raises(RuntimeError, match="predicate"):
            await me.receive(where=greedy)
        assert taken + me.queued() == [0, 1, 2, 3]


async def test_a_predicate_that_takes_messages_on_a_resumed_scan_is_refused() -> None:
    async with Node() as node, node.process() as me:
        me.send(me.pid, "a")
        taken: list[Any] = []

        def greedy(message: Any) -> bool:
            if message == "b":
                taken.extend(me.flush())
            return message == "c"

        async def feed() -> None:
            await anyio.lowlevel.checkpoint()
            node.send(me.pid, "b")
            node.send(me.pid, "c")

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            with pytest.raises(RuntimeError, match="predicate"):
                await me.receive(where=greedy, timeout=5)
        assert taken + me.queued() == ["a", "b", "c"]


async def test_a_resumed_selective_receive_tests_each_message_once() -> None:
    """Linear: with n messages queued and k more arriving one per wake-up, the predicate
    runs n + k + 1 times, not once per message per wake-up."""
    n, k = 10_000, 200
    calls = 0

    def wanted(message: Any) -> bool:
        nonlocal calls
        calls += 1
        return message == "match"

    async with Node() as node, node.process() as me:
        for i in range(n):
            me.send(me.pid, i)

        async def trickle() -> None:
            for i in range(k):
                await anyio.lowlevel.checkpoint()
                while me.info().status != "waiting":
                    await anyio.lowlevel.checkpoint()
                node.send(me.pid, ("late", i))
            while me.info().status != "waiting":
                await anyio.lowlevel.checkpoint()
            node.send(me.pid, "match")

        for receive_timeout in (None, 60.0):
            calls = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(trickle)
                assert await me.receive(where=wanted, timeout=receive_timeout) == "match"
            assert calls == n + k + 1, (receive_timeout, calls)
            assert me.mailbox_size == n + k
            me.flush()
            for i in range(n):
                me.send(me.pid, i)


async def test_receive_with_timeout_zero_in_a_loop_lets_other_processes_run() -> None:
    """Polling an empty mailbox is a receive too: it yields within the budget."""
    ticks: list[int] = []

    async def ticker(p: Process) -> None:
        for i in range(3):
            ticks.append(i)
            await anyio.lowlevel.checkpoint()

    async def poller(p: Process, report: Pid) -> None:
        polls = 0
        while len(ticks) < 3 and polls < 20 * BUDGET:
            polls += 1
            with contextlib.suppress(TimeoutError):
                await p.receive(timeout=0)
        p.send(report, ("polls", polls))

    async with Node() as node, node.process() as me:
        me.spawn(poller, me.pid)
        me.spawn(ticker)
        kind, polls = await me.receive()
        assert kind == "polls" and polls < 20 * BUDGET
        assert ticks == [0, 1, 2]


# -- kills, exit signals ---------------------------------------------------------------------


async def wait_with_deadline(p: Process, report: Pid) -> None:
    p.send(report, "waiting")
    try:
        await p.receive(str, timeout=60)
    finally:
        p.send(report, ("unwound", p.info().status))


async def test_a_process_killed_while_it_waits_with_a_deadline_exits_at_once() -> None:
    async with Node() as node, node.process() as me:
        pid = me.spawn(wait_with_deadline, me.pid)
        assert await me.receive() == "waiting"
        with anyio.fail_after(5):
            me.exit(pid, Shutdown("now"))
            assert await node.wait(pid) == Shutdown("now")
        assert await me.receive() == ("unwound", "exiting")


async def test_exit_signals_sent_before_the_first_step_decide_the_exit() -> None:
    """The function never runs; the first signal that kills wins; a trapped one is queued."""
    ran: list[Pid] = []

    async def note(p: Process) -> None:
        ran.append(p.pid)
        await p.receive(str)

    async with Node() as node, node.process() as me:
        a = me.spawn(note)
        me.exit(a, Shutdown("first"))
        me.exit(a, Kill())
        b = me.spawn(note)
        me.exit(b, Normal())  # ignored, then killed
        me.exit(b, Kill())
        c = me.spawn(note, trap_exits=True)
        me.exit(c, Shutdown("trapped"))
        assert await node.wait(a) == Shutdown("first")
        assert await node.wait(b) == Killed()
        while not ran or ran[-1] != c:
            await anyio.lowlevel.checkpoint()
        assert ran == [c]
        assert node.info(c).mailbox_size == 1
        me.exit(c, Kill())
        assert await node.wait(c) == Killed()


async def test_spawn_for_a_dead_local_owner_exits_at_once_with_noproc() -> None:
    ran: list[Pid] = []

    async def note(p: Process) -> None:
        ran.append(p.pid)

    async with Node() as node, node.process() as me:
        owner = me.spawn(idle)
        me.exit(owner, Kill())
        await node.wait(owner)
        ref = me.reserve_monitor()
        pid = me.spawn_for(owner, ref, note)
        reason = await node.wait(pid)
        assert isinstance(reason, NoProc) and reason.pid == owner
        assert ran == []
        assert me.info().links == ()


async def test_trap_exits_turned_off_leaves_queued_exit_signals_as_messages() -> None:
    """Exit signals already turned into messages stay messages; the next one kills."""
    async with Node() as node:
        with pytest.raises(ProcessExit) as exited:
            async with node.process(trap_exits=True) as me:
                a = me.spawn_link(idle)
                me.exit(a, Kill())
                await node.wait(a)
                me.trap_exits = False
                assert await me.receive(ExitSignal, timeout=1) == ExitSignal(a, Killed())
                b = me.spawn(idle)
                me.exit(b, Kill())
                await node.wait(b)
                me.link(b)  # dead: NoProc, a signal that kills now
                await anyio.sleep_forever()
        assert isinstance(exited.value.reason, NoProc) and exited.value.reason.pid == b


async def test_linking_to_itself_or_unlinking_a_stranger_changes_nothing() -> None:
    async with Node() as node, node.process(trap_exits=True) as me, node.process() as other:
        me.link(me.pid)
        me.unlink(other.pid)
        me.unlink(me.pid)
        assert me.info().links == ()
        assert other.info().links == ()
        me.link(other.pid)
        assert me.info().links == (other.pid,)
        assert other.info().links == (me.pid,)
        me.unlink(other.pid)
        me.unlink(other.pid)
        assert me.info().links == () and other.info().links == ()
        # Unlinked processes share one empty set: linking one must not link another.
        third = me.spawn(idle)
        me.link(third)
        assert other.info().links == ()
        assert node.info(third).links == (me.pid,)
        node.peer_down("nowhere")  # no links across: nothing fires
        assert other.info().links == ()
        me.exit(third, Kill())
        await node.wait(third)
        assert me.info().links == ()
        assert await me.receive(timeout=1) == ExitSignal(third, Killed())


async def test_node_exit_from_a_plain_callback_kills_like_any_sender() -> None:
    """An exit signal needs no sending task: from a callback of the event loop it works."""
    async with Node() as node, node.process() as me:
        pid = me.spawn(idle)
        token_done = anyio.Event()

        def from_outside() -> None:
            node.exit(pid, Shutdown("callback"))
            token_done.set()

        await anyio.to_thread.run_sync(lambda: anyio.from_thread.run_sync(from_outside))
        await token_done.wait()
        assert await node.wait(pid) == Shutdown("callback")


async def calls_for_ever(p: Process, callee: Pid) -> None:
    while True:
        await p.call(callee, "again")


async def test_a_node_stops_while_its_processes_are_mid_call() -> None:
    with anyio.fail_after(10):
        async with Node() as node:
            callee = node.spawn(echo)
            callers = [node.spawn(calls_for_ever, callee) for _ in range(5)]
            await anyio.sleep(0)
        for pid in [callee, *callers]:
            assert not node.is_alive(pid)


async def test_process_exit_with_a_bad_reason_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'oops'"):
        ProcessExit("oops")  # type: ignore[arg-type]


# -- exceptions out of a process ------------------------------------------------------------


async def raises_group(p: Process, exc: BaseException) -> None:
    raise BaseExceptionGroup("nested", [exc])


async def test_an_exception_group_of_errors_crashes_only_its_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="refcount_starter.runtime.node")
    async with Node() as node, node.process() as me:
        me.spawn_monitor(raises_group, SystemExit(2))
        down = await me.receive(Down, timeout=5)
        assert isinstance(down.reason, Crashed)
        assert "ExceptionGroup" in down.reason.exc_type
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def nested_group_killed(p: Process, report: Pid) -> None:
    async def child() -> None:
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
        p.send(report, "ready")
        await p.receive(str)


async def test_a_process_with_its_own_task_group_is_killed_with_the_signals_reason() -> None:
    async with Node() as node, node.process() as me:
        pid = me.spawn(nested_group_killed, me.pid)
        assert await me.receive() == "ready"
        me.exit(pid, Shutdown("group"))
        assert await node.wait(pid) == Shutdown("group")
        other = me.spawn(nested_group_killed, me.pid)
        assert await me.receive() == "ready"
        me.exit(other, Kill())
        assert await node.wait(other) == Killed()


KEYBOARD_INTERRUPT_IN_A_GROUP = """
import sys, anyio
from refcount_starter.runtime import Node

async def interrupt(p):
    raise BaseExceptionGroup("nested", [KeyboardInterrupt()])

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
def test_keyboard_interrupt_in_an_exception_group_still_stops_the_program(backend: str) -> None:
    """Ctrl-C wrapped in an exception group (a nested task group's) is still the user's:
    it leaves the run on both backends, as a bare KeyboardInterrupt does."""
    done = subprocess.run(
        [sys.executable, "-c", KEYBOARD_INTERRUPT_IN_A_GROUP, backend],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "interrupted", done.stderr


# -- process functions ------------------------------------------------------------------------


async def an_async_generator(p: Process) -> Any:
    yield None


class AsyncCallableClass:
    """A class whose instances are async callables; the class itself is not one."""

    def __init__(self, p: Process) -> None:
        self.p = p

    async def __call__(self, p: Process) -> None:
        return None


def plain(p: Process) -> None:
    return None


async def test_functions_that_are_not_async_callables_are_refused_at_spawn() -> None:
    async with Node() as node, node.process() as me:
        for fn in (an_async_generator, AsyncCallableClass, functools.partial(plain), plain, 3):
            with pytest.raises(TypeError, match="async"):
                node.spawn(fn)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="async"):
                me.spawn_link(fn)  # type: ignore[arg-type]
        assert node.process_count == 1
        assert me.info().links == ()


async def test_info_of_an_exited_process_shows_it_exited_with_nothing_held() -> None:
    async with Node() as node, node.process(trap_exits=True) as me:
        holder: list[Process] = []

        async def keep(p: Process) -> None:
            holder.append(p)
            p.link(me.pid)
            p.monitor(me.pid)
            p.register("keeper")
            p.send(p.pid, "unread")
            raise ProcessExit(Shutdown("bye"))

        pid = me.spawn(keep)
        await node.wait(pid)
        info = holder[0].info()
        assert info.status == "exited"
        assert info.reason == Shutdown("bye")
        assert info.links == () and info.monitors == () and info.monitored_by == ()
        assert info.registered_name is None
        assert me.info().links == () and me.info().monitored_by == ()
        with pytest.raises(LookupError):
            node.info(pid)
        assert await me.receive(timeout=1) == ExitSignal(pid, Shutdown("bye"))


# -- second readers -----------------------------------------------------------------------------


async def test_a_second_reader_that_finds_a_message_is_refused_while_the_first_waits() -> None:
    """The first reader is parked in a selective receive; a second task taking a message
    it finds at once would shift the first's scan and lose its match: it is refused."""
    async with Node() as node, node.process() as me:
        me.send(me.pid, "unrelated")
        got: list[Any] = []

        async def first() -> None:
            got.append(await me.receive(int, timeout=5))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            while me.info().status != "waiting":
                await anyio.lowlevel.checkpoint()
            with pytest.raises(RuntimeError, match="one reader"):
                await me.receive(timeout=0)
            with pytest.raises(RuntimeError, match="one reader"):
                await me.receive()
            with pytest.raises(RuntimeError, match="one reader"):
                me.flush()
            callee = me.spawn(echo)
            with pytest.raises(RuntimeError, match="one reader"):
                await me.call(callee, "never sent")
            await anyio.wait_all_tasks_blocked()
            assert node.info(callee).monitored_by == ()
            node.send(me.pid, 7)
        assert got == [7]
        assert me.queued() == ["unrelated"]


async def test_a_call_finds_its_reply_with_the_mailbox_changed_before_it() -> None:
    """Messages queued before the call stay; the reply is found behind them."""
    async with Node() as node, node.process() as me:
        callee = me.spawn(echo)
        for n in range(3):
            me.send(me.pid, n)
        assert await me.call(callee, "x") == ("echo", "x")
        assert me.queued() == [0, 1, 2]
        assert Reply not in map(type, me.queued())


# -- more edges ----------------------------------------------------------------------------


async def test_a_predicate_raising_runtime_error_after_sending_to_itself_propagates() -> None:
    """Only the deque's own complaint about a send is absorbed; the predicate's error is not."""
    async with Node() as node, node.process() as me:
        for n in range(3):
            me.send(me.pid, n)

        def sends_then_fails(message: Any) -> bool:
            if message == 1:
                me.send(me.pid, "sent")
                raise RuntimeError("the predicate's own")
            return False

        with pytest.raises(RuntimeError, match="the predicate's own"):
            await me.receive(where=sends_then_fails)
        assert me.queued() == [0, 1, 2, "sent"]


async def test_a_receive_cancelled_at_its_budget_checkpoint_loses_no_message() -> None:
    """A cancelled scope is noticed within the budget; the message found at that checkpoint
    stays queued, in order."""
    async with Node() as node, node.process() as me:
        total = 3 * BUDGET
        for n in range(total):
            me.send(me.pid, n)
        got: list[Any] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            for _ in range(total):
                got.append(await me.receive())
        assert scope.cancelled_caught
        assert 0 < len(got) <= BUDGET
        assert got + me.queued() == list(range(total))
        got = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            while len(got) < total:
                got.append(await me.receive(int, where=lambda m: m % 2 == 0))
        assert got == [n for n in range(total) if n % 2 == 0][: len(got)]


class Handler:
    """An object whose ``__call__`` is a coroutine function: a valid process function."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def __call__(self, p: Process, report: Pid, extra: str) -> None:
        p.send(report, (self.tag, extra))


async def test_an_async_callable_object_is_accepted_bare_or_in_a_partial() -> None:
    async with Node() as node, node.process() as me:
        node.spawn(Handler("bare"), me.pid, "x")
        assert await me.receive(timeout=5) == ("bare", "x")
        node.spawn(functools.partial(Handler("partial"), report=me.pid, extra="y"))
        assert await me.receive(timeout=5) == ("partial", "y")


async def exits_with_a_bad_reason(p: Process) -> None:
    raise ProcessExit("not a reason")  # type: ignore[arg-type]


async def test_a_process_raising_process_exit_with_a_bad_reason_crashes_with_the_type_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="refcount_starter.runtime.node")
    async with Node() as node:
        pid = node.spawn(exits_with_a_bad_reason)
        reason = await node.wait(pid)
        assert isinstance(reason, Crashed) and reason.exc_type.endswith("TypeError")
        assert "not a reason" in reason.message
        assert [r.getMessage() for r in caplog.records] == [f"process {pid} crashed"]


async def test_node_exit_follows_the_rules_of_any_sender() -> None:
    """Normal is ignored by a process that does not trap exits; a trapping one gets the
    signal from Node.pid as a message; a bad reason is a TypeError naming it."""
    async with Node() as node, node.process(trap_exits=True) as me:
        pid = me.spawn(idle)
        node.exit(pid, Normal())
        await anyio.lowlevel.checkpoint()
        assert node.is_alive(pid)
        node.exit(me.pid, Shutdown("hi"))
        assert await me.receive(timeout=1) == ExitSignal(node.pid, Shutdown("hi"))
        with pytest.raises(TypeError, match="'stop'"):
            node.exit(pid, "stop")  # type: ignore[arg-type]
        node.exit(pid, Kill())
        assert await node.wait(pid) == Killed()


async def supervised_pair(p: Process, report: Pid) -> None:
    """Trap exits, link a child, and wait; report what arrives."""
    p.spawn_link(idle)
    p.send(report, "up")
    p.send(report, await p.receive())


async def test_a_node_whose_enclosing_scope_is_cancelled_stops_its_processes() -> None:
    """Cancelling the scope around ``async with Node()`` ends every process with a reason
    and leaves no error behind, on both backends."""
    with anyio.fail_after(10):
        with anyio.CancelScope() as outer:
            async with Node() as node:
                first = node.spawn(supervised_pair, node.pid, trap_exits=True)
                second = node.spawn(idle)
                await anyio.wait_all_tasks_blocked()
                outer.cancel()
                await anyio.sleep_forever()
        assert outer.cancelled_caught
        assert not node.is_alive(first) and not node.is_alive(second)
        assert await node.wait(first) is not None
        assert node.process_count == 0


async def test_a_remote_call_whose_callee_dies_right_after_replying_returns_the_reply() -> None:
    """Across nodes too the reply wins over the Down behind it, and neither node keeps the
    call's monitor or an inbound call."""
    net = InMemoryNetwork()
    async with (
        Node("a", transport=net.transport()) as a,
        Node("b", transport=net.transport()) as b,
        a.process() as me,
    ):
        for reason in (Normal(), Shutdown("done"), Killed()):
            callee = b.spawn(reply_then_exit, reason)
            assert await me.call(callee, "q") == "answer"
            assert await b.wait(callee) == reason
            await anyio.lowlevel.checkpoint()
            assert me.queued() == []
            assert me.info().monitors == ()
            assert b.inbound_calls == 0
        callee = b.spawn(silent)
        with anyio.move_on_after(0.01):
            await me.call(callee, "never answered")
        assert me.info().monitors == ()
        assert b.info(callee).monitored_by == ()
        assert b.inbound_calls == 0


async def test_a_handle_that_outlived_its_process_cannot_link_monitor_call_or_spawn() -> None:
    """Erlang's dead processes do nothing; a kept ``Process`` handle of an exited process
    refuses what would tie a live process to a pid that is gone (a link that never fires,
    a call that never returns) or wait for ever, with ProcessNotAlive naming it."""
    async with Node() as node:
        async with node.process() as gone:
            pass
        live = node.spawn(echo)
        for act in (
            lambda: gone.link(live),
            lambda: gone.monitor(live),
            gone.reserve_monitor,
            lambda: gone.spawn(idle),
            lambda: gone.spawn_link(idle),
            lambda: gone.spawn_monitor(idle),
        ):
            with pytest.raises(ProcessNotAlive) as refused:
                act()
            assert refused.value.pid == gone.pid
        with pytest.raises(ProcessNotAlive):
            await gone.call(live, "hello")
        with pytest.raises(ProcessNotAlive):
            await gone.receive()  # would wait for ever: nothing reaches an exited process
        with pytest.raises(ProcessNotAlive):
            gone.messages()
        with pytest.raises(TimeoutError):
            await gone.receive(timeout=0)
        assert node.info(live).links == () and node.info(live).monitored_by == ()
        assert node.process_count == 1


async def test_a_call_leaves_the_callers_own_down_of_the_callee_in_place() -> None:
    """Only the call's Down is dropped after the reply; a monitor the caller set itself on
    the callee still delivers its Down."""
    async with Node() as node, node.process() as me:
        callee = me.spawn(reply_then_exit, Shutdown("after"))
        ref = me.monitor(callee)
        assert await me.call(callee, "q") == "answer"
        assert await me.receive(Down, timeout=5) == Down(ref, callee, Shutdown("after"))
        assert me.queued() == []


async def test_receive_with_an_infinite_timeout_waits_like_no_timeout() -> None:
    async with Node() as node, node.process() as me:

        async def later() -> None:
            await anyio.wait_all_tasks_blocked()
            node.send(me.pid, "late")

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            assert await me.receive(str, timeout=float("inf")) == "late"


async def test_a_block_that_kills_itself_ends_with_process_exit_killed() -> None:
    async with Node() as node:
        with pytest.raises(ProcessExit) as exited:
            async with node.process() as me:
                me.exit(me.pid, Kill())
                await anyio.sleep_forever()
        assert exited.value.reason == Killed()
        assert node.process_count == 0


async def test_a_predicate_that_sends_on_a_resumed_scan_sees_what_it_sent() -> None:
    """The resumed scan looks at the newest messages only; those its predicate sends are
    looked at too, and each message once."""
    async with Node() as node, node.process() as me:
        for n in range(100):
            me.send(me.pid, n)
        seen: list[Any] = []

        def chain(message: Any) -> bool:
            seen.append(message)
            if message == "x":
                me.send(me.pid, "y")
            return message == "y"

        async def feed() -> None:
            await anyio.wait_all_tasks_blocked()
            node.send(me.pid, "x")

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            assert await me.receive(where=chain) == "y"
        assert seen == [*range(100), "x", "y"]
        assert me.queued() == [*range(100), "x"]


async def awaits_a_cancelled_future(p: Process) -> None:
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    await future


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_awaiting_a_cancelled_future_is_a_crash_not_a_silent_kill(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio only (trio has no cancelled futures to await): nobody cancelled the task, so
    the CancelledError is the process's own bug, logged once, and the node runs on."""
    caplog.set_level(logging.ERROR, logger="refcount_starter.runtime.node")
    async with Node() as node, node.process() as me:
        pid, _ = me.spawn_monitor(awaits_a_cancelled_future)
        down = await me.receive(Down, timeout=5)
        assert isinstance(down.reason, Crashed) and down.reason.exc_type.endswith("CancelledError")
        assert [r.getMessage() for r in caplog.records] == [f"process {pid} crashed"]
        assert await me.call(me.spawn(echo), "still") == ("echo", "still")
