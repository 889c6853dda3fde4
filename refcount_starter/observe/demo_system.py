"""The system that ``observe`` shows when it is given no cluster: supervisors sharing starters.

Three supervisors (``team-a``, ``team-b``, ``team-c``) share two starters. ``db``'s owner
keeps its own reference, so it lives as long as the demo; ``cache``'s owner lets go once
``team-a`` holds it, so only the supervisors keep it alive. Each ``step`` adds or deletes one
spec on ``team-b`` or ``team-c`` (the holders and keys on the page come and go), and every
few steps ``team-a``'s ``flaky`` child crashes and is restarted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs

from .. import supervisor
from ..runtime import Node, Process
from ..starter import Starter, spawn_child_starter
from ..supervisor import PERMANENT, TRANSIENT, ChildRunning, ChildSpec, RestartLimit, RestartOne

__all__ = ["DemoSystem", "demo_system", "worker"]


async def worker(p: Process) -> None:
    """A child that serves until it is stopped, and crashes when sent ``"crash"``."""
    while True:
        if await p.receive(str) == "crash":
            raise RuntimeError("crashed on purpose (the observe demo)")


@attrs.define(eq=False)
class DemoSystem:
    """The running demo: its supervisors and starters, and the churn that changes them.

    Attributes:
        root: The process that owns the starters and the supervisors.
        teams: The supervisors, ``team-a`` first.
        db: The starter whose owner keeps its reference.
        cache: The starter that only supervisors keep alive.
        steps: How many churn steps have run.
    """

    root: Process
    teams: tuple[supervisor.Supervisor, ...]
    db: Starter
    cache: Starter
    steps: int = 0

    async def step(self) -> None:
        """One change: add or delete a spec on ``team-b`` or ``team-c``; every third step,
        crash ``team-a``'s ``flaky`` child (its supervisor restarts it)."""
        # (team, starter) pairs in a fixed round: team-b db, team-c db, team-b cache, team-c cache.
        pairs = [(team, starter) for starter in (self.db, self.cache) for team in self.teams[1:]]
        team, starter = pairs[self.steps % len(pairs)]
        key = "db" if starter is self.db else "cache"
        self.steps += 1
        if await team.lookup_child(key) is None:
            await team.start_new_child(ChildSpec(key, starter.child_start, restart=TRANSIENT))
        else:
            await team.terminate_child(key)
            await team.delete_child(key)
        if self.steps % 3 == 0:
            flaky = await self.teams[0].lookup_child("flaky")
            if flaky is not None and isinstance(flaky.state, ChildRunning):
                self.root.send(flaky.state.pid, "crash")

    async def churn(self, interval: float) -> None:
        """Step every ``interval`` seconds, for ever."""
        while True:
            await self.step()
            await anyio.sleep(interval)


@asynccontextmanager
async def demo_system(node: Node) -> AsyncIterator[DemoSystem]:
    """Start the demo on ``node``; it stops with the block.

    Args:
        node: A running node.

    Yields:
        The demo, set up: ``team-a`` runs ``cache``, ``db`` and ``flaky``; ``team-b`` runs ``db``.
    """
    async with node.process(name="observe-demo") as root:
        # Generous limits: the demo crashes a child on purpose, often.
        teams = tuple(
            [
                await supervisor.start(root, RestartOne(RestartLimit(100, 10.0)), name=f"team-{letter}")
                for letter in "abc"
            ]
        )
        db = await spawn_child_starter(root, worker, name="db-starter")
        cache = await spawn_child_starter(root, worker, name="cache-starter")
        await teams[0].start_new_child(ChildSpec("cache", cache.child_start, restart=TRANSIENT))
        await teams[0].start_new_child(ChildSpec("db", db.child_start, restart=TRANSIENT))
        await teams[0].start_new_child(ChildSpec("flaky", worker, restart=PERMANENT))
        await cache.release()  # from now on only the supervisors keep ``cache`` alive
        system = DemoSystem(root, teams, db, cache)
        await system.step()
        yield system
