"""The owner's handle on a starter (``spawn_child_starter``), and ``StarterProcess``: the
``ChildStart`` that supervisors use to start children through it."""

from __future__ import annotations

import itertools
import sys
from types import TracebackType
from typing import Any, ClassVar

import attrs

from ..runtime import CallFailed, CallTimeout, ExitReason, Pid, Process, ProcessFunction, Ref, Shutdown
from ..supervisor.errors import StarterGone
from ..supervisor.run_closure import RunClosure
from ..supervisor.start import ChildKey, ChildStart, check_process_function
from .errors import StarterRefused, StarterUnresponsive
from .protocol import ReplyAcquired, ReplyRefused, StarterStatistics
from .service import (
    LOCAL_STARTERS,
    AcquireAndStart,
    AcquireRef,
    GetStatistics,
    StartChild,
    Started,
    register_local_starter,
    starter_process,
)

__all__ = ["STARTER_CALL_TIMEOUT", "Starter", "StarterLease", "StarterProcess", "spawn_child_starter"]

#: How long a supervisor waits for a starter's answer by default, in seconds.
STARTER_CALL_TIMEOUT = 5.0

# The seq of each acquire. One counter per OS process: a supervisor lives in one and makes
# one call at a time, so its seqs grow across all its keys. The protocol relies on it: an
# acquire at or below the highest seq that holder released is a stale copy (ADR-0002).
_seqs = itertools.count(1)


def _check_pid(instance: object, attribute: attrs.Attribute[Pid], value: object) -> None:
    if type(value) is not Pid:
        raise TypeError(f"{attribute.name} must be the starter's Pid, got {value!r}")


