"""OTP's synchronous start (proc_lib:start_link and init_ack), from OTP's supervisor_SUITE.

A child that takes ``task_status`` acknowledges its start with ``task_status.started(info)``;
until then ``start_child`` / ``start_new_child`` / ``restart_child`` wait, bounded by the spec's
``start_timeout``. Each test is named after the supervisor_SUITE case it ports, or says what
it checks. See ADR-0009.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import (
    Crashed,
    ExitSignal,
    Kill,
    Node,
    Normal,
    Process,
    ProcessExit,
    Shutdown,
)
from refcount_starter.supervisor import (
    TEMPORARY,
    AlreadyRunning,
    ChildInitIgnore,
    ChildNotFound,
    ChildNotStopped,
    ChildRunning,
    ChildSpec,
    ChildStartIgnored,
    ChildStatus,
    ChildStopped,
    DuplicateChild,
    FailedToStartChild,
    InitTimeout,
    LocalStart,
    RestartLimit,
    RestartOne,
    StartFailureDied,
    SupervisedChildIgnored,
    SupervisedChildStarted,
    SupervisedChildStartFailure,
    SupervisorExited,
)
from refcount_starter.supervisor import server as server_module
from refcount_starter.supervisor.messages import ListChildren

from .helpers import RecordingStart, next_event, pid_of, wait_dead, worker

pytestmark = pytest.mark.anyio

MANY = RestartLimit(100, 60.0)


# -- children that acknowledge their own start -------------------------------------------------


async def acks(p: Process, info: Any = None, *, task_status: ChildStatus) -> None:
    """Initialises, acknowledges with ``info``, then idles as ``worker`` does."""
    task_status.started(info)
    await worker(p)


async def ignores(p: Process, *, task_status: ChildStatus) -> None:
    """OTP's ``ignore``: asks to be ignored before it acknowledged."""
    raise ChildInitIgnore()


async def fails(p: Process, *, task_status: ChildStatus) -> None:
    """OTP's ``{error, Reason}``: fails its start before it acknowledged."""
    raise ProcessExit(Shutdown("no database"))


async def crashes(p: Process, *, task_status: ChildStatus) -> None:
    """Raises while it initialises."""
    raise RuntimeError("init failed")


async def returns_early(p: Process, *, task_status: ChildStatus) -> None:
    """Returns without ever acknowledging."""


async def never_acks(p: Process, *, task_status: ChildStatus) -> None:
    """Initialises for ever."""
    await p.receive(type(None))


async def logs_init(
    p: Process, key: str, log: list[str], yields: int = 0, *, task_status: ChildStatus
) -> None:
    """Yields ``yields`` times, logs ``init key``, acknowledges, then logs ``stop key`` when
    it is asked to stop (it traps exits)."""
    p.trap_exits = True
    for _ in range(yields):
        await anyio.lowlevel.checkpoint()
    log.append(f"init {key}")
    task_status.started()
    await p.receive(ExitSignal)
    log.append(f"stop {key}")


async def fails_on_attempt(p: Process, attempts: list[int], bad: int, *, task_status: ChildStatus) -> None:
    """Counts its starts in ``attempts``; the ``bad``-th one fails before it acknowledged."""
    attempts.append(len(attempts) + 1)
    if len(attempts) == bad:
        raise RuntimeError(f"attempt {bad} fails")
    task_status.started(len(attempts))
    await worker(p)


# -- sup_start_ignore_child, sup_start_ignore_temporary_child, sup_start_error_return ---------


