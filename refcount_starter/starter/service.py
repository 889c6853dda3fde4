"""The starter process: it drives ``protocol.step`` from its mailbox.

The loop is the one every sans-IO driver has: receive a message, turn it into an event,
step, perform the commands. Requests (acquire, start, statistics) arrive as ``Call``s; a
supervisor's release arrives as the exit signal ``Shutdown((child_key, seq))``, and the
owner's as a plain ``Shutdown()`` (the starter traps exits, so they are ``ExitSignal``
messages; see ADR-0004); a holder's ``Down`` becomes ``HolderDown``. The starter links to nobody, so
no supervisor's exit can take it down (the Cloud Haskell starter linked to its first
supervisor; see ADR-0002).
"""

from __future__ import annotations

import logging
from typing import Any, assert_never

import attrs

from ..runtime import (
    Call,
    Down,
    ExitSignal,
    Node,
    Normal,
    Pid,
    Process,
    ProcessExit,
    ProcessFunction,
    Ref,
    Shutdown,
    log_fields,
)
from ..supervisor.start import acknowledges_itself, run_child
from . import protocol
from .protocol import (
    Acquire,
    Command,
    Demonitor,
    Event,
    Halt,
    HolderDown,
    Monitor,
    OwnerRelease,
    Refusal,
    Release,
    ReplyAcquired,
    ReplyRefused,
    ReplyReleased,
    SpawnChild,
    StarterState,
    StartRequest,
    Stop,
    StrayExit,
)

__all__ = [
    "LOCAL_STARTERS",
    "AcquireAndStart",
    "AcquireRef",
    "GetStatistics",
    "ReleaseOwnerRef",
    "StartChild",
    "Started",
    "Unsupported",
    "register_local_starter",
    "starter_process",
]

_log = logging.getLogger("refcount_starter.starter.service")

# -- what travels: the bodies of the calls, and the replies --------------------------------


@attrs.frozen
class AcquireRef:
    """Call body: acquire the reference ``(caller, key, seq)``; answered ``ReplyAcquired``
    or ``ReplyRefused``."""

    key: str
    seq: int


@attrs.frozen
class StartChild:
    """Call body: start the caller's child for ``(key, seq)``, monitored by the caller under
    ``ref`` (from ``reserve_monitor``); answered ``Started`` or ``ReplyRefused``."""

    key: str
    seq: int
    ref: Ref


@attrs.frozen
class AcquireAndStart:
    """Call body: ``AcquireRef`` then ``StartChild`` in one message (``start_new_child``);
    answered ``Started`` or ``ReplyRefused``. The starter steps the two events in order, so
    the outcome is the one the two calls would have had."""

    key: str
    seq: int
    ref: Ref


@attrs.frozen
class ReleaseOwnerRef:
    """Call body: the owner releases its reference; answered ``ReplyReleased``. (The same as
    the owner's release signal ``Shutdown()``, with an answer.)"""


@attrs.frozen
class GetStatistics:
    """Call body: answered with a ``StarterStatistics``."""


@attrs.frozen
class Started:
    """Reply to ``StartChild``: the child runs as ``pid``."""

    pid: Pid


@attrs.frozen
class Unsupported:
    """Reply to a call the starter does not understand."""

    request: Any


# -- the process -----------------------------------------------------------------------------

#: The starters of this OS process's nodes, from their spawn to their exit, each with whether
#: its children acknowledge as they run (their function takes no ``task_status``) and its
#: node. A call from the starter's own node needs no timeout: the starter shares the caller's
#: event loop and only ever waits on its mailbox, so it answers unless it dies, which the
#: call's monitor sees. A call to any other pid (a starter on another node, a process that is
#: not a starter) is bounded. ADR-0002.
LOCAL_STARTERS: dict[Pid, tuple[bool, Node]] = {}
# When LOCAL_STARTERS next drops the starters that were killed before they ran (their
# function never started, so never removed them): amortized O(1) per spawn.
_prune_at = 64


def register_local_starter(node: Node, pid: Pid, fn: ProcessFunction) -> None:
    """Record ``pid`` as a starter of ``node`` running ``fn``'s children, from its spawn on
    (before it runs: a supervisor may call it first)."""
    global _prune_at
    LOCAL_STARTERS[pid] = (not acknowledges_itself(fn), node)
    if len(LOCAL_STARTERS) >= _prune_at:
        for gone in [s for s, (_, n) in LOCAL_STARTERS.items() if not n.is_alive(s)]:
            del LOCAL_STARTERS[gone]
        _prune_at = max(64, 2 * len(LOCAL_STARTERS))


