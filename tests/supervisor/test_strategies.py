"""Strategies, branch modes, restart policies, intensity and restart_delay, observed through
the event stream."""

from __future__ import annotations

from typing import Any

import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import Down, Kill, Node, Normal, Pid, Process, Ref, Shutdown
from refcount_starter.supervisor import (
    INTRINSIC,
    LEFT_TO_RIGHT,
    PERMANENT,
    RIGHT_TO_LEFT,
    TEMPORARY,
    TRANSIENT,
    ChildRestarting,
    ChildSpec,
    ChildStart,
    ChildStopped,
    LocalStart,
    ReachedMaxRestartIntensity,
    RestartAll,
    RestartEach,
    RestartInOrder,
    RestartLeft,
    RestartLimit,
    RestartOne,
    RestartPolicy,
    RestartRevOrder,
    RestartRight,
    SupervisedChildDied,
    SupervisedChildRestarting,
    SupervisedChildStarted,
    SupervisedChildStartFailure,
    SupervisedChildStopped,
    Supervisor,
    SupervisorBranchRestarted,
    SupervisorIntensityReached,
    SupervisorShutdown,
)

from .helpers import WAIT, RecordingStart, drain, next_event, pid_of, worker

pytestmark = pytest.mark.anyio

MANY = RestartLimit(100, 60.0)


async def pids(sup: Supervisor) -> dict[str, Any]:
    return {c.key: getattr(c.state, "pid", None) for c in await sup.list_children()}


async def collect_branch(me: Process) -> list[tuple[str, str]]:
    """The stops and starts of one branch restart, in order, up to SupervisorBranchRestarted."""
    steps: list[tuple[str, str]] = []
    while True:
        event = await me.receive(timeout=WAIT)
        if isinstance(event, SupervisedChildStopped):
            steps.append(("stop", event.key))
        elif isinstance(event, SupervisedChildStarted):
            steps.append(("start", event.key))
        elif isinstance(event, SupervisorBranchRestarted):
            return steps


async def test_restart_one_restarts_only_the_failed_child() -> None:
    """RestartOne restarts the child that exited and touches no sibling."""
    async with Node() as node, node.process() as me:
        specs = [ChildSpec(k, worker) for k in "abc"]
        sup = await supervisor.start(me, RestartOne(MANY), specs)
        await sup.subscribe()
        before = await pids(sup)
        me.send(before["b"], "crash")
        started = await next_event(me, SupervisedChildStarted, key="b")
        after = await pids(sup)
        assert after["a"] == before["a"] and after["c"] == before["c"]
        assert after["b"] == started.pid != before["b"]
        await sup.shutdown_and_wait()


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (RestartAll(MANY), "abcd"),
        (RestartLeft(MANY), "abc"),
        (RestartRight(MANY), "cd"),
    ],
)
async def test_branch_strategies_restart_their_branch(strategy: Any, restarted: str) -> None:
    """With [a,b,c,d] and c failing: All restarts abcd, Left abc, Right cd."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, strategy, [ChildSpec(k, worker) for k in "abcd"])
        await sup.subscribe()
        before = await pids(sup)
        me.send(before["c"], "crash")
        event = await next_event(me, SupervisorBranchRestarted, key="c")
        after = await pids(sup)
        assert set(event.keys) == set(restarted)
        for key in "abcd":
            assert (after[key] != before[key]) == (key in restarted), key
        statistics = await sup.statistics()
        assert statistics.total_restarts == 1 and statistics.restarts_in_window == 1
        # A branch restart is counted once, for the child whose exit caused it.
        assert statistics.restarts_by_key == (("a", 0), ("b", 0), ("c", 1), ("d", 0))
        await sup.shutdown_and_wait()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            RestartEach(LEFT_TO_RIGHT),
            [("stop", "a"), ("start", "a"), ("start", "b"), ("stop", "c"), ("start", "c")],
        ),
        (
            RestartEach(RIGHT_TO_LEFT),
            [("stop", "c"), ("start", "c"), ("start", "b"), ("stop", "a"), ("start", "a")],
        ),
        (
            RestartInOrder(LEFT_TO_RIGHT),
            [("stop", "a"), ("stop", "c"), ("start", "a"), ("start", "b"), ("start", "c")],
        ),
        (
            RestartInOrder(RIGHT_TO_LEFT),
            [("stop", "c"), ("stop", "a"), ("start", "c"), ("start", "b"), ("start", "a")],
        ),
        (
            RestartRevOrder(LEFT_TO_RIGHT),
            [("stop", "a"), ("stop", "c"), ("start", "c"), ("start", "b"), ("start", "a")],
        ),
        (
            RestartRevOrder(RIGHT_TO_LEFT),
            [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")],
        ),
    ],
)
async def test_branch_modes_order(mode: Any, expected: list[tuple[str, str]]) -> None:
    """Each branch mode stops and starts the branch in its documented order."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartAll(MANY, mode), [ChildSpec(k, worker) for k in "abc"])
        await sup.subscribe()
        me.send(await pid_of(sup, "b"), "crash")
        assert await collect_branch(me) == expected
        await sup.shutdown_and_wait()