async def test_sup_start_ignore_child() -> None:
    """supervisor_SUITE:sup_start_ignore_child: a child that returns ``ignore`` is
    ``ChildStartIgnored`` as soon as start_child returns, and its spec is kept."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("init-ignored", ignores)])
        child = await sup.lookup_child("init-ignored")
        assert child is not None and child.state == ChildStartIgnored()
        await sup.subscribe()
        assert await sup.start_new_child(ChildSpec("child1", ignores)) == ChildStartIgnored()
        await next_event(me, SupervisedChildIgnored, key="child1")
        assert await sup.start_child("child1") == ChildStartIgnored()
        assert await sup.restart_child("child1") == ChildStartIgnored()
        assert [c.state for c in await sup.list_children()] == [ChildStartIgnored()] * 2
        stats = await sup.statistics()
        assert (stats.defined, stats.running) == (2, 0)
        await sup.delete_child("child1")  # allowed, as OTP's delete of an ignored child
        assert node.process_count == 2  # me and the supervisor: no child is left running
        await sup.shutdown_and_wait()


async def test_sup_start_ignore_temporary_child() -> None:
    """supervisor_SUITE:sup_start_ignore_temporary_child: an ignored temporary child's spec
    is not kept, and what its start acquired is released."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("t0", ignores, restart=TEMPORARY)])
        assert await sup.list_children() == []
        recording = RecordingStart(ignores)
        recording.acknowledges = True  # it spawns through LocalStart, which acknowledges
        spec = ChildSpec("t1", recording, restart=TEMPORARY)
        assert await sup.start_new_child(spec) == ChildStartIgnored()
        assert await sup.lookup_child("t1") is None
        assert recording.calls == [("acquire", "t1"), ("start", "t1"), ("release", "t1")]
        assert node.process_count == 2
        await sup.shutdown_and_wait()


async def test_sup_start_error_return() -> None:
    """supervisor_SUITE:sup_start_error_return: a child whose start returns an error fails
    start_child with that reason, synchronously; a new spec is not kept."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        await sup.subscribe()
        with pytest.raises(StartFailureDied) as failed:
            await sup.start_new_child(ChildSpec("child1", fails))
        assert failed.value.key == "child1" and failed.value.reason == Shutdown("no database")
        await next_event(me, SupervisedChildStartFailure, key="child1", reason=Shutdown("no database"))
        assert await sup.lookup_child("child1") is None
        with pytest.raises(StartFailureDied) as crashed:
            await sup.start_new_child(ChildSpec("child2", crashes))
        assert isinstance(crashed.value.reason, Crashed) and "init failed" in crashed.value.reason.message
        with pytest.raises(StartFailureDied) as early:
            await sup.start_new_child(ChildSpec("child3", returns_early))
        assert early.value.reason == Normal()  # OTP: {error, normal}
        # An existing spec whose start fails keeps its state.
        await sup.add_child(ChildSpec("child4", fails))
        with pytest.raises(StartFailureDied):
            await sup.start_child("child4")
        child = await sup.lookup_child("child4")
        assert child is not None and child.state == ChildStopped()
        assert node.process_count == 2  # nothing half-started is left behind
        await sup.shutdown_and_wait()


async def test_start_child_returns_the_acknowledged_info() -> None:
    """OTP's ``{ok, Pid, Info}``: the value a child hands to ``task_status.started`` comes
    back in ``ChildRunning(pid, info)``, for start_new_child, start_child and restart_child."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec.worker("w", acks, {"port": 1})])
        state = (await sup.list_children())[0].state
        assert isinstance(state, ChildRunning) and state.info == {"port": 1}
        started = await sup.start_new_child(ChildSpec.worker("v", acks, "ready"))
        assert isinstance(started, ChildRunning) and started.info == "ready"
        assert node.is_alive(started.pid)
        await sup.terminate_child("v")
        again = await sup.restart_child("v")
        assert isinstance(again, ChildRunning) and again.info == "ready" and again.pid != started.pid
        await sup.shutdown_and_wait()