async def starter_process(p: Process, owner: Pid, fn: ProcessFunction, args: tuple[Any, ...]) -> None:
    """The starter's process function (spawned with ``trap_exits=True``).

    Args:
        p: The starter's process.
        owner: The process that holds the first reference.
        fn: The child's process function, known on this node.
        args: Its extra arguments.
    """
    known = LOCAL_STARTERS.get(p.pid)
    if known is None:  # spawned by hand rather than by spawn_child_starter
        register_local_starter(p.node, p.pid, fn)
        known = LOCAL_STARTERS[p.pid]
    acknowledges_as_it_runs, _ = known
    driver = _Driver(p, fn, args, acks=not acknowledges_as_it_runs)
    try:
        state, commands = protocol.initial(owner)
        driver.perform_all(commands, None)
        while True:
            message = await p.receive()
            if type(message) is Call:
                if type(message.sender) is not Pid or type(message.ref) is not Ref:
                    # A Call made by hand with no one to answer: dropped, the starter that
                    # every holder shares goes on.
                    driver.drop_malformed(message)
                    continue
                request = message.request
                if type(request) is GetStatistics:
                    p.reply(message, state.statistics())
                    continue
                if type(request) is AcquireAndStart:
                    if _malformed(request):
                        driver.refuse_malformed(message)
                    else:
                        state = driver.acquire_and_start(state, message, request)
                    continue
            event = driver.to_event(message)
            if event is None:
                continue
            state, commands = protocol.step(state, event)
            driver.perform_all(commands, message if type(message) is Call else None)
            if state.stopped:
                return  # Stop(Normal()): the reference list is empty
    finally:
        LOCAL_STARTERS.pop(p.pid, None)


#: The commands that answer the call (a tuple: ``A | B`` would build a union at each test).
_REPLIES = (ReplyAcquired, ReplyRefused, ReplyReleased)