async def test_branch_drops_temporary_siblings() -> None:
    """A running temporary sibling in a branch is stopped and dropped, not restarted."""
    async with Node() as node, node.process() as me:
        temp = RecordingStart()
        specs = [ChildSpec("a", worker), ChildSpec("t", temp, restart=TEMPORARY)]
        sup = await supervisor.start(me, RestartAll(MANY), specs)
        await sup.subscribe()
        me.send(await pid_of(sup, "a"), "crash")
        event = await next_event(me, SupervisorBranchRestarted)
        assert event.keys == ("a",)
        assert [c.key for c in await sup.list_children()] == ["a"]
        assert temp.count("release") == 1
        await sup.shutdown_and_wait()


async def test_branch_restarts_non_running_siblings() -> None:
    """As OTP, a branch restart also starts permanent siblings that were not running."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartAll(MANY), [ChildSpec(k, worker) for k in "ab"])
        await sup.subscribe()
        await sup.terminate_child("b")
        me.send(await pid_of(sup, "a"), "crash")
        event = await next_event(me, SupervisorBranchRestarted)
        assert set(event.keys) == {"a", "b"}
        assert all(pid is not None for pid in (await pids(sup)).values())
        await sup.shutdown_and_wait()


def policy_cases() -> list[Any]:
    cases = []
    for strategy in (RestartOne(MANY), RestartAll(MANY)):
        name = type(strategy).__name__
        cases += [
            pytest.param(strategy, PERMANENT, "exit", "restarted", id=f"{name}-permanent-normal"),
            pytest.param(strategy, PERMANENT, "crash", "restarted", id=f"{name}-permanent-crash"),
            pytest.param(strategy, TRANSIENT, "exit", "stopped", id=f"{name}-transient-normal"),
            pytest.param(strategy, TRANSIENT, "shutdown", "stopped", id=f"{name}-transient-shutdown"),
            pytest.param(strategy, TRANSIENT, "crash", "restarted", id=f"{name}-transient-crash"),
            pytest.param(strategy, TEMPORARY, "exit", "dropped", id=f"{name}-temporary-normal"),
            pytest.param(strategy, TEMPORARY, "crash", "dropped", id=f"{name}-temporary-crash"),
            pytest.param(strategy, INTRINSIC, "exit", "supervisor-exits", id=f"{name}-intrinsic-normal"),
            pytest.param(
                strategy, INTRINSIC, "shutdown", "supervisor-exits", id=f"{name}-intrinsic-shutdown"
            ),
            pytest.param(strategy, INTRINSIC, "crash", "restarted", id=f"{name}-intrinsic-crash"),
        ]
    return cases


@pytest.mark.parametrize(("strategy", "policy", "how", "outcome"), policy_cases())
async def test_restart_policies(strategy: Any, policy: RestartPolicy, how: str, outcome: str) -> None:
    """Restart policies, with Normal and Shutdown(...) as normal exits for every strategy."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, strategy, [ChildSpec("w", worker, restart=policy), ChildSpec("o", worker)]
        )
        await sup.subscribe()
        watch = me.monitor(sup.pid)
        me.send(await pid_of(sup, "w"), how)
        await next_event(me, SupervisedChildDied, key="w")
        if outcome == "supervisor-exits":
            down = await me.receive(Down, where=lambda m: m.ref == watch, timeout=WAIT)
            assert down.reason == Normal()
            return
        if outcome == "restarted":
            await next_event(me, SupervisedChildStarted, key="w")
        child = await sup.lookup_child("w")
        if outcome == "stopped":
            assert child is not None and child.state == ChildStopped()
            assert (await sup.statistics()).total_restarts == 0
        elif outcome == "dropped":
            assert child is None
        assert node.is_alive(sup.pid)
        await sup.shutdown_and_wait()