def _check_timeout(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if value == STARTER_CALL_TIMEOUT:
        return  # the default (a StarterProcess is made per DPP-84 cycle)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, got {value!r}")
    # A float's range, not math.isfinite: an int too large for a float is math.inf
    # (ADR-0010, decision 6), and isfinite of it would raise OverflowError.
    if not 0 < value <= sys.float_info.max:
        raise ValueError(f"{attribute.name} must be a finite number of seconds > 0, got {value!r}")


@attrs.frozen
class StarterLease:
    """What ``StarterProcess.acquire`` returns and the supervisor keeps with the spec.

    Args:
        starter: The starter's pid.
        key: The child's key.
        seq: The reference's sequence number; the release signal carries it.
    """

    starter: Pid
    key: ChildKey
    seq: int


@attrs.frozen
class StarterProcess(ChildStart):
    """Start children through a starter process (the ``child_start`` of a ``Starter``).

    Put it in a ``ChildSpec``; it may be copied and sent to supervisors on other nodes (it is
    just the starter's pid). Each supervisor that adds the spec holds a reference until it
    deletes the spec or dies; see ADR-0002. The child acknowledges its start straight to the
    supervisor (the starter never waits on a child), so a start through a starter succeeds,
    is ignored or fails exactly like a local one.

    Args:
        pid: The starter's pid.
        timeout: How long each call to the starter may take, in seconds: a pid that is not
            a starter's, or a starter that stopped answering, fails the start with
            ``StarterUnresponsive`` instead of wedging the supervisor.

    Raises:
        TypeError: ``pid`` is not a Pid, or ``timeout`` not a number.
        ValueError: ``timeout`` is not a finite number of seconds > 0.
    """

    acknowledges: ClassVar[bool] = True

    pid: Pid = attrs.field(validator=_check_pid)
    timeout: float = attrs.field(default=STARTER_CALL_TIMEOUT, validator=_check_timeout)

    async def acquire(self, sup: Process, key: ChildKey) -> StarterLease:
        """Acquire a reference for ``(sup, key)`` with a fresh seq.

        The call monitors the starter while it waits, so it never hangs.

        Args:
            sup: The supervisor process that adds the spec.
            key: The child's key.

        Returns:
            The lease to keep with the spec.

        Raises:
            StarterGone: The starter is dead or unreachable (this copy of the spec is stale),
                at once.
            StarterRefused: The starter refused: a late duplicate of an acquire ``sup`` already
                released (``Refusal.RELEASED``), or a malformed request.
            StarterUnresponsive: No starter's answer within ``timeout``.
        """
        seq = next(_seqs)
        try:
            answer = await sup.call(self.pid, AcquireRef(key, seq), timeout=self._bound(sup))
        except CallFailed as exc:
            raise StarterGone(key, self.pid, exc.reason) from None
        except CallTimeout:
            # If the acquire was granted after all, the reference is held until sup's Down
            # (ADR-0002's abandoned call): a bounded leak, never a premature stop.
            raise StarterUnresponsive(key, self.pid, _no_answer(self.timeout)) from None
        if type(answer) is ReplyAcquired:
            return StarterLease(self.pid, key, seq)
        raise StarterRefused(key, self.pid, self._refusal(key, answer))

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        """Ask the starter to start the child, linked to and monitored by ``sup`` before it runs.

        Args:
            sup: The supervisor process (a holder).
            key: The child's key.
            lease: The ``StarterLease`` that ``acquire`` returned.

        Returns:
            The child's pid and the monitor reference of its ``Down``.

        Raises:
            StarterGone: The starter is dead or unreachable.
            StarterRefused: ``sup`` holds no reference for this lease (released, or dropped
                by the starter after a false ``Down``; see ADR-0003).
            StarterUnresponsive: No starter's answer within ``timeout``.
        """
        lease = _lease(lease, self.pid, key)
        ref = sup.reserve_monitor()
        pid = await self._call_start(sup, key, ref, StartChild(key, lease.seq, ref))
        return pid, ref

    async def acquire_and_start(self, sup: Process, key: ChildKey) -> tuple[StarterLease, Pid, Ref]:
        """Acquire a reference and start the first child in one call (``start_new_child``).

        The starter applies the acquire, then the start, as two protocol events in order:
        the same outcome as ``acquire`` followed by ``start``, in one round trip.

        Args:
            sup: The supervisor process that adds the spec.
            key: The child's key.

        Returns:
            The lease, the child's pid and the monitor reference of its ``Down``.

        Raises:
            StarterGone: The starter is dead or unreachable (this copy of the spec is stale),
                at once; nothing is held.
            StarterRefused: The starter refused the acquire; nothing is held.
            StarterUnresponsive: No starter's answer within ``timeout``.
        """
        seq = next(_seqs)
        ref = sup.reserve_monitor()
        # _call_start, written out: one coroutine frame less on the DPP-84 cycle's path.
        try:
            answer = await sup.call(self.pid, AcquireAndStart(key, seq, ref), timeout=self._bound(sup))
        except CallFailed as exc:
            sup.demonitor(ref)
            raise StarterGone(key, self.pid, exc.reason) from None
        except CallTimeout:
            sup.demonitor(ref)
            raise StarterUnresponsive(key, self.pid, _no_answer(self.timeout)) from None
        except BaseException:
            sup.demonitor(ref)
            raise
        if type(answer) is Started:
            pid = answer.pid
            sup.bind_monitor(ref, pid)
            return StarterLease(self.pid, key, seq), pid, ref
        sup.demonitor(ref)
        raise StarterRefused(key, self.pid, self._refusal(key, answer))

    async def _call_start(self, sup: Process, key: ChildKey, ref: Ref, request: object) -> Pid:
        """Call the starter with a start request; the child's pid, bound to ``ref``."""
        try:
            answer = await sup.call(self.pid, request, timeout=self._bound(sup))
        except CallFailed as exc:
            sup.demonitor(ref)
            raise StarterGone(key, self.pid, exc.reason) from None
        except CallTimeout:
            # A child that a slow starter spawns after all is linked to sup but not counted:
            # its acknowledgement is dropped, its exit reaches sup as a link (ADR-0009).
            sup.demonitor(ref)
            raise StarterUnresponsive(key, self.pid, _no_answer(self.timeout)) from None
        except BaseException:
            sup.demonitor(ref)
            raise
        if type(answer) is Started:
            sup.bind_monitor(ref, answer.pid)
            return answer.pid
        sup.demonitor(ref)
        raise StarterRefused(key, self.pid, self._refusal(key, answer))

    def acknowledges_as_it_runs(self, sup: Process) -> bool:
        """True for a starter on ``sup``'s node whose function takes no ``task_status``: its
        children are acknowledged as they start to run (see ``ChildStart``).

        Args:
            sup: The supervisor process.
        """
        pid = self.pid
        known = LOCAL_STARTERS.get(pid)
        return known is not None and known[0] and pid.node == sup.node.name

    def _bound(self, sup: Process) -> float | None:
        """The call's timeout: none for a starter running on ``sup``'s own node (it shares
        the event loop and only ever waits on its mailbox, so it cannot stop answering
        without dying, which the call's monitor sees; and no timer is armed: worth about 4%
        of dpp84_cycle), ``timeout`` for any other pid."""
        pid = self.pid
        if pid in LOCAL_STARTERS and pid.node == sup.node.name:
            return None
        return self.timeout

    def _refusal(self, key: ChildKey, answer: Any) -> Any:
        if type(answer) is not ReplyRefused:
            raise StarterUnresponsive(
                key, self.pid, f"it answered {answer!r}, which is not a starter's answer"
            )
        return answer.refusal

    def release(self, sup: Process, key: ChildKey, lease: Any) -> None:
        """Send the release signal ``Shutdown((key, seq))``; never blocks (see ADR-0004).

        Args:
            sup: The supervisor process that deletes the spec.
            key: The child's key.
            lease: The ``StarterLease`` that ``acquire`` returned.
        """
        lease = _lease(lease, self.pid, key)
        sup.exit(self.pid, Shutdown((lease.key, lease.seq)))

    @property
    def serializable(self) -> bool:
        """A starter's pid can travel: a copy of the spec on another node starts children
        through the same starter."""
        return True


#: The owner's release signal (ADR-0004): an exit reason is immutable, one serves all.
_OWNER_RELEASE = Shutdown()


def _lease(lease: Any, starter: Pid, key: ChildKey) -> StarterLease:
    if type(lease) is not StarterLease or lease.starter != starter or lease.key != key:
        raise TypeError(f"expected the StarterLease that acquire returned for {key!r}, got {lease!r}")
    return lease


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout} s (not a starter, or a starter that stopped answering)"


