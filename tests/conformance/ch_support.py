"""Children, specs and helpers for the port of Cloud Haskell's supervisor test suite
(``distributed-process-supervisor``, ``tests/TestSupervisor.hs``).

The children are registered in the remote table and started through ``RunClosure``, the
nearest equivalent of the original's ``$(mkStaticClosure 'fn)``. The helpers mirror the
original's (``verifyChildWasRestarted``, ``checkStartupOrder``, ...), but wait on ``Down``s and
supervisor events where the original slept.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import anyio

from refcount_starter import supervisor
from refcount_starter.remote.closures import default_name, remotable
from refcount_starter.runtime import Down, ExitReason, ExitSignal, Pid, Process, Shutdown
from refcount_starter.supervisor import (
    INTRINSIC,
    PERMANENT,
    TEMPORARY,
    TRANSIENT,
    Child,
    ChildInitIgnore,
    ChildRunning,
    ChildSpec,
    ChildStart,
    ChildStopped,
    ParallelShutdown,
    RestartLimit,
    RestartPolicy,
    RestartStrategy,
    RunClosure,
    ShutdownMode,
    StopImmediately,
    SupervisedChildDied,
    SupervisedChildRestarting,
    SupervisedChildStarted,
    SupervisedChildStopped,
    Supervisor,
    SupervisorBranchRestarted,
    SupervisorEvent,
)

#: How long a test waits for something it expects before it fails.
WAIT = 5.0

#: Cloud Haskell's ``defaultLimits``: one restart within one second.
DEFAULT_LIMITS = RestartLimit(1, 1.0)

#: What ``testProcessStop`` sends: the child returns (exits ``Normal``).
STOP = "test-process-stop"


# -- the original's remotable children ---------------------------------------------------------


@remotable
async def block_indefinitely(p: Process) -> None:
    """``blockIndefinitely``: waits until told to stop, then returns normally."""
    await p.receive(where=lambda message: message == STOP)


@remotable
async def no_op(p: Process) -> None:
    """``noOp``: returns at once."""


@remotable
async def exit_ignore(p: Process) -> None:
    """``exitIgnore``: asks its supervisor to ignore it."""
    raise ChildInitIgnore()


@remotable
async def sleepy(p: Process) -> None:
    """``sleepy``: catches every exit signal and carries on; only a kill stops it."""
    p.trap_exits = True
    while True:
        await p.receive()


@remotable
async def obedient(p: Process) -> None:
    """``obedient``: idles; a ``Shutdown`` exit signal stops it."""
    await p.receive(where=lambda message: False)


@remotable
async def notify_me(p: Process, me: Pid) -> None:
    """``notifyMe``: sends its pid to ``me``, then behaves as ``obedient``."""
    p.send(me, p.pid)
    await obedient(p)


@remotable
async def run_core(p: Process, test: Pid) -> None:
    """``runCore``: on its supervisor's ``Shutdown`` it tells ``test`` whether "app" still runs.

    It traps exits, so the exit signal of a linked "app" that stops first is only a message.
    """
    p.trap_exits = True
    while True:
        signal = await p.receive(ExitSignal)
        if signal.sender == p.parent and signal.reason == Shutdown():
            p.send(test, ("core-stopping", p.whereis("app")))
            return


@remotable
async def run_app(p: Process, test: Pid) -> None:
    """``runApp``: links to "core" (if core exits first, app goes too), then tells ``test``."""
    core = p.whereis("core")
    assert core is not None
    p.link(core)
    p.send(test, "app-ready")
    await obedient(p)


def closure(fn: Any, *args: Any) -> RunClosure:
    """A ``RunClosure`` for one of the remotable children above."""
    return RunClosure(default_name(fn), args)


# -- the original's specs -----------------------------------------------------------------------


def default_worker(start: ChildStart, key: str, restart: RestartPolicy = TEMPORARY) -> ChildSpec:
    """``defaultWorker``: a worker stopped with ``StopImmediately``."""
    return ChildSpec(key, start, restart=restart, shutdown=StopImmediately())


def temp_worker(start: ChildStart) -> ChildSpec:
    return default_worker(start, "temp-worker", TEMPORARY)


def transient_worker(start: ChildStart) -> ChildSpec:
    return default_worker(start, "transient-worker", TRANSIENT)


def intrinsic_worker(start: ChildStart) -> ChildSpec:
    return default_worker(start, "intrinsic-worker", INTRINSIC)


def perm_child(start: ChildStart, key: str = "perm-child") -> ChildSpec:
    return default_worker(start, key, PERMANENT)


# -- the original's test context and verifications -------------------------------------------


@contextlib.asynccontextmanager
async def with_supervisor(
    me: Process,
    strategy: RestartStrategy,
    children: Iterable[ChildSpec] = (),
    shutdown: ShutdownMode | None = None,
) -> AsyncIterator[Supervisor]:
    """``runInTestContext``: a supervisor (``ParallelShutdown`` unless told), shut down after."""
    sup = await supervisor.start(
        me, strategy, children, shutdown=ParallelShutdown() if shutdown is None else shutdown
    )
    try:
        yield sup
    finally:
        with anyio.fail_after(WAIT):
            await sup.shutdown_and_wait()


def resolve(state: object) -> Pid:
    """``resolve``: the pid of a running child."""
    assert isinstance(state, ChildRunning), state
    return state.pid


async def wait_for_exit(me: Process, pid: Pid) -> ExitReason:
    """``waitForExit``: monitor ``pid`` and wait for its ``Down``."""
    return await wait_for_down(me, me.monitor(pid))


async def wait_for_down(me: Process, ref: Any) -> ExitReason:
    """``waitForDown``."""
    down = await me.receive(Down, where=lambda m: m.ref == ref, timeout=WAIT)
    return down.reason


# Once a child has exited, its Down is already in the supervisor's mailbox (a process's
# watchers are told as it exits), so a call made after ``wait_for_exit`` is answered after
# the supervisor has handled that exit: the original's sleeps are not needed.


async def lookup(sup: Supervisor, key: str) -> Child:
    found = await sup.lookup_child(key)
    assert found is not None, f"no child {key!r}"
    return found


async def verify_child_was_restarted(me: Process, sup: Supervisor, key: str, pid: Pid) -> Pid:
    """``verifyChildWasRestarted``: ``pid`` exited and ``key`` runs as another pid."""
    await wait_for_exit(me, pid)
    new = resolve((await lookup(sup, key)).state)
    assert new != pid
    return new


async def verify_child_was_not_restarted(me: Process, sup: Supervisor, key: str, pid: Pid) -> None:
    """``verifyChildWasNotRestarted``: ``pid`` exited and ``key`` is ``ChildStopped``."""
    await wait_for_exit(me, pid)
    assert (await lookup(sup, key)).state == ChildStopped()


async def verify_temp_child_was_removed(me: Process, sup: Supervisor, pid: Pid) -> None:
    """``verifyTempChildWasRemoved``: ``pid`` exited and "temp-worker" is gone."""
    await wait_for_exit(me, pid)
    assert await sup.lookup_child("temp-worker") is None


# -- branch restarts, observed through the event stream (the original's ``MxSupervisor``) -----


async def start_children(sup: Supervisor, start: ChildStart, size: int) -> list[Child]:
    """Add permanent children "1" .. "size" one by one with ``start_new_child``."""
    for i in range(1, size + 1):
        resolve(await sup.start_new_child(perm_child(start, str(i))))
    return await sup.list_children()


async def check_startup_order(me: Process, children: Sequence[Child]) -> None:
    """``checkStartupOrder``: one ``SupervisedChildStarted`` per child, in order."""
    for child in children:
        event = await me.receive(SupervisedChildStarted, timeout=WAIT)
        assert (event.key, event.pid) == (child.key, resolve(child.state))


async def branch_events(me: Process, failed: str) -> list[tuple[str, str, Pid | None]]:
    """Every event up to the ``SupervisorBranchRestarted`` for ``failed``, as (kind, key, pid)."""
    names = {
        SupervisedChildDied: "died",
        SupervisedChildRestarting: "restarting",
        SupervisedChildStopped: "stopped",
        SupervisedChildStarted: "started",
    }
    seen: list[tuple[str, str, Pid | None]] = []
    while True:
        event = await me.receive(SupervisorEvent, timeout=WAIT)
        if isinstance(event, SupervisorBranchRestarted):
            assert event.key == failed
            return seen
        name = names.get(type(event))
        assert name is not None, f"unexpected event during a branch restart: {event!r}"
        seen.append((name, event.key, event.pid))


def pids_of(children: Iterable[Child]) -> dict[str, Pid]:
    return {child.key: resolve(child.state) for child in children}


def sequential_events(
    order: Sequence[str], failed: str, old: dict[str, Pid], new: dict[str, Pid]
) -> list[tuple[str, str, Pid | None]]:
    """``verifySeqStartOrder`` (``RestartEach``): per child in ``order``, restarting, stopped
    (not for the child that died), started."""
    expected: list[tuple[str, str, Pid | None]] = [("died", failed, old[failed])]
    for key in order:
        expected.append(("restarting", key, old[key]))
        if key != failed:
            expected.append(("stopped", key, old[key]))
        expected.append(("started", key, new[key]))
    return expected


def stop_start_events(
    stop_order: Sequence[str],
    start_order: Sequence[str],
    failed: str,
    old: dict[str, Pid],
    new: dict[str, Pid],
) -> list[tuple[str, str, Pid | None]]:
    """``verifyStopStartOrder`` (``RestartInOrder``/``RestartRevOrder``): every child stopped
    in ``stop_order`` first, then every child started in ``start_order``."""
    expected: list[tuple[str, str, Pid | None]] = [("died", failed, old[failed])]
    for key in stop_order:
        expected.append(("restarting", key, old[key]))
        if key != failed:
            expected.append(("stopped", key, old[key]))
    expected.extend(("started", key, new[key]) for key in start_order)
    return expected


def drain(me: Process) -> list[Any]:
    """Every message already in ``me``'s mailbox, without waiting."""
    taken = []
    taken.extend(me.flush())
    return taken