class _Driver:
    """The starter's side effects, and the translation of messages into events."""

    # A plain slotted class: one is made per starter, on the DPP-84 cycle's path.
    __slots__ = ("_holders", "_monitors", "acks", "args", "fn", "p")

    def __init__(self, p: Process, fn: ProcessFunction, args: tuple[Any, ...], *, acks: bool) -> None:
        self.p = p
        self.fn = fn
        self.args = args
        # Whether the child acknowledges its own start (it takes task_status), found once,
        # when the starter was registered (LOCAL_STARTERS).
        self.acks = acks
        # Invariant: one monitor per watched holder; _holders is the inverse of _monitors.
        self._monitors: dict[Pid, Ref] = {}
        self._holders: dict[Ref, Pid] = {}

    def to_event(self, message: Any) -> Event | None:
        """The protocol event a message stands for, or ``None`` if it stands for none."""
        kind = type(message)
        if kind is Call:
            request = message.request
            if type(request) is AcquireRef or type(request) is StartChild:
                # A request from another node (or a hand-made one) may carry anything: one
                # holder's bad request must not crash the starter every holder shares.
                if _malformed(request):
                    self.refuse_malformed(message)
                    return None
                if isinstance(request, AcquireRef):
                    return Acquire(message.sender, request.key, request.seq)
                return StartRequest(message.sender, request.key, request.seq, request.ref)
            if type(request) is ReleaseOwnerRef:
                return OwnerRelease(message.sender)
            _log.warning(
                "starter %s: unsupported request %r from %s",
                self.p.pid,
                request,
                message.sender,
                extra=log_fields(self.p.pid),
            )
            self.p.reply(message, Unsupported(request))
            return None
        if kind is ExitSignal:
            if type(message.sender) is not Pid:
                self.drop_malformed(message)
                return None
            reason = message.reason
            release = _release_detail(reason)
            if release is not None:
                return Release(message.sender, *release)
            sender = message.sender
            node = self.p.node
            if (
                sender.serial == 0
                and node.stopping
                and sender.node == node.name
                and sender.incarnation == node.incarnation
            ):
                # The node's own stop (serial 0, while it stops) halts even a held starter;
                # a Node.exit from user code follows the rules of any other sender. ADR-0004.
                return Halt(reason)
            if type(reason) is Shutdown and reason.detail is None:
                # A plain Shutdown: the owner lets go of its own reference (from anyone else
                # the protocol counts it as spurious). See ADR-0004.
                return OwnerRelease(message.sender)
            return StrayExit(message.sender, reason)
        if kind is Down:
            if type(message.ref) is not Ref:
                self.drop_malformed(message)
                return None
            holder = self._holders.pop(message.ref, None)
            if holder is None:
                return None
            del self._monitors[holder]
            return HolderDown(holder)
        _log.debug("starter %s: ignored %r", self.p.pid, message, extra=log_fields(self.p.pid))
        return None

    def drop_malformed(self, message: Any) -> None:
        """Log and drop a message of a runtime type whose fields are of the wrong types (made
        by hand: the runtime never sends one)."""
        _log.warning(
            "starter %s: dropped the malformed message %r", self.p.pid, message, extra=log_fields(self.p.pid)
        )

    def refuse_malformed(self, call: Call) -> None:
        """Answer a malformed request with ``Refusal.MALFORMED``; the state is unchanged."""
        _log.warning(
            "starter %s: malformed request %r from %s",
            self.p.pid,
            call.request,
            call.sender,
            extra=log_fields(self.p.pid),
        )
        self.p.reply(call, ReplyRefused(Refusal.MALFORMED))

    def acquire_and_start(self, state: StarterState, call: Call, request: AcquireAndStart) -> StarterState:
        """Acquire then, if it was granted, start (``protocol.acquire_and_start``); one reply."""
        state, commands = protocol.acquire_and_start(
            state, call.sender, request.key, request.seq, request.ref
        )
        self.perform_all(commands, call)
        return state

    def perform_all(self, commands: tuple[Command, ...], call: Call | None) -> None:
        for command in commands:
            self.perform(command, call)

    def perform(self, command: Command, call: Call | None) -> None:
        """Carry out one command; replies answer ``call``, the request being handled."""
        p = self.p
        # isinstance tests, not class patterns: the same tests, without a pattern's reads of
        # ``__match_args__`` and of unused fields; the most frequent commands first.
        if isinstance(command, Monitor):
            holder = command.holder
            ref = p.monitor(holder)
            self._monitors[holder] = ref
            self._holders[ref] = holder
        elif isinstance(command, SpawnChild):
            assert call is not None
            # Linked to and monitored by the holder before it runs, and not linked to the
            # starter: a child that dies at once reports its own reason to its supervisor.
            # Its init acknowledgement goes straight to the holder: the starter answers at
            # once and never waits on a child (ADR-0002).
            holder = command.holder
            ref = command.ref
            pid = p.spawn_for(holder, ref, run_child, holder, ref, self.fn, self.args, self.acks)
            p.reply(call, Started(pid))
        elif isinstance(command, _REPLIES):
            if call is not None:  # the owner's release signal expects no answer
                p.reply(call, command)
        elif isinstance(command, Stop):
            # Normal: starter_process returns once the step's commands are performed, a
            # cheaper way out than an exception.
            if type(command.reason) is not Normal:
                raise ProcessExit(command.reason)
        elif isinstance(command, Demonitor):
            ref = self._monitors.pop(command.holder)
            del self._holders[ref]
            p.demonitor(ref)
        else:
            assert_never(command)


def _malformed(request: AcquireRef | StartChild | AcquireAndStart) -> bool:
    """Whether a request's fields are of the wrong types (a bool is no seq)."""
    if type(request.key) is not str or type(request.seq) is not int or request.seq < 0:
        return True
    if isinstance(request, AcquireRef):
        return False
    return type(request.ref) is not Ref


def _release_detail(reason: object) -> tuple[str, int] | None:
    """``(key, seq)`` if ``reason`` is the release signal ``Shutdown((key, seq))``."""
    if type(reason) is not Shutdown:
        return None
    detail = reason.detail
    # A list too: a codec may turn a tuple into one on the way.
    if isinstance(detail, tuple | list) and len(detail) == 2:
        key, seq = detail
        if type(key) is str and type(seq) is int:
            return key, seq
    return None
