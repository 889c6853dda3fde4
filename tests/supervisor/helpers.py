"""Child functions and small helpers shared by the supervisor tests."""

from __future__ import annotations

from typing import Any, TypeVar

import anyio

from refcount_starter.runtime import ExitSignal, Pid, Process, ProcessExit, Ref, Shutdown
from refcount_starter.supervisor import (
    ChildKey,
    ChildRunning,
    ChildStart,
    LocalStart,
    StartFailureDied,
    Supervisor,
)

E = TypeVar("E")

#: How long a test waits for an event before it fails (never a sleep standing in for sync).
WAIT = 5.0


async def worker(p: Process) -> None:
    """Idle until told: "crash" raises, "exit" returns, "shutdown" exits Shutdown("asked")."""
    while True:
        message = await p.receive()
        if message == "crash":
            raise RuntimeError("boom")
        if message == "exit":
            return
        if message == "shutdown":
            raise ProcessExit(Shutdown("asked"))


async def recorder(p: Process, key: str, log: list[str]) -> None:
    """Traps exits; on an exit signal appends ``key`` to ``log`` and returns."""
    p.trap_exits = True
    await p.receive(ExitSignal)
    log.append(key)


async def stubborn(p: Process) -> None:
    """Traps exits and ignores them: only a Kill stops it."""
    p.trap_exits = True
    while True:
        await p.receive()


async def pid_of(sup: Supervisor, key: str) -> Pid:
    child = await sup.lookup_child(key)
    assert child is not None, key
    assert isinstance(child.state, ChildRunning), child
    return child.state.pid


async def next_event(me: Process, kind: type[E], **fields: Any) -> E:
    """The next event of ``kind`` whose fields equal ``fields``."""

    def matches(event: Any) -> bool:
        return all(getattr(event, name) == value for name, value in fields.items())

    return await me.receive(kind, where=matches, timeout=WAIT)


def drain(me: Process) -> list[Any]:
    """Take every message waiting in ``me``'s mailbox, without waiting."""
    taken = []
    taken.extend(me.flush())
    return taken


class RecordingStart(ChildStart):
    """A LocalStart that records acquire/start/release calls and can be told to fail."""

    def __init__(self, fn: Any = worker, *, fail_acquire: BaseException | None = None) -> None:
        self.inner = LocalStart(fn)
        self.calls: list[tuple[str, ChildKey]] = []
        self.fail_acquire = fail_acquire
        self.fail_starts_after: int | None = None
        self.starts = 0
        self.leases = 0

    async def acquire(self, sup: Process, key: ChildKey) -> Any:
        self.calls.append(("acquire", key))
        if self.fail_acquire is not None:
            raise self.fail_acquire
        self.leases += 1
        return ("lease", self.leases)

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        self.calls.append(("start", key))
        self.starts += 1
        if self.fail_starts_after is not None and self.starts > self.fail_starts_after:
            raise RuntimeError(f"start {self.starts} refused")
        return await self.inner.start(sup, key, lease)

    def release(self, sup: Process, key: ChildKey, lease: Any) -> None:
        self.calls.append(("release", key))

    def count(self, what: str) -> int:
        return sum(1 for name, _ in self.calls if name == what)


class DiesAtStart(ChildStart):
    """A start that fails with StartFailureDied (as a dead starter would)."""

    def __init__(self, reason: Any) -> None:
        self.reason = reason

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        raise StartFailureDied(key, self.reason)


async def wait_dead(p: Process, pids: list[Pid]) -> None:
    """Wait until every pid has exited (through node.wait, no sleeps)."""
    for pid in pids:
        with anyio.fail_after(WAIT):
            await p.node.wait(pid)
