"""A reference-counted starter on another node: ``spawn_remote_starter``.

``spawn_child_starter`` makes a starter on its owner's node. To put one on another node (the
node where the child must run, or one that outlives the asking node), the asking process
starts an *owner process* there through the node's spawner (``spawn_remote``); the owner
spawns the starter with a ``RunClosure`` (the child's function is looked up in that node's
remote table) and holds the starter's first reference, until ``RemoteStarter.release()`` or
until the asking process exits (the owner monitors it), whichever comes first. Supervisors
anywhere then put ``child_start`` (a ``StarterProcess``) in their ``ChildSpec``s.

Every node that runs ``python -m refcount_starter node`` can host one (the node command
imports this module).
"""

from __future__ import annotations

from typing import Any

import attrs

from ..remote.closures import remotable
from ..remote.service import RemoteSpawnFailed, spawn_remote
from ..runtime import Call, CallFailed, Down, ExitReason, NoProc, Pid, Process
from ..supervisor import RunClosure, StarterGone
from .client import StarterProcess, spawn_child_starter
from .protocol import StarterStatistics
from .service import GetStatistics

__all__ = ["RELEASE", "STARTER_OWNER", "RemoteStarter", "spawn_remote_starter", "starter_owner"]

#: The remote-table name of the owner process.
STARTER_OWNER = "refcount_starter.starter_owner"

#: The message that asks the owner process to release its reference (a plain message: the
#: release never blocks, ADR-0004).
RELEASE = "release"


@remotable(name=STARTER_OWNER)
async def starter_owner(p: Process, asker: Pid, closure: str, args: tuple[Any, ...]) -> None:
    """The owner of a starter made for another node's process ``asker``.

    It answers the call ``"starter"`` with the starter's pid (or the ``BadClosure`` that
    refused the closure); the message ``(RELEASE, asker)`` (``RemoteStarter.release``, which
    never blocks) releases its reference and ends it, as do the call ``"release"`` from
    ``asker`` (answered ``None``) and ``asker``'s exit. A release that names another process,
    or a call from another, is ignored: only the asker lets go of its reference.
    """
    watch = p.monitor(asker)
    try:
        starter = await spawn_child_starter(p, RunClosure(closure, args))
    except Exception as exc:
        first = await p.receive(Call, timeout=30)
        p.reply(first, exc)
        return
    async with starter:
        while True:
            message = await p.receive()
            if type(message) is Down and message.ref == watch:
                return  # the asker is gone: leaving the block releases the reference
            if _is_release(message, asker):
                return  # leaving the block releases the reference
            if type(message) is Call and type(message.sender) is Pid:
                if message.request == "starter":
                    p.reply(message, starter.pid)
                elif message.request == "release" and message.sender == asker:
                    await starter.release()
                    p.reply(message, None)
                    return


def _is_release(message: object, asker: Pid) -> bool:
    """Whether ``message`` is ``(RELEASE, asker)`` (a list too: a codec may turn a tuple into
    one on the way)."""
    return (
        isinstance(message, tuple | list)
        and len(message) == 2
        and message[0] == RELEASE
        and type(message[1]) is Pid
        and message[1] == asker
    )


@attrs.define(eq=False)
class RemoteStarter:
    """The asking process's handle on a starter running on another node.

    Attributes:
        caller: The process that asked for it (the handle calls from it).
        owner: The owner process on the starter's node (holds the first reference).
        pid: The starter's pid.
        child_start: The ``StarterProcess`` to put in ``ChildSpec``s.
    """

    caller: Process
    owner: Pid
    pid: Pid
    child_start: StarterProcess
    _released: bool = attrs.field(default=False, alias="_released")

    async def release(self) -> None:
        """Release the owner's reference; idempotent, and it never blocks (as
        ``Starter.release``, ADR-0004).

        It sends the owner process the message ``(RELEASE, caller)`` and returns at once; the owner
        releases the starter's first reference and ends. The reference is never lost: if the
        message cannot arrive, the session to the owner's node has ended, and the owner,
        which monitors this handle's caller, releases it on that ``Down``. ``wait()`` waits
        for the starter to stop. Releasing when the owner is gone does nothing (its death
        released the reference).
        """
        if self._released:
            return
        self._released = True
        if self.caller.reason is not None:
            return  # the caller is dead: the owner saw its Down and released
        self.caller.send(self.owner, (RELEASE, self.caller.pid))

    async def statistics(self, *, via: Process | None = None, timeout: float = 10.0) -> StarterStatistics:
        """Ask the starter what it holds.

        Raises:
            StarterGone: The starter is no longer running (or unreachable).
        """
        caller = self.caller if via is None else via
        try:
            stats: StarterStatistics = await caller.call(self.pid, GetStatistics(), timeout=timeout)
        except CallFailed as exc:
            raise StarterGone("<statistics>", self.pid, exc.reason) from None
        return stats

    async def wait(self, *, timeout: float | None = None) -> ExitReason:
        """Wait until the starter has stopped; return its reason (remembered by its node if it
        had already stopped; ``NoProc`` if not even that; ``NoConnection`` if its node was lost).

        Raises:
            TimeoutError: It did not stop within ``timeout`` seconds.
        """
        ref = self.caller.monitor(self.pid)
        try:
            down = await self.caller.receive(Down, where=lambda m: m.ref == ref, timeout=timeout)
        except BaseException:
            self.caller.demonitor(ref)
            raise
        reason = down.reason
        if type(reason) is NoProc and reason.last_reason is not None:
            return reason.last_reason
        return reason


async def spawn_remote_starter(
    p: Process, node: str, closure: str | RunClosure, *args: Any, timeout: float = 10.0
) -> RemoteStarter:
    """Make a reference-counted starter on ``node`` for the remote-table function ``closure``.

    The function is looked up on ``node`` and its children run there. The first reference
    is held on ``node`` for ``p`` until ``release()`` or ``p``'s exit.

    Args:
        p: The asking process.
        node: The node to run the starter on (it must run a spawner, as the node command does,
            and have imported this module).
        closure: The child's function: its name in ``node``'s remote table, or a
            ``RunClosure`` (whose arguments come before ``args``).
        args: The child's extra arguments (encodable).
        timeout: Seconds for each step of the set-up.

    Returns:
        The handle.

    Raises:
        RemoteSpawnFailed: ``node`` did not start the owner (unreachable, no spawner), or did
            not answer within ``timeout``.
        BadClosure: ``closure`` is not in ``node``'s remote table.
        TypeError: An argument cannot be encoded.
    """
    if isinstance(closure, RunClosure):
        name, args = closure.name, (*closure.args, *args)
    else:
        name = closure
    owner, ref = await spawn_remote(p, node, STARTER_OWNER, p.pid, name, tuple(args), timeout=timeout)
    # The owner watches p by its own monitor; neither should die of the other's crash.
    p.unlink(owner)
    p.demonitor(ref)
    try:
        answer = await p.call(owner, "starter", timeout=timeout)
    except (CallFailed, TimeoutError) as exc:
        raise RemoteSpawnFailed(node, name, f"its starter's owner did not answer: {exc}") from None
    if isinstance(answer, BaseException):
        raise answer
    return RemoteStarter(p, owner, answer, StarterProcess(answer))