async def test_start_timeout_kills_the_child_and_fails_the_start() -> None:
    """OTP's start_link timeout: a child that does not acknowledge in time is killed and the
    start fails with ``InitTimeout``; the supervisor answers other calls afterwards."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        await sup.subscribe()
        spec = ChildSpec("slow", never_acks, start_timeout=0.05)
        with pytest.raises(StartFailureDied) as failed:
            await sup.start_new_child(spec)
        assert failed.value.reason == InitTimeout(0.05)
        event = await next_event(me, SupervisedChildStartFailure, key="slow")
        assert event.reason == InitTimeout(0.05)
        assert node.process_count == 2  # the child was killed
        assert await sup.list_children() == []
        await sup.shutdown_and_wait()


async def test_a_plain_body_is_acknowledged_as_soon_as_it_runs() -> None:
    """A function without ``task_status`` keeps its meaning: its start returns once it runs,
    and a ``ChildInitIgnore`` it raises is handled after the start, as before."""
    ran: list[str] = []

    async def plain(p: Process) -> None:
        ran.append("ran")
        await worker(p)

    async def plain_ignore(p: Process) -> None:
        raise ChildInitIgnore()

    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        await sup.subscribe()
        started = await sup.start_new_child(ChildSpec("p", plain))
        assert ran == ["ran"]  # it has run by the time its start returned
        assert isinstance(started, ChildRunning) and started.info is None
        ignored = await sup.start_new_child(ChildSpec("i", plain_ignore))
        assert isinstance(ignored, ChildRunning)
        await next_event(me, SupervisedChildIgnored, key="i")
        child = await sup.lookup_child("i")
        assert child is not None and child.state == ChildStartIgnored()
        await sup.shutdown_and_wait()


# -- the initial child list: strictly one after the other --------------------------------------


async def test_start_order_is_the_list_order() -> None:
    """supervisor_SUITE's start order: child k+1 starts only once child k acknowledged, even
    when the earlier children take longer to initialise (a regression: they all initialised
    in the scheduler's order)."""
    async with Node() as node, node.process() as me:
        log: list[str] = []
        specs = [
            ChildSpec.worker("a", logs_init, "a", log, 6),
            ChildSpec.worker("b", logs_init, "b", log, 3),
            ChildSpec.worker("c", logs_init, "c", log, 0),
        ]
        sup = await supervisor.start(me, RestartOne(), specs)
        assert log == ["init a", "init b", "init c"]
        await sup.start_new_child(ChildSpec.worker("d", logs_init, "d", log, 2))
        assert log[-1] == "init d"
        await sup.shutdown_and_wait()
        assert log[4:] == ["stop d", "stop c", "stop b", "stop a"]


async def test_initial_list_failure_stops_the_started_ones_in_reverse_order() -> None:
    """supervisor_SUITE's failing initial child: when child 3 fails its start, children 1
    and 2 (which both initialised) are stopped in reverse order, and the error is raised."""
    async with Node() as node, node.process() as me:
        log: list[str] = []
        specs = [
            ChildSpec.worker("a", logs_init, "a", log, 2),
            ChildSpec.worker("b", logs_init, "b", log, 1),
            ChildSpec("c", fails),
            ChildSpec.worker("d", logs_init, "d", log),
        ]
        with pytest.raises(StartFailureDied) as failed:
            await supervisor.start(me, RestartOne(), specs)
        assert failed.value.key == "c" and failed.value.reason == Shutdown("no database")
        assert log == ["init a", "init b", "stop b", "stop a"]
        assert node.process_count == 1  # only me: the supervisor exited
        assert me.mailbox_size == 0  # it unlinked from its caller first (OTP 26's init_fail)


async def test_a_child_supervisor_acknowledges_once_its_children_have() -> None:
    """A child supervisor acknowledges its start after its own initial list; one of its
    children failing fails its start with ``FailedToStartChild``."""
    async with Node() as node, node.process() as me:
        log: list[str] = []
        inner = ChildSpec.supervisor("inner", RestartOne(), [ChildSpec.worker("x", logs_init, "x", log, 3)])
        after = ChildSpec.worker("y", logs_init, "y", log)
        sup = await supervisor.start(me, RestartOne(), [inner, after])
        assert log == ["init x", "init y"]
        with pytest.raises(StartFailureDied) as failed:
            await sup.start_new_child(ChildSpec.supervisor("bad", RestartOne(), [ChildSpec("c", fails)]))
        assert failed.value.reason == FailedToStartChild("c", Shutdown("no database"))
        await sup.shutdown_and_wait()


# -- automatic restarts --------------------------------------------------------------------------


async def test_a_restart_whose_start_fails_is_retried_and_counted() -> None:
    """OTP's try_again_restart: an automatic restart whose child fails before it acknowledged
    is retried by a message to itself, and each attempt counts."""
    async with Node() as node, node.process() as me:
        attempts: list[int] = []
        sup = await supervisor.start(
            me, RestartOne(MANY), [ChildSpec.worker("w", fails_on_attempt, attempts, 2)]
        )
        await sup.subscribe()
        first = await pid_of(sup, "w")
        me.send(first, "crash")
        await next_event(me, SupervisedChildStartFailure, key="w")
        started = await next_event(me, SupervisedChildStarted, key="w")
        assert attempts == [1, 2, 3]
        child = await sup.lookup_child("w")
        assert child is not None and child.state == ChildRunning(started.pid, 3)
        assert (await sup.statistics()).total_restarts == 2
        await sup.shutdown_and_wait()


# -- child_adm ------------------------------------------------------------------------------------


async def test_child_adm() -> None:
    """supervisor_SUITE:child_adm: start, list, count, terminate, restart and delete a child,
    with every error answer; a key that is no child's key, of any type, is ChildNotFound."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec.worker("child1", acks, 1)])
        [child] = await sup.list_children()
        assert isinstance(child.state, ChildRunning) and child.state.info == 1
        pid = child.state.pid
        stats = await sup.statistics()
        assert (stats.defined, stats.running, stats.workers) == (1, 1, 1)
        with pytest.raises(DuplicateChild):  # {error, {already_started, Pid}}
            await sup.start_new_child(ChildSpec.worker("child1", acks, 1))
        with pytest.raises(AlreadyRunning):  # {error, running}
            await sup.restart_child("child1")
        with pytest.raises(ChildNotStopped):  # {error, running}
            await sup.delete_child("child1")
        await sup.terminate_child("child1")
        assert not node.is_alive(pid)
        assert (await sup.statistics()).running == 0
        restarted = await sup.restart_child("child1")
        assert isinstance(restarted, ChildRunning) and restarted.pid != pid and restarted.info == 1
        await sup.terminate_child("child1")
        await sup.delete_child("child1")
        assert await sup.list_children() == []
        for key in ("child1", 42, ("a", 1), None, 1.5, frozenset({"x"})):
            for operation in (sup.terminate_child, sup.delete_child, sup.restart_child, sup.start_child):
                with pytest.raises(ChildNotFound) as missing:
                    await operation(key)
                assert missing.value.key == key
            assert await sup.lookup_child(key) is None
        with pytest.raises(TypeError, match="hashable"):
            await sup.terminate_child(["not", "hashable"])  # type: ignore[arg-type]
        await sup.shutdown_and_wait()


# -- process functions must be coroutine functions ----------------------------------------------


class AsyncCallable:
    """An object whose ``__call__`` is a coroutine function."""

    async def __call__(self, p: Process) -> None:
        await worker(p)


def test_a_plain_def_is_refused_when_the_spec_is_built() -> None:
    """A process function that is not a coroutine function is a TypeError naming it, at the
    spec, not at some later start."""

    def not_async(p: Process) -> None:
        pass

    for build in (
        lambda: ChildSpec("w", not_async),  # type: ignore[arg-type]
        lambda: ChildSpec.worker("w", not_async),  # type: ignore[arg-type]
        lambda: LocalStart(not_async),  # type: ignore[arg-type]
        lambda: ChildSpec("w", functools.partial(not_async)),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match="not_async"):
            build()
    with pytest.raises(TypeError, match="42"):
        ChildSpec("w", 42)  # type: ignore[arg-type]


async def test_partials_and_async_callables_are_accepted() -> None:
    """``functools.partial`` of an async function and an object with an async ``__call__``
    are process functions; a partial that supplies ``task_status``'s siblings still acks."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me,
            RestartOne(),
            [
                ChildSpec("partial", functools.partial(acks, info="from a partial")),
                ChildSpec("object", AsyncCallable()),
            ],
        )
        partial_state, object_state = [c.state for c in await sup.list_children()]
        assert isinstance(partial_state, ChildRunning) and partial_state.info == "from a partial"
        assert isinstance(object_state, ChildRunning) and node.is_alive(object_state.pid)
        await sup.shutdown_and_wait()