async def test_intensity_exceeded_stops_children_and_exits() -> None:
    """One restart more than max_restarts in the window: children stopped, exit ReachedMaxRestartIntensity."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, RestartOne(RestartLimit(2, 60.0)), [ChildSpec(k, worker) for k in "ab"]
        )
        await sup.subscribe()
        watch = me.monitor(sup.pid)
        b = await pid_of(sup, "b")
        for _ in range(2):
            me.send(await pid_of(sup, "a"), "crash")
            await next_event(me, SupervisedChildStarted, key="a")
        me.send(await pid_of(sup, "a"), "crash")
        reached = await next_event(me, SupervisorIntensityReached, key="a")
        stopped = await next_event(me, SupervisedChildStopped, key="b")
        assert stopped.pid == b
        shutdown = await next_event(me, SupervisorShutdown)
        down = await me.receive(Down, where=lambda m: m.ref == watch, timeout=WAIT)
        assert isinstance(down.reason, ReachedMaxRestartIntensity)
        assert down.reason == shutdown.reason == ReachedMaxRestartIntensity("a", reached.reason)
        assert not down.reason.normal
        assert not node.is_alive(b)


async def test_intensity_zero_first_restart_is_fatal() -> None:
    """max_restarts=0: the first restart stops the supervisor."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(RestartLimit(0, 5.0)), [ChildSpec("a", worker)])
        watch = me.monitor(sup.pid)
        me.exit(await pid_of(sup, "a"), Kill())
        down = await me.receive(Down, where=lambda m: m.ref == watch, timeout=WAIT)
        assert isinstance(down.reason, ReachedMaxRestartIntensity)


async def test_failed_restart_retries_count_towards_intensity() -> None:
    """A restart whose start fails is retried by a message to itself, and each retry counts."""
    async with Node() as node, node.process() as me:
        start = RecordingStart()
        start.fail_starts_after = 1
        sup = await supervisor.start(me, RestartOne(RestartLimit(3, 60.0)), [ChildSpec("a", start)])
        await sup.subscribe()
        watch = me.monitor(sup.pid)
        me.send(await pid_of(sup, "a"), "crash")
        down = await me.receive(Down, where=lambda m: m.ref == watch, timeout=WAIT)
        assert isinstance(down.reason, ReachedMaxRestartIntensity)
        failures = [m for m in drain(me) if isinstance(m, SupervisedChildStartFailure)]
        assert len(failures) == 3
        assert start.starts == 4


async def test_branch_restart_counts_once() -> None:
    """A branch restart of several children counts as one restart."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, RestartAll(RestartLimit(1, 60.0)), [ChildSpec(k, worker) for k in "abc"]
        )
        await sup.subscribe()
        watch = me.monitor(sup.pid)
        me.send(await pid_of(sup, "a"), "crash")
        await next_event(me, SupervisorBranchRestarted)
        assert (await sup.statistics()).total_restarts == 1
        me.send(await pid_of(sup, "b"), "crash")
        down = await me.receive(Down, where=lambda m: m.ref == watch, timeout=WAIT)
        assert down.reason == ReachedMaxRestartIntensity(
            "b", (await next_event(me, SupervisorIntensityReached)).reason
        )


async def test_branch_start_failure_retries_the_branch() -> None:
    """A start failing inside a branch restart leaves the child restarting and retries the branch."""
    async with Node() as node, node.process() as me:
        flaky = RecordingStart()
        flaky.fail_starts_after = 1
        specs = [ChildSpec("a", worker), ChildSpec("b", flaky)]
        sup = await supervisor.start(me, RestartAll(RestartLimit(3, 60.0), RestartInOrder()), specs)
        await sup.subscribe()
        watch = me.monitor(sup.pid)
        me.send(await pid_of(sup, "a"), "crash")
        await next_event(me, SupervisedChildStartFailure, key="b")
        down = await me.receive(Down, where=lambda m: m.ref == watch, timeout=WAIT)
        assert isinstance(down.reason, ReachedMaxRestartIntensity)
        assert flaky.starts == 4


async def test_restart_delay_waits_in_restarting() -> None:
    """With restart_delay, a restart over the limit waits in ChildRestarting, then retries."""
    async with Node() as node, node.process() as me:
        spec = ChildSpec("a", worker, restart_delay=0.6)
        sup = await supervisor.start(me, RestartOne(RestartLimit(1, 0.5)), [spec])
        await sup.subscribe()
        me.send(await pid_of(sup, "a"), "crash")
        await next_event(me, SupervisedChildDied, key="a")
        first = (await next_event(me, SupervisedChildStarted, key="a")).pid
        drain(me)
        me.send(first, "crash")
        restarting = await next_event(me, SupervisedChildRestarting, key="a")
        assert restarting.pid == first
        child = await sup.lookup_child("a")
        assert child is not None and child.state == ChildRestarting(first)
        started = await next_event(me, SupervisedChildStarted, key="a")
        assert await pid_of(sup, "a") == started.pid != first
        await sup.shutdown_and_wait()


async def test_restart_delay_cancelled_by_terminate() -> None:
    """terminate_child of a restarting child cancels the pending restart."""
    async with Node() as node, node.process() as me:
        spec = ChildSpec("a", worker, restart_delay=60.0)
        sup = await supervisor.start(me, RestartOne(RestartLimit(0, 1.0)), [spec])
        await sup.subscribe()
        me.send(await pid_of(sup, "a"), "crash")
        await next_event(me, SupervisedChildRestarting, key="a")
        await sup.terminate_child("a")
        child = await sup.lookup_child("a")
        assert child is not None and child.state == ChildStopped()
        await sup.shutdown_and_wait()


async def test_no_double_restart_from_stale_down() -> None:
    """A child that is stopped and restarted by hand is never restarted twice by a stale Down."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(MANY), [ChildSpec("a", worker)])
        await sup.subscribe()
        for _ in range(5):
            pid = await pid_of(sup, "a")
            me.send(pid, "shutdown")  # it exits by itself while we terminate it
            await sup.terminate_child("a")
            await sup.start_child("a")
        drain(me)
        stats = await sup.statistics()
        assert stats.running == 1
        # Each self-exit raced with a terminate: at most one restart per cycle, never two.
        assert stats.total_restarts <= 5
        assert len([p for p in node.processes() if p not in (me.pid, sup.pid)]) == 1
        await sup.shutdown_and_wait()


