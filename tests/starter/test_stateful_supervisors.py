"""A Hypothesis state machine driving real supervisors and a real starter on a real node.

Supervisors join, add and delete specs that share one starter, get killed; the owner
releases or is killed. After every step the starter's liveness, its reference list and
the number of live processes match a model, and a stale add fails with ``StarterGone``.
The node runs in an event loop on another thread (an anyio blocking portal).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from refcount_starter.runtime import Call, Kill, Node, Pid, Process
from refcount_starter.starter import Starter, spawn_child_starter
from refcount_starter.supervisor import TRANSIENT, ChildSpec, RestartOne, StarterGone, Supervisor
from refcount_starter.supervisor import start as start_supervisor

T = TypeVar("T")
KEYS = ("a", "b")


async def worker(p: Process) -> None:
    """A child that runs until stopped."""
    await p.receive(type(None))


async def owner_main(p: Process, box: list[Starter]) -> None:
    """The owner: spawns the starter, then releases it when asked."""
    starter = await spawn_child_starter(p, worker)
    box.append(starter)
    async for message in p.messages():
        if isinstance(message, Call):
            await starter.release()
            p.reply(message, "released")


class StarterWithSupervisors(RuleBasedStateMachine):
    """Real supervisors sharing one starter, against a model of who holds what."""

    backend = "asyncio"
    sups = Bundle("sups")

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = start_blocking_portal(self.backend)
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self.node = Node()
        self._node_cm = self.portal.wrap_async_context_manager(self.node)
        self._node_cm.__enter__()
        box: list[Starter] = []

        async def spawn_owner() -> Pid:
            pid = self.node.spawn(owner_main, box)
            while not box:
                await anyio.wait_all_tasks_blocked()
            return pid

        self.owner = self.portal.call(spawn_owner)
        self.starter = box[0]
        # The model.
        self.owner_holds = True
        self.holds: dict[Pid, set[str]] = {}
        self.live_sups: set[Pid] = set()
        self.children: dict[tuple[Pid, str], Pid] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def run(self, fn: Callable[[Process], Awaitable[T]]) -> T:
        """Run ``fn(me)`` in a short-lived process on the node, bounded in time."""

        async def go() -> T:
            with anyio.fail_after(10):
                async with self.node.process() as me:
                    return await fn(me)

        return self.portal.call(go)

    def free_slots(self) -> list[tuple[Pid, str]]:
        return [(sup, key) for sup in sorted(self.live_sups) for key in KEYS if key not in self.holds[sup]]

    def held_slots(self) -> list[tuple[Pid, str]]:
        return [(sup, key) for sup in sorted(self.live_sups) for key in sorted(self.holds[sup])]

    @property
    def alive(self) -> bool:
        return self.owner_holds or any(self.holds.values())

    # -- rules ---------------------------------------------------------------------------------

    @initialize(target=sups)
    def first_supervisor(self) -> Pid:
        return self.new_supervisor()

    @precondition(lambda self: len(self.live_sups) < 4)
    @rule(target=sups)
    def new_supervisor(self) -> Pid:
        async def go(me: Process) -> Pid:
            return (await start_supervisor(me, RestartOne())).pid

        pid = self.run(go)
        self.live_sups.add(pid)
        self.holds[pid] = set()
        return pid

    @precondition(lambda self: self.free_slots())
    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        sup, key = data.draw(st.sampled_from(self.free_slots()), label="add")
        spec = ChildSpec(key, self.starter.child_start, restart=TRANSIENT)

        async def go(me: Process) -> Any:
            try:
                return await Supervisor(sup, me).start_new_child(spec)
            except StarterGone as exc:
                return exc

        result = self.run(go)
        if self.alive:
            assert not isinstance(result, Exception), result
            self.holds[sup].add(key)
            self.children[(sup, key)] = result.pid
        else:
            assert isinstance(result, StarterGone), f"a stale add gave {result!r}"
            assert str(self.starter.pid) in str(result)

    @precondition(lambda self: self.held_slots())
    @rule(data=st.data())
    def terminate_and_delete(self, data: st.DataObject) -> None:
        sup, key = data.draw(st.sampled_from(self.held_slots()), label="delete")

        async def go(me: Process) -> None:
            handle = Supervisor(sup, me)
            await handle.terminate_child(key)
            await handle.delete_child(key)

        self.run(go)
        self.holds[sup].discard(key)
        del self.children[(sup, key)]

    @rule(sup=sups)
    def kill_supervisor(self, sup: Pid) -> None:
        if sup not in self.live_sups:
            return
        children = [pid for (s, _), pid in self.children.items() if s == sup]

        async def go(me: Process) -> None:
            me.exit(sup, Kill())
            for pid in (sup, *children):
                await self.node.wait(pid)

        self.run(go)
        self.live_sups.discard(sup)
        self.holds[sup] = set()
        self.children = {k: v for k, v in self.children.items() if k[0] != sup}

    # Mostly once someone else holds it, so that the runs go on past the first release.
    @precondition(lambda self: self.owner_holds and any(self.holds.values()))
    @rule(kill=st.booleans())
    def owner_lets_go(self, kill: bool) -> None:
        async def go(me: Process) -> None:
            if kill:
                me.exit(self.owner, Kill())
                await self.node.wait(self.owner)
            else:
                assert await me.call(self.owner, "release") == "released"

        self.run(go)
        self.owner_holds = False

    # -- checks --------------------------------------------------------------------------------

    @invariant()
    def starter_matches_the_model(self) -> None:
        async def go(me: Process) -> tuple[Any, int]:
            if self.alive:
                stats = await self.starter.statistics(via=me)
                return stats, self.node.process_count
            await self.node.wait(self.starter.pid)
            return None, self.node.process_count

        stats, count = self.run(go)
        expected = {(sup, key) for sup, keys in self.holds.items() for key in keys}
        if self.alive:
            assert set(stats.references) == expected
            assert stats.owner_holds == self.owner_holds
            assert stats.spurious_releases == 0
        owner_alive = self.node.is_alive(self.owner)
        # me + owner + starter + supervisors + children
        assert count == 1 + owner_alive + self.alive + len(self.live_sups) + len(self.children)

    def teardown(self) -> None:
        try:
            self._node_cm.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)


SETTINGS = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_real_supervisors_and_starter_match_the_model(backend: str) -> None:
    """Random adds, deletes, supervisor kills and owner releases keep references, liveness and process counts right."""
    machine = type("Machine", (StarterWithSupervisors,), {"backend": backend})
    machine.TestCase.settings = SETTINGS
    machine.TestCase().runTest()
