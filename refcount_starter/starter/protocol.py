"""The starter's reference protocol, as a pure state machine (sans-IO).

Every decision about references lives in this file. Nothing here awaits, sleeps, reads a
clock or logs: ``step(state, event)`` returns the next state and the commands the starter
process performs, in order. The starter keeps a reference *list* (Birrell's dirty set, Java
RMI's reference list), never a bare count, so that duplicated, reordered or retried messages
cannot drive it below the truth. See ADR-0002 (why a reference list) and ADR-0004 (the
release signal).

Vocabulary:
    holder: a process (a supervisor) that holds references; the owner is a holder too.
    reference: ``(holder, child_key) -> seq``; ``seq`` grows each time that holder adds a
        spec for that key, so a delete-then-re-add is not confused with a late duplicate.
    mark: per watched holder, the highest ``seq`` it has released (``released_hw``). Seqs
        come from one counter per OS process, so a holder's seqs only grow: an acquire at or
        below its mark is a late duplicate and is refused instead of resurrecting a
        reference. A mark lives exactly as long as the starter watches its holder (until the
        holder's ``Down`` or the starter's stop), so the state is bounded by the live holders
        and the references held, never by the number of cycles. See ADR-0002.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, assert_never

import attrs

from ..runtime.pid import Pid, Ref
from ..runtime.reasons import ExitReason, Normal

__all__ = [
    "Acquire",
    "acquire_and_start",
    "ChildKey",
    "Command",
    "Demonitor",
    "Event",
    "Halt",
    "HolderDown",
    "Monitor",
    "OwnerRelease",
    "RefKey",
    "Refusal",
    "Release",
    "ReplyAcquired",
    "ReplyRefused",
    "ReplyReleased",
    "SpawnChild",
    "StartRequest",
    "StarterState",
    "StarterStatistics",
    "Stop",
    "StrayExit",
    "initial",
    "step",
]

#: A child's key within its supervisor.
ChildKey = str

#: One reference: the holder and the key of the child spec it holds the starter for.
RefKey = tuple[Pid, ChildKey]


class Refusal(enum.Enum):
    """Why the starter refused a request; the value is the sentence a user reads."""

    # Never seen by a caller: the starter exits at the same step (a later call fails with
    # NoProc, which the client turns into StarterGone). Kept for the protocol's own tests.
    STOPPED = "the starter is stopping: its reference list is empty"
    # Not sent any more: the starter keeps no record of holders seen down (ADR-0002); the
    # name stays so that it still decodes.
    HOLDER_DOWN = "the starter saw this holder go down (a crash, a kill or a lost connection)"
    RELEASED = (
        "this holder already released a reference with this seq or a later one: "
        "the request is a late or duplicated copy"
    )
    SUPERSEDED = "the starter holds a newer reference for this holder and key"
    NOT_HOLDER = (
        "the requester holds no reference for this key and seq (it was released, or dropped "
        "when the starter saw the requester go down)"
    )
    NOT_OWNER = "only the starter's owner can release the owner's reference"
    MALFORMED = "the request is malformed: the key must be a str, the seq an int >= 0 and the ref a Ref"


# -- events: facts, in the past or present tense --------------------------------------------


@attrs.frozen
class Acquire:
    """A holder asks for a reference for ``key``, with a fresh ``seq`` (at add time)."""

    holder: Pid
    key: ChildKey
    seq: int


@attrs.frozen
class Release:
    """A holder gives back its reference ``(key, seq)`` (the ``Shutdown((key, seq))`` signal)."""

    holder: Pid
    key: ChildKey
    seq: int


@attrs.frozen
class HolderDown:
    """A monitored holder (the owner included) is down: crashed, killed, or unreachable."""

    holder: Pid


@attrs.frozen
class OwnerRelease:
    """``sender`` asks to release the owner's reference (``Starter.release()``)."""

    sender: Pid


@attrs.frozen
class StartRequest:
    """A holder asks for its child to be started, monitored by it under ``ref``."""

    holder: Pid
    key: ChildKey
    seq: int
    ref: Ref