def test_start_timeout_is_validated() -> None:
    """A start timeout must be a positive number of seconds; the defaults follow the type."""
    assert ChildSpec("w", worker).start_timeout == 5.0
    assert ChildSpec.supervisor("s", RestartOne()).start_timeout == math.inf
    with pytest.raises(ValueError, match="start_timeout"):
        ChildSpec("w", worker, start_timeout=0)
    with pytest.raises(TypeError, match="start_timeout"):
        ChildSpec("w", worker, start_timeout="soon")  # type: ignore[arg-type]


# -- let it crash ---------------------------------------------------------------------------------


async def test_a_bug_in_a_request_handler_crashes_the_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let it crash: an exception that is not the supervisor's own error stops its children
    and exits the supervisor ``Crashed``; the caller sees ``SupervisorExited``, and a parent
    restarts the crashed child supervisor."""

    async def buggy(self: Any, request: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setitem(server_module._HANDLERS, ListChildren, buggy)
    async with Node() as node, node.process() as me:
        log: list[str] = []
        inner = ChildSpec.supervisor("inner", RestartOne(), [ChildSpec.worker("x", logs_init, "x", log)])
        top = await supervisor.start(me, RestartOne(MANY), [inner])
        await top.subscribe()
        inner_pid = await pid_of(top, "inner")
        with pytest.raises(SupervisorExited) as exited:
            await supervisor.Supervisor(inner_pid, me).list_children()
        assert isinstance(exited.value.reason, Crashed) and "a bug" in exited.value.reason.message
        restarted = await next_event(me, SupervisedChildStarted, key="inner")
        assert restarted.pid != inner_pid
        assert log == ["init x", "stop x", "init x"]  # its child was stopped, then restarted
        monkeypatch.undo()
        await top.shutdown_and_wait()


async def test_the_supervisors_own_errors_are_answers_not_crashes() -> None:
    """``ChildNotFound``, ``DuplicateChild``, a malformed request: answered, the supervisor runs on."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        with pytest.raises(ChildNotFound):
            await sup.terminate_child("nope")
        with pytest.raises(DuplicateChild):
            await sup.add_child(ChildSpec("w", worker))
        answer = await me.call(sup.pid, server_module.AddChild("not a spec"))  # type: ignore[arg-type]
        assert isinstance(answer.error, TypeError) and "not a spec" in str(answer.error)
        assert node.is_alive(sup.pid)
        await sup.shutdown_and_wait()