@attrs.define(eq=False)
class Starter:
    """The owner's handle on a starter. The owner holds the first reference until
    ``release()`` (or the end of its ``async with``, or its death).

    Use it from the owner's own task (it calls through the owner's mailbox).

    Attributes:
        owner: The owner's process.
        pid: The starter's pid.
        child_start: The ``StarterProcess`` to put in ``ChildSpec``s.
    """

    owner: Process
    pid: Pid
    child_start: StarterProcess
    _released: bool = attrs.field(default=False, alias="_released")

    @property
    def released(self) -> bool:
        """Whether the owner has released its reference."""
        return self._released

    async def release(self) -> None:
        """Release the owner's reference; idempotent, and it never blocks.

        It sends the starter the owner's release signal, the exit signal ``Shutdown()``
        (ADR-0004), and returns at once. The starter keeps running while any supervisor
        holds it, and stops when the last one lets go; ``wait()`` waits for that. Releasing
        a starter that is already gone does nothing.
        """
        if self._released:
            return
        self._released = True
        if self.owner.reason is not None:
            return  # the owner is dead: its Down released the reference
        self.owner.exit(self.pid, _OWNER_RELEASE)

    async def statistics(self, *, via: Process | None = None) -> StarterStatistics:
        """Ask the starter what it holds.

        Args:
            via: The process to call from; the owner by default.

        Raises:
            StarterGone: The starter is no longer running.
        """
        caller = self.owner if via is None else via
        try:
            stats: StarterStatistics = await caller.call(self.pid, GetStatistics())
        except CallFailed as exc:
            raise StarterGone("<statistics>", self.pid, exc.reason) from None
        return stats

    async def wait(self) -> ExitReason:
        """Wait until the starter has stopped (it runs on the owner's node); return its reason."""
        return await self.owner.node.wait(self.pid)

    async def __aenter__(self) -> Starter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


async def spawn_child_starter(
    owner: Process, fn: ProcessFunction | RunClosure, *args: Any, name: str | None = None
) -> Starter:
    """Spawn a starter on the owner's node that (re)starts ``fn(process, *args)`` for any
    number of supervisors, and stops by itself when the owner and every supervisor holding it
    have let go.

    Args:
        owner: The process that holds the first reference (the caller, typically).
        fn: The child's async process function, or a ``RunClosure`` (a function registered
            in the remote table, resolved here on the starter's node; its arguments come
            before ``args``).
        args: Extra arguments for ``fn``.
        name: A name to register the starter under, if any.

    Returns:
        The ``Starter`` handle.

    Raises:
        TypeError: ``fn`` is not callable, or ``owner`` not a ``Process``.
        BadClosure: ``fn`` is a ``RunClosure`` whose name is not in the remote table.
    """
    if not isinstance(owner, Process):
        raise TypeError(f"the owner must be a Process, got {owner!r}")
    if isinstance(fn, RunClosure):
        # The hook for closures: the name is resolved on the starter's node, once.
        args = (*fn.args, *args)
        fn = fn._resolve("<starter>")
    else:
        check_process_function(fn, "a child's function (an async callable or a RunClosure)")
    pid = owner.spawn(starter_process, owner.pid, fn, tuple(args), trap_exits=True, name=name)
    # Known as a starter before it runs: a supervisor's first call to it needs no timer.
    register_local_starter(owner.node, pid, fn)
    return Starter(owner, pid, StarterProcess(pid))