@attrs.frozen
class Halt:
    """The starter's node is stopping (or someone with the right to stop it said so)."""

    reason: ExitReason


@attrs.frozen
class StrayExit:
    """An exit signal that is not a release (wrong shape, or from a linked process)."""

    sender: Pid
    reason: ExitReason


Event = Acquire | Release | HolderDown | OwnerRelease | StartRequest | Halt | StrayExit


# -- commands: what the starter process must do, in order -----------------------------------


@attrs.frozen
class Monitor:
    """Start watching ``holder`` (its ``Down`` becomes a ``HolderDown``)."""

    holder: Pid


@attrs.frozen
class Demonitor:
    """Stop watching ``holder``: it holds no reference and has no mark (the owner, after its
    release, if it never held a keyed reference)."""

    holder: Pid


@attrs.frozen
class ReplyAcquired:
    """Answer the current call: the reference ``(holder, key, seq)`` is held."""

    holder: Pid
    key: ChildKey
    seq: int


@attrs.frozen
class ReplyRefused:
    """Answer the current call with a refusal."""

    refusal: Refusal


@attrs.frozen
class ReplyReleased:
    """Answer the current call: the owner's reference is released (or already was)."""


@attrs.frozen
class SpawnChild:
    """Spawn the child for ``holder`` (linked to it, monitored by it under ``ref``, before
    it runs) and answer the current call with the child's pid."""

    holder: Pid
    key: ChildKey
    seq: int
    ref: Ref


@attrs.frozen
class Stop:
    """Exit with ``reason``: the reference list is empty (``Normal``), or the node stops."""

    reason: ExitReason


Command = Monitor | Demonitor | ReplyAcquired | ReplyRefused | ReplyReleased | SpawnChild | Stop


# Commands that never vary, built once: frozen values, equal to fresh ones.
_STOP_NORMAL = Stop(Normal())
_REPLY_RELEASED = ReplyReleased()


# -- state -----------------------------------------------------------------------------------


@attrs.frozen
class StarterStatistics:
    """What a starter holds, as a frozen value (``Starter.statistics()``).

    Args:
        owner: The process that spawned the starter.
        owner_holds: Whether the owner still holds its first reference.
        holders: Every process holding a reference (the owner included while it holds).
        references: The reference list, ``(holder, key) -> seq``.
        spurious_releases: Releases that matched no reference and changed nothing.
        children_started: Children spawned so far.
        stopped: Whether the starter has stopped.
        marks: The highest seq each watched holder has released (``holder -> seq``).
        monitored: Every holder the starter watches: the holders, and the holders with a mark.
    """

    owner: Pid
    owner_holds: bool
    holders: frozenset[Pid]
    references: Mapping[RefKey, int]
    spurious_releases: int
    children_started: int
    stopped: bool
    # Last, with defaults: added after the others, so that older constructors still work.
    marks: Mapping[Pid, int] = attrs.field(factory=dict)
    monitored: frozenset[Pid] = frozenset()