# -- structured handles -----------------------------------------------------------------------


async def test_async_with_stops_the_supervisor_and_waits_for_it() -> None:
    """``async with supervisor.start(...) as sup`` stops the supervisor (children first, in
    order) and waits for it when the block ends, also when the block raises."""
    async with Node() as node, node.process() as me:
        log: list[str] = []
        specs = [ChildSpec.worker("a", logs_init, "a", log), ChildSpec.worker("b", logs_init, "b", log)]
        async with supervisor.start(me, RestartOne(), specs) as sup:
            pid = sup.pid
            assert node.is_alive(pid)
        assert not node.is_alive(pid)
        assert log == ["init a", "init b", "stop b", "stop a"]
        with pytest.raises(RuntimeError, match="inside"):
            async with supervisor.start(me, RestartOne(), [ChildSpec("w", worker)]) as sup2:
                child = await pid_of(sup2, "w")
                raise RuntimeError("inside")
        assert not node.is_alive(sup2.pid) and not node.is_alive(child)
        assert me.mailbox_size == 0


async def test_a_cancelled_shutdown_and_wait_leaves_no_monitor_or_message() -> None:
    """Cancelled while it waits, ``shutdown_and_wait`` leaves no monitor and no ``Down``
    behind in the caller."""

    async def stubborn(p: Process) -> None:
        p.trap_exits = True
        while True:
            await p.receive()

    async with Node() as node, node.process() as me:
        spec = ChildSpec("s", stubborn, shutdown=supervisor.StopTimeout.infinity())
        sup = await supervisor.start(me, RestartOne(), [spec])
        child = await pid_of(sup, "s")
        with anyio.CancelScope() as scope:
            scope.cancel()
            await sup.shutdown_and_wait()
        assert scope.cancelled_caught
        node.exit(child, Kill())  # the supervisor was waiting on its stubborn child
        await wait_dead(me, [child, sup.pid])
        # Had the monitor stayed, its Down would be here now.
        assert me.mailbox_size == 0


async def test_cancelling_a_start_leaves_no_supervisor_behind() -> None:
    """A ``supervisor.start`` cancelled while the initial children start leaves no supervisor
    behind: it finishes starting them, then stops them in order and exits."""
    async with Node() as node, node.process() as me:
        log: list[str] = []
        specs = [ChildSpec.worker("a", logs_init, "a", log, 3), ChildSpec.worker("b", logs_init, "b", log, 3)]
        with anyio.CancelScope() as scope:
            scope.cancel()
            await supervisor.start(me, RestartOne(), specs)
        assert scope.cancelled_caught
        # The supervisor and whichever child it had spawned by now.
        await wait_dead(me, [pid for pid in node.processes() if pid != me.pid])
        assert node.process_count == 1
        assert log == ["init a", "init b", "stop b", "stop a"]
