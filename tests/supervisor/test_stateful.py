"""A Hypothesis state machine driving a real supervisor on a node.

Random add / start / terminate / delete / restart / crash / normal exit / kill steps; after
every step ``list_children``, ``statistics`` and the node's live processes must agree with a
model and with each other, and at the end nothing may be left running.

The node runs in a blocking portal's event loop (one per example), so that the rules can be
plain synchronous methods; each rule is one ``portal.call``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from refcount_starter import supervisor
from refcount_starter.runtime import Kill, Node, Pid, Process
from refcount_starter.supervisor import (
    PERMANENT,
    TEMPORARY,
    TRANSIENT,
    AlreadyRunning,
    ChildNotFound,
    ChildNotStopped,
    ChildRunning,
    ChildSpec,
    ChildStopped,
    DuplicateChild,
    RestartLimit,
    RestartOne,
    RestartPolicy,
    SupervisedChildDied,
    SupervisedChildStarted,
    Supervisor,
)

from .helpers import drain, next_event, worker

T = TypeVar("T")

KEYS = st.sampled_from(["a", "b", "c", "d"])
POLICIES = st.sampled_from([PERMANENT, TRANSIENT, TEMPORARY])


class SupervisorMachine(RuleBasedStateMachine):
    backend = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self.stack = contextlib.ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal(self.backend))
        self.node: Node = self.stack.enter_context(self.portal.wrap_async_context_manager(Node()))
        self.me: Process = self.stack.enter_context(
            self.portal.wrap_async_context_manager(self.node.process())
        )
        self.sup: Supervisor | None = None
        # The model: key -> (policy, running?), in insertion order.
        self.model: dict[str, tuple[RestartPolicy, bool]] = {}
        self.restarts = 0

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        return self.portal.call(fn)

    @initialize()
    def start_supervisor(self) -> None:
        async def go() -> None:
            self.sup = await supervisor.start(self.me, RestartOne(RestartLimit(10_000, 1.0)))
            await self.sup.subscribe()

        self.run(go)

    def handle(self) -> Supervisor:
        assert self.sup is not None
        return self.sup

    def expect(self, op: Callable[[], Awaitable[Any]], error: type[Exception] | None) -> None:
        async def go() -> None:
            if error is None:
                await op()
            else:
                with pytest.raises(error):
                    await op()
            drain(self.me)

        self.run(go)

    @rule(key=KEYS, policy=POLICIES, start=st.booleans())
    def add(self, key: str, policy: RestartPolicy, start: bool) -> None:
        spec = ChildSpec(key, worker, restart=policy)
        sup = self.handle()
        op = sup.start_new_child if start else sup.add_child
        if key in self.model:
            self.expect(lambda: op(spec), DuplicateChild)
            return
        self.expect(lambda: op(spec), None)
        self.model[key] = (policy, start)

    @rule(key=KEYS, again=st.booleans())
    def start_child(self, key: str, again: bool) -> None:
        sup = self.handle()
        op = sup.restart_child if again else sup.start_child
        if key not in self.model:
            self.expect(lambda: op(key), ChildNotFound)
        elif self.model[key][1]:
            self.expect(lambda: op(key), AlreadyRunning)
        else:
            self.expect(lambda: op(key), None)
            self.model[key] = (self.model[key][0], True)

    @rule(key=KEYS)
    def terminate(self, key: str) -> None:
        if key not in self.model:
            self.expect(lambda: self.handle().terminate_child(key), ChildNotFound)
            return
        self.expect(lambda: self.handle().terminate_child(key), None)
        policy, _ = self.model[key]
        if policy is TEMPORARY:
            del self.model[key]
        else:
            self.model[key] = (policy, False)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if key not in self.model:
            self.expect(lambda: self.handle().delete_child(key), ChildNotFound)
        elif self.model[key][1]:
            self.expect(lambda: self.handle().delete_child(key), ChildNotStopped)
        else:
            self.expect(lambda: self.handle().delete_child(key), None)
            del self.model[key]

    @rule(key=KEYS, how=st.sampled_from(["crash", "exit", "kill"]))
    def child_exits(self, key: str, how: str) -> None:
        if key not in self.model or not self.model[key][1]:
            return
        policy, _ = self.model[key]
        normal = how == "exit"
        restarted = policy is PERMANENT or (policy is TRANSIENT and not normal)

        async def go() -> None:
            sup = self.handle()
            child = await sup.lookup_child(key)
            assert child is not None and isinstance(child.state, ChildRunning)
            pid = child.state.pid
            if how == "kill":
                self.me.exit(pid, Kill())
            else:
                self.me.send(pid, how)
            await next_event(self.me, SupervisedChildDied, key=key, pid=pid)
            if restarted:
                await next_event(self.me, SupervisedChildStarted, key=key)
            drain(self.me)

        self.run(go)
        if restarted:
            self.restarts += 1
        elif policy is TEMPORARY:
            del self.model[key]
        else:
            self.model[key] = (policy, False)

    @invariant()
    def agrees(self) -> None:
        if self.sup is None:
            return

        async def go() -> tuple[list[Any], Any, list[Pid]]:
            sup = self.handle()
            return await sup.list_children(), await sup.statistics(), self.node.processes()

        children, stats, live = self.run(go)
        assert [c.key for c in children] == list(self.model)
        running = {c.key: c.state.pid for c in children if isinstance(c.state, ChildRunning)}
        for child in children:
            if not self.model[child.key][1]:
                assert child.state == ChildStopped(), child
        assert set(running) == {k for k, (_, up) in self.model.items() if up}
        assert stats.defined == len(self.model)
        assert stats.running == stats.running_workers == len(running)
        assert stats.workers == len(self.model) and stats.supervisors == 0
        assert stats.total_restarts == self.restarts
        assert set(live) == {self.me.pid, self.handle().pid, *running.values()}

    def teardown(self) -> None:
        try:
            if self.sup is not None:
                sup = self.sup

                async def stop() -> list[Pid]:
                    await sup.shutdown_and_wait()
                    return self.node.processes()

                assert self.run(stop) == [self.me.pid]
        finally:
            self.stack.close()


class AsyncioMachine(SupervisorMachine):
    backend = "asyncio"


class TrioMachine(SupervisorMachine):
    backend = "trio"


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestSupervisorAsyncio = AsyncioMachine.TestCase
TestSupervisorAsyncio.settings = SETTINGS
TestSupervisorTrio = TrioMachine.TestCase
TestSupervisorTrio.settings = SETTINGS