@attrs.frozen
class StarterState:
    """The starter's whole state. Frozen: a refused event changes nothing, by construction.

    The mappings are never mutated: each step that changes one builds a new one.
    """

    owner: Pid
    # Invariant: while not stopped, owner_holds or refs is non-empty (empty <=> stopping).
    owner_holds: bool = True
    refs: Mapping[RefKey, int] = attrs.field(factory=dict)
    # Marks: the highest seq each holder has released. A holder's seqs only grow (one counter
    # per OS process, one call at a time), so an acquire at or below the mark is stale.
    # Invariant: every marked holder is monitored; HolderDown drops the mark with the monitor.
    released_hw: Mapping[Pid, int] = attrs.field(factory=dict)
    # Invariant: while not stopped, monitored == holders | marked holders (one monitor each).
    monitored: frozenset[Pid] = frozenset()
    spurious_releases: int = 0
    children_started: int = 0
    stopped: bool = False

    @property
    def holders(self) -> frozenset[Pid]:
        """Every process holding a reference, the owner included while it holds its own."""
        holders = {holder for holder, _ in self.refs}
        if self.owner_holds:
            holders.add(self.owner)
        return frozenset(holders)

    def holds(self, holder: Pid, *, counting_the_owners: bool = True) -> bool:
        """Whether ``holder`` holds any reference: one by a key, or (unless
        ``counting_the_owners`` is false) the owner's own."""
        if counting_the_owners and self.owner_holds and holder == self.owner:
            return True
        # A loop, not any(genexpr): it runs on every owner release, and a generator costs more.
        for held, _ in self.refs:  # noqa: SIM110
            if held == holder:
                return True
        return False

    def size(self) -> int:
        """How many entries the state keeps: references, marks and monitors. Bounded by the
        live holders and the references held (a regression test checks it)."""
        return len(self.refs) + len(self.released_hw) + len(self.monitored)

    def statistics(self) -> StarterStatistics:
        """This state as a ``StarterStatistics`` value."""
        return StarterStatistics(
            owner=self.owner,
            owner_holds=self.owner_holds,
            holders=self.holders,
            references=dict(self.refs),
            marks=dict(self.released_hw),
            monitored=self.monitored,
            spurious_releases=self.spurious_releases,
            children_started=self.children_started,
            stopped=self.stopped,
        )

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if the state breaks one of its invariants."""
        if not self.stopped:
            assert self.owner_holds or self.refs, f"empty reference list but not stopping: {self!r}"
            watched = self.holders | self.released_hw.keys()
            assert self.monitored == watched, (
                f"monitored {set(self.monitored)} != holders and marked holders {set(watched)}"
            )
            for holder in self.released_hw:
                assert holder in self.monitored, f"mark kept for unwatched holder {holder}"
        for (holder, key), seq in self.refs.items():
            assert type(seq) is int and seq >= 0, f"bad seq {seq!r} for {(holder, key)!r}"
        for holder, mark in self.released_hw.items():
            assert type(mark) is int and mark >= 0, f"bad mark {mark!r} for {holder}"
        assert self.spurious_releases >= 0 and self.children_started >= 0


def _evolve(state: StarterState, **changes: Any) -> StarterState:
    """``state`` with ``changes``: ``attrs.evolve`` for ``StarterState``, spelled out (the
    generic one introspects the class at each call), through the one constructor."""
    get = changes.get
    return StarterState(
        owner=get("owner", state.owner),
        owner_holds=get("owner_holds", state.owner_holds),
        refs=get("refs", state.refs),
        released_hw=get("released_hw", state.released_hw),
        monitored=get("monitored", state.monitored),
        spurious_releases=get("spurious_releases", state.spurious_releases),
        children_started=get("children_started", state.children_started),
        stopped=get("stopped", state.stopped),
    )


def initial(owner: Pid) -> tuple[StarterState, tuple[Command, ...]]:
    """The state of a new starter, whose owner holds the first reference; and its commands.

    Args:
        owner: The process that spawns the starter.

    Returns:
        The state, and ``(Monitor(owner),)``: the owner's death releases its reference.
    """
    return StarterState(owner=owner, monitored=frozenset({owner})), (Monitor(owner),)


# -- the transition function ------------------------------------------------------------------


def step(state: StarterState, event: Event) -> tuple[StarterState, tuple[Command, ...]]:
    """Apply one event; return the next state and the commands to perform, in order.

    Acquire and release are idempotent; a refused request changes nothing but is answered.
    Once the reference list is empty the starter stops (``Stop(Normal())``); the process
    exits there, so ``Refusal.STOPPED``, the answer of a stopped state, reaches no caller.
    """
    match event:
        case Acquire(holder, key, seq):
            return _acquire(state, holder, key, seq)
        case Release(holder, key, seq):
            return _release(state, holder, key, seq)
        case HolderDown(holder):
            return _holder_down(state, holder)
        case OwnerRelease(sender):
            return _owner_release(state, sender)
        case StartRequest(holder, key, seq, ref):
            return _start(state, holder, key, seq, ref)
        case Halt(reason):
            if state.stopped:
                return state, ()
            return _evolve(state, stopped=True), (Stop(reason),)
        case StrayExit():
            if state.stopped:
                return state, ()
            return _evolve(state, spurious_releases=state.spurious_releases + 1), ()
        case _:
            assert_never(event)


def acquire_and_start(
    state: StarterState, holder: Pid, key: ChildKey, seq: int, ref: Ref
) -> tuple[StarterState, tuple[Command, ...]]:
    """``step(Acquire(holder, key, seq))`` then, if the acquire was granted,
    ``step(StartRequest(holder, key, seq, ref))``, as one step (``start_new_child``).

    Returns:
        The state after both, and their commands in order without the acquire's
        ``ReplyAcquired`` (the start's ``SpawnChild`` answers the call); a refused acquire
        returns the acquire's state and commands (its refusal answers the call).
    """
    acquired, commands = _acquire(state, holder, key, seq)
    if type(commands[-1]) is not ReplyAcquired:
        return acquired, commands
    started, spawn = _start(acquired, holder, key, seq, ref)
    return started, (*commands[:-1], *spawn)


def _refuse(refusal: Refusal) -> tuple[Command, ...]:
    return (ReplyRefused(refusal),)


def _acquire(
    state: StarterState, holder: Pid, key: ChildKey, seq: int
) -> tuple[StarterState, tuple[Command, ...]]:
    if state.stopped:
        return state, _refuse(Refusal.STOPPED)
    ref_key = (holder, key)
    held = state.refs.get(ref_key)
    if held == seq:
        return state, (ReplyAcquired(holder, key, seq),)  # a duplicate: answered again
    if seq <= state.released_hw.get(holder, -1):
        # This holder has released this seq or a later one, and it acquires one reference at
        # a time: a late duplicate. Granting it would hold a reference nobody will release.
        return state, _refuse(Refusal.RELEASED)
    if held is not None and held > seq:
        return state, _refuse(Refusal.SUPERSEDED)
    # A held older seq is replaced: the holder deleted and re-added the spec before its
    # release arrived (one spec per key); that release will be counted as spurious.
    refs = dict(state.refs)
    refs[ref_key] = seq
    monitored = state.monitored
    commands: tuple[Command, ...]
    if holder in monitored:
        commands = (ReplyAcquired(holder, key, seq),)
    else:
        # A holder that is already dead (a late acquire after its Down, which dropped its
        # mark) is granted too: monitoring a dead pid delivers its Down at once, and that
        # Down drops the reference again. No record of dead holders is needed.
        monitored = monitored | {holder}
        commands = (Monitor(holder), ReplyAcquired(holder, key, seq))
    new = StarterState(
        owner=state.owner,
        owner_holds=state.owner_holds,
        refs=refs,
        released_hw=state.released_hw,
        monitored=monitored,
        spurious_releases=state.spurious_releases,
        children_started=state.children_started,
        stopped=state.stopped,
    )
    return new, commands


def _release(
    state: StarterState, holder: Pid, key: ChildKey, seq: int
) -> tuple[StarterState, tuple[Command, ...]]:
    if state.stopped:
        return state, ()
    ref_key = (holder, key)
    if state.refs.get(ref_key) != seq:
        # Not held, or another seq: a duplicate, a superseded reference, a release from a
        # holder seen down, or junk from any process. It changes nothing and leaves no trace
        # (a trace per junk release would grow without bound): a release is only sent after
        # its acquire was answered, so no acquire of it can still be on its way, except a
        # duplicate, which the mark of the release that did match refuses.
        return _evolve(state, spurious_releases=state.spurious_releases + 1), ()
    refs = dict(state.refs)
    del refs[ref_key]
    marks = state.released_hw
    if seq > marks.get(holder, -1):
        marks = {**marks, holder: seq}
    # The holder stays watched (its mark lives until its Down), so no Demonitor here.
    owner_holds = state.owner_holds
    # _stop_if_empty, inlined: one state built, not two.
    stopping = not (owner_holds or refs)
    new = StarterState(
        owner=state.owner,
        owner_holds=owner_holds,
        refs=refs,
        released_hw=marks,
        monitored=state.monitored,
        spurious_releases=state.spurious_releases,
        children_started=state.children_started,
        stopped=stopping or state.stopped,
    )
    return new, ((_STOP_NORMAL,) if stopping else ())


def _holder_down(state: StarterState, holder: Pid) -> tuple[StarterState, tuple[Command, ...]]:
    if state.stopped:
        return state, ()
    refs = {ref_key: seq for ref_key, seq in state.refs.items() if ref_key[0] != holder}
    marks = state.released_hw
    if holder in marks:
        marks = {h: mark for h, mark in marks.items() if h != holder}
    new = _evolve(
        state,
        refs=refs,
        released_hw=marks,
        monitored=state.monitored - {holder},  # the monitor has fired: nothing to undo
        owner_holds=state.owner_holds and holder != state.owner,
    )
    return _stop_if_empty(new, ())


def _owner_release(state: StarterState, sender: Pid) -> tuple[StarterState, tuple[Command, ...]]:
    if state.stopped:
        return state, _refuse(Refusal.STOPPED)
    if sender != state.owner:
        new = StarterState(
            owner=state.owner,
            owner_holds=state.owner_holds,
            refs=state.refs,
            released_hw=state.released_hw,
            monitored=state.monitored,
            spurious_releases=state.spurious_releases + 1,
            children_started=state.children_started,
            stopped=state.stopped,
        )
        return new, _refuse(Refusal.NOT_OWNER)
    if not state.owner_holds:
        return _evolve(state, spurious_releases=state.spurious_releases + 1), (_REPLY_RELEASED,)
    refs = state.refs
    monitored = state.monitored
    stopped: bool = state.stopped
    # The reply goes first: the owner hears back before the starter stops.
    commands: tuple[Command, ...]
    if not refs:
        # The owner held the last reference: the starter stops, and its exit drops every
        # monitor it holds.
        stopped = True
        commands = (_REPLY_RELEASED, _STOP_NORMAL)
    elif sender not in state.released_hw and not state.holds(sender, counting_the_owners=False):
        # The owner held only its own reference: nothing is left to watch it for.
        monitored = monitored - {sender}
        commands = (_REPLY_RELEASED, Demonitor(sender))
    else:
        commands = (_REPLY_RELEASED,)
    new = StarterState(
        owner=state.owner,
        owner_holds=False,
        refs=refs,
        released_hw=state.released_hw,
        monitored=monitored,
        spurious_releases=state.spurious_releases,
        children_started=state.children_started,
        stopped=stopped,
    )
    return new, commands


def _start(
    state: StarterState, holder: Pid, key: ChildKey, seq: int, ref: Ref
) -> tuple[StarterState, tuple[Command, ...]]:
    if state.stopped:
        return state, _refuse(Refusal.STOPPED)
    if state.refs.get((holder, key)) != seq:
        return state, _refuse(Refusal.NOT_HOLDER)
    # The requester holds a reference, so the list is not empty and the starter cannot stop
    # while this start is in flight (the Cloud Haskell hang, section 2.3 of the background).
    new = StarterState(
        owner=state.owner,
        owner_holds=state.owner_holds,
        refs=state.refs,
        released_hw=state.released_hw,
        monitored=state.monitored,
        spurious_releases=state.spurious_releases,
        children_started=state.children_started + 1,
        stopped=state.stopped,
    )
    return new, (SpawnChild(holder, key, seq, ref),)


def _stop_if_empty(
    state: StarterState, commands: tuple[Command, ...]
) -> tuple[StarterState, tuple[Command, ...]]:
    if state.owner_holds or state.refs:
        return state, commands
    return _evolve(state, stopped=True), (*commands, _STOP_NORMAL)