async def test_shutdown_reason_from_child_exit_is_normal_for_branch() -> None:
    """A transient child exiting Shutdown(...) under RestartAll stays stopped and no branch restarts."""
    async with Node() as node, node.process() as me:
        specs = [ChildSpec("a", worker, restart=TRANSIENT), ChildSpec("b", worker)]
        sup = await supervisor.start(me, RestartAll(MANY), specs)
        await sup.subscribe()
        b = await pid_of(sup, "b")
        me.send(await pid_of(sup, "a"), "shutdown")
        died = await next_event(me, SupervisedChildDied, key="a")
        assert died.reason == Shutdown("asked")
        assert await pid_of(sup, "b") == b
        assert (await sup.statistics()).total_restarts == 0
        await sup.shutdown_and_wait()


class FailsOnce(ChildStart):
    """A local start whose ``fail_at``-th start raises (once); the others start ``worker``."""

    def __init__(self, fail_at: int) -> None:
        self.inner = LocalStart(worker)
        self.fail_at = fail_at
        self.starts = 0

    async def start(self, sup: Process, key: str, lease: Any) -> tuple[Pid, Ref]:
        self.starts += 1
        if self.starts == self.fail_at:
            raise RuntimeError(f"start {self.starts} refused")
        return await self.inner.start(sup, key, lease)


@pytest.mark.parametrize(
    ("strategy", "failing"),
    [
        (RestartLeft(MANY, RestartInOrder(LEFT_TO_RIGHT)), "c"),
        (RestartLeft(MANY, RestartEach(LEFT_TO_RIGHT)), "c"),
        (RestartRight(MANY, RestartInOrder(RIGHT_TO_LEFT)), "a"),
        (RestartRight(MANY, RestartRevOrder(LEFT_TO_RIGHT)), "a"),
    ],
)
async def test_failed_start_in_a_branch_retries_the_whole_branch(strategy: Any, failing: str) -> None:
    """Guards against a retried branch restart that leaves part of the branch stopped.

    When a start fails midway through a branch restart, the retry must restart the original
    branch (anchored at the child that exited), not only the branch of the child whose start
    failed: under RestartLeft or RestartRight that smaller branch can miss children that were
    stopped and not yet started again.
    """
    async with Node() as node, node.process() as me:
        specs = [ChildSpec("a", worker), ChildSpec("b", FailsOnce(2)), ChildSpec("c", worker)]
        sup = await supervisor.start(me, strategy, specs)
        await sup.subscribe()
        before = await pids(sup)
        me.send(before[failing], "crash")
        await next_event(me, SupervisedChildStartFailure, key="b")
        await next_event(me, SupervisorBranchRestarted)
        after = await pids(sup)
        assert all(after[key] is not None and after[key] != before[key] for key in "abc"), after
        await sup.shutdown_and_wait()
