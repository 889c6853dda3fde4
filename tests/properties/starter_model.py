"""An explicit, adversarial network around the starter's protocol, for property tests.

The world is a value: the starter's state (behind an ``Impl``: the real ``step``, or a naive
counter kept here to show that the properties catch it), the parties (the owner, index 0,
and the supervisors that hold copies of the spec), one slot per (holder, child key) spec
copy, and the messages in flight as a bag, so any of them can be delivered next
(reordering). Faults, each with a budget: duplicate a message, drop one, crash a party,
forge a start (a party asks to start a child it never acquired: it must be refused), and
partition: some supervisors are cut off from the starter until a heal (ADR-0013).

Seqs come from one counter for the whole world (the client's counter is one per OS process),
and a party makes one call at a time (a supervisor awaits each call in its loop), so each
party's seqs grow: the starter's per-holder mark relies on exactly that.

A child the starter spawns acknowledges its start straight to its supervisor, never through the
starter: the supervisor waits for it (``ACKING``), and the child may acknowledge, ask to be
ignored or fail; only when the spec goes with it (a temporary child ignored, a
``start_new_child`` whose start failed) does the supervisor send a release.

A dropped message is a lost session, as the transport promises (DESIGN section 6): every
message in flight between that party and the starter is lost with it, the party learns
that the starter is unreachable (a call in flight fails; a held reference is lost), and the
starter gets a ``Down`` for the party if it watches it (a false ``Down`` when the party is
alive). Messages from a crashed party that were already sent still arrive.

A partition cuts the session of each supervisor on the other side at once (as a drop does
for one), and while it lasts every message between them and the starter is lost: the
supervisor's call fails (``NoConnection``), the starter sees nothing. The children run on
the starter's side and are linked to their supervisor, so a child whose supervisor crashed,
was cut off or deleted it is dead; a supervisor restarts a child only after it died. The
model counts live children per (holder, key): never more than one (C1), none left once
nothing more can happen (L2), in worlds without duplicates.

Actions return a new world, or ``None`` when they are not enabled, so that the exhaustive
search and the Hypothesis state machine share them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, NamedTuple, Protocol

import attrs

from refcount_starter.runtime.pid import Pid, Ref
from refcount_starter.starter import protocol as proto

# Slot phases, from the holder's point of view.
COPY = "copy"  # has a copy of the spec, not added yet
ACQUIRING = "acquiring"  # acquire sent, waiting for the answer
HOLDING = "holding"  # holds a reference, no child started
STARTING = "starting"  # start request sent, waiting for the child's pid
ACKING = "acking"  # the child runs; the supervisor waits for its init acknowledgement
RUNNING = "running"  # holds a reference and its child runs (it acknowledged)
RELEASED = "released"  # deleted: the release signal was sent
FAILED = "failed"  # acquire refused, or the starter was gone (StarterGone)
LOST = "lost"  # a held reference lost with the connection, or a start refused

BELIEVES = (HOLDING, STARTING, ACKING, RUNNING)
WAITING = (ACQUIRING, STARTING, ACKING)

# How a child answers its start (ADR-0009): it acknowledges; it asks to be ignored or fails,
# and the spec stays (its reference held until delete_child); or it is ignored or fails and
# the spec goes with it (a temporary child, or start_new_child), which releases the reference.
CHILD_ANSWERS = ("acknowledges", "ignored", "fails", "spec dropped")

# Party states.
LIVE = "live"
CRASHED = "crashed"

# Owner phases.
O_HOLDING = "holding"
O_RELEASING = "releasing"
O_RELEASED = "released"
O_LOST = "lost"

OWNER = 0
REF = Ref("model", 1, 1)


def pid(party: int) -> Pid:
    return Pid("model", 1, party + 1)


class Impl(Protocol):
    """A starter implementation the model drives: the real protocol or a naive counter."""

    def initial(self, owner: Pid) -> tuple[Any, tuple[proto.Command, ...]]: ...
    def step(self, state: Any, event: proto.Event) -> tuple[Any, tuple[proto.Command, ...]]: ...
    def alive(self, state: Any) -> bool: ...
    def key(self, state: Any) -> Hashable: ...
    def check(self, state: Any) -> None: ...


class RealProtocol:
    """The library's protocol, as is."""

    def initial(self, owner: Pid) -> tuple[Any, tuple[proto.Command, ...]]:
        return proto.initial(owner)

    def step(self, state: Any, event: proto.Event) -> tuple[Any, tuple[proto.Command, ...]]:
        return proto.step(state, event)

    def alive(self, state: Any) -> bool:
        return not state.stopped

    def key(self, state: Any) -> Hashable:
        # children_started and spurious_releases change no decision: left out so that the
        # state space stays finite.
        return (
            state.owner_holds,
            tuple(sorted(state.refs.items())),
            tuple(sorted(state.released_hw.items())),
            state.monitored,
            state.stopped,
        )

    def check(self, state: Any) -> None:
        state.check_invariants()


class IgnoresMarks(RealProtocol):
    """A mutant: the real protocol, except that an acquire at or below its holder's mark is
    granted (as if the marks were not kept). The searches must catch it."""

    def step(self, state: Any, event: proto.Event) -> tuple[Any, tuple[proto.Command, ...]]:
        if isinstance(event, proto.Acquire):
            new, commands = proto.step(attrs.evolve(state, released_hw={}), event)
            return attrs.evolve(new, released_hw=state.released_hw), commands
        return proto.step(state, event)


class AnyoneStarts(RealProtocol):
    """A mutant: the real protocol, except that any start request is served. The forged
    starts must catch it."""

    def step(self, state: Any, event: proto.Event) -> tuple[Any, tuple[proto.Command, ...]]:
        if isinstance(event, proto.StartRequest) and not state.stopped:
            return state, (proto.SpawnChild(event.holder, event.key, event.seq, event.ref),)
        return proto.step(state, event)


class IgnoresDown(RealProtocol):
    """A mutant: the real protocol, except that a holder's ``Down`` drops nothing (as if the
    references of holders cut off by a partition were kept). The partition searches must
    catch it."""

    def step(self, state: Any, event: proto.Event) -> tuple[Any, tuple[proto.Command, ...]]:
        if isinstance(event, proto.HolderDown) and event.holder != state.owner:
            return state, ()
        return proto.step(state, event)

    def check(self, state: Any) -> None:
        pass  # its monitors no longer match its holders; the leak is what must show


class NaiveCounter:
    """A bare integer count, the design the original discussion feared (option 2 done badly):
    anonymous increments and decrements, holders not monitored."""

    def initial(self, owner: Pid) -> tuple[Any, tuple[proto.Command, ...]]:
        return 1, ()

    def step(self, state: Any, event: proto.Event) -> tuple[Any, tuple[proto.Command, ...]]:
        count: int = state
        match event:
            case proto.Acquire(holder, key, seq):
                return count + 1, (proto.ReplyAcquired(holder, key, seq),)
            case proto.Release() | proto.OwnerRelease():
                reply: tuple[proto.Command, ...] = ()
                if isinstance(event, proto.OwnerRelease):
                    reply = (proto.ReplyReleased(),)
                count -= 1
                return count, reply + ((proto.Stop(proto.Normal()),) if count == 0 else ())
            case proto.StartRequest(holder, key, seq, ref):
                return count, (proto.SpawnChild(holder, key, seq, ref),)
            case _:
                return count, ()

    def alive(self, state: Any) -> bool:
        return bool(state > 0)

    def key(self, state: Any) -> Hashable:
        return int(state)

    def check(self, state: Any) -> None:
        assert state >= 0, f"negative count {state}"


class Slot(NamedTuple):
    holder: int
    key: str
    phase: str
    seq: int


# A message: (kind, party, slot index or -1, seq). Kinds to the starter: acq, rel, start,
# fstart (a forged start), orel, down; to a party: ack, nack, started, nstart, oreleased,
# fanswer (the answer to a forged start, ignored).
Msg = tuple[str, int, int, int]


class World(NamedTuple):
    state: Any
    alive: bool
    watched: frozenset[int]
    parties: tuple[str, ...]
    owner: str
    slots: tuple[Slot, ...]
    net: tuple[Msg, ...]
    dups: int
    drops: int
    crashes: int
    retries: int
    readds: int
    starts: int
    forgeries: int
    next_seq: int
    violation: str
    #: Supervisors cut off from the starter now (a partition not healed yet).
    cut: frozenset[int] = frozenset()
    partitions: int = 0
    #: Live children per slot (per holder and key), counted where the network does not
    #: duplicate (the session layer never does, ADR-0006): a start request is not
    #: idempotent, so a duplicated one would start a second child by design.
    children: tuple[int, ...] = ()
    count_children: bool = False


def new_world(
    impl: Impl,
    *,
    holders: int = 0,
    slots: tuple[tuple[int, str], ...] = (),
    dups: int = 0,
    drops: int = 0,
    crashes: int = 0,
    retries: int = 0,
    readds: int = 0,
    starts: int = 0,
    forgeries: int = 0,
    partitions: int = 0,
    count_children: bool | None = None,
) -> World:
    state, commands = impl.initial(pid(OWNER))
    world = World(
        state=state,
        alive=True,
        watched=frozenset(),
        parties=(LIVE,) * (holders + 1),
        owner=O_HOLDING,
        slots=tuple(Slot(h, k, COPY, 0) for h, k in slots),
        net=(),
        dups=dups,
        drops=drops,
        crashes=crashes,
        retries=retries,
        readds=readds,
        starts=starts,
        forgeries=forgeries,
        next_seq=1,
        violation="",
        partitions=partitions,
        children=(0,) * len(slots),
        count_children=dups == 0 if count_children is None else count_children,
    )
    return _perform(impl, world, commands, None)


def add_party(world: World) -> tuple[World, int]:
    """A new supervisor joins; return the world and its party index."""
    return world._replace(parties=(*world.parties, LIVE)), len(world.parties)


def add_slot(world: World, holder: int, key: str) -> World:
    """``holder`` receives a copy of the spec for ``key`` (once per holder and key)."""
    if any(s.holder == holder and s.key == key for s in world.slots):
        return world
    return world._replace(slots=(*world.slots, Slot(holder, key, COPY, 0)), children=(*world.children, 0))


def key(impl: Impl, world: World) -> Hashable:
    return (impl.key(world.state), *world[1:])


# -- helpers ------------------------------------------------------------------------------


def _send(world: World, *msgs: Msg) -> World:
    return world._replace(net=tuple(sorted(world.net + msgs)))


def _set_slot(world: World, index: int, **changes: Any) -> World:
    slots = list(world.slots)
    slots[index] = slots[index]._replace(**changes)
    return world._replace(slots=tuple(slots))


def _children_die(world: World, party: int, slot: int | None = None) -> World:
    """The children of ``party`` (of one slot, or all of them) are dead."""
    children = tuple(
        0 if s.holder == party and slot in (None, index) else count
        for index, (s, count) in enumerate(zip(world.slots, world.children, strict=True))
    )
    return world._replace(children=children)


def _party_index(p: Pid) -> int:
    return p.serial - 1


def _to_starter(kind: str) -> bool:
    return kind in ("acq", "rel", "start", "fstart", "orel", "down")


#: The answer a caller gets when its call is refused (or the starter is gone).
_REFUSED = {"acq": "nack", "start": "nstart", "fstart": "fanswer", "orel": "oreleased"}


def _busy(world: World, party: int) -> bool:
    """Whether ``party`` waits for the answer to a call (it makes one at a time)."""
    return any(s.holder == party and s.phase in WAITING for s in world.slots)


def _perform(impl: Impl, world: World, commands: tuple[proto.Command, ...], msg: Msg | None) -> World:
    """Carry out the starter's commands; ``msg`` is the message being answered."""
    for command in commands:
        match command:
            case proto.Monitor(holder):
                party = _party_index(holder)
                world = world._replace(watched=world.watched | {party})
                if world.parties[party] == CRASHED:
                    world = _send(world, ("down", party, -1, 0))  # NoProc, at once
            case proto.Demonitor(holder):
                party = _party_index(holder)
                net = tuple(m for m in world.net if m != ("down", party, -1, 0))  # flushed
                world = world._replace(watched=world.watched - {party}, net=net)
            case proto.ReplyAcquired():
                assert msg is not None
                world = _send(world, ("ack", msg[1], msg[2], msg[3]))
            case proto.ReplyRefused():
                assert msg is not None
                world = _send(world, (_REFUSED[msg[0]], msg[1], msg[2], msg[3]))
            case proto.ReplyReleased():
                assert msg is not None
                world = _send(world, ("oreleased", msg[1], -1, 0))
            case proto.SpawnChild():
                assert msg is not None
                answer = "started" if msg[0] == "start" else "fanswer"
                world = _send(world, (answer, msg[1], msg[2], msg[3]))
                party, slot = msg[1], msg[2]
                alive = world.parties[party] == LIVE and party not in world.cut
                if answer == "started" and alive and world.count_children:
                    # Linked to a live, reachable supervisor: it runs (else it dies at once).
                    children = list(world.children)
                    children[slot] += 1
                    world = world._replace(children=tuple(children))
            case proto.Stop():
                world = world._replace(alive=False, watched=frozenset())
            case _:
                raise AssertionError(f"unexpected command {command!r}")
    return world


def _event(world: World, msg: Msg) -> proto.Event:
    kind, party, slot, seq = msg
    key = world.slots[slot].key if slot >= 0 else ""
    if kind == "acq":
        return proto.Acquire(pid(party), key, seq)
    if kind == "rel":
        return proto.Release(pid(party), key, seq)
    if kind in ("start", "fstart"):
        return proto.StartRequest(pid(party), key, seq, REF)
    if kind == "orel":
        return proto.OwnerRelease(pid(party))
    assert kind == "down"
    return proto.HolderDown(pid(party))


def _at_starter(impl: Impl, world: World, msg: Msg) -> World:
    kind, party, slot, seq = msg
    if not world.alive:
        # The caller's monitor answers for a dead starter (NoProc); signals go nowhere.
        answer = _REFUSED.get(kind)
        return _send(world, (answer, party, slot, seq)) if answer else world
    if kind == "down":
        world = world._replace(watched=world.watched - {party})
    state, commands = impl.step(world.state, _event(world, msg))
    current = world.parties[party] == LIVE and slot >= 0 and world.slots[slot][2:]
    if kind == "start" and current == (STARTING, seq):
        # A start from a holder that still holds must never be refused (or hang).
        if not any(isinstance(c, proto.SpawnChild) for c in commands):
            world = world._replace(violation=f"start of live holder {party} refused: {commands}")
    elif kind == "acq" and current == (ACQUIRING, seq):
        # The acquire a live supervisor is waiting for is never stale: never refused.
        if any(isinstance(c, proto.ReplyRefused) for c in commands):
            world = world._replace(violation=f"current acquire of live holder {party} refused: {commands}")
    elif kind == "fstart" and any(isinstance(c, proto.SpawnChild) for c in commands):
        world = world._replace(violation=f"forged start of non-holder {party} served: {commands}")
    world = world._replace(state=state)
    world = _perform(impl, world, commands, msg)
    return world._replace(alive=impl.alive(world.state) and world.alive)


def _at_party(world: World, msg: Msg) -> World:
    kind, party, slot, seq = msg
    if world.parties[party] != LIVE:
        return world
    if kind == "oreleased":
        return world._replace(owner=O_RELEASED) if world.owner == O_RELEASING else world
    if kind == "fanswer":
        return world
    phase, held_seq = world.slots[slot][2:]
    if held_seq != seq:
        return world  # an answer to an older request
    changes = {
        ("ack", ACQUIRING): HOLDING,
        ("nack", ACQUIRING): FAILED,
        ("started", STARTING): ACKING,
        ("nstart", STARTING): LOST,
    }
    new_phase = changes.get((kind, phase))
    return world if new_phase is None else _set_slot(world, slot, phase=new_phase)


def _cut(impl: Impl, world: World, party: int) -> World:
    """The session between ``party`` and the starter is lost (its children's links fire)."""
    net = tuple(m for m in world.net if m[1] != party or m[0] == "down")
    world = _children_die(world._replace(net=net), party)
    if world.alive and party in world.watched and world.parties[party] == LIVE:
        # A false Down (the party is alive). The starter's node sees the session end
        # before any message of a later session from that party, so it comes first.
        world = _at_starter(impl, world, ("down", party, -1, 0))
    if party == OWNER:
        owner = {O_HOLDING: O_LOST, O_RELEASING: O_RELEASED}.get(world.owner, world.owner)
        world = world._replace(owner=owner)
    for index, slot in enumerate(world.slots):
        if slot.holder == party:
            if slot.phase == ACQUIRING:
                world = _set_slot(world, index, phase=FAILED)
            elif slot.phase in BELIEVES:
                world = _set_slot(world, index, phase=LOST)
    return world


# -- actions -------------------------------------------------------------------------------


def add(world: World, slot: int) -> World | None:
    """A supervisor adds its copy of the spec: it acquires a reference."""
    s = world.slots[slot]
    if s.phase != COPY or world.parties[s.holder] != LIVE or _busy(world, s.holder):
        return None
    seq = world.next_seq
    world = _set_slot(world._replace(next_seq=seq + 1), slot, phase=ACQUIRING, seq=seq)
    return _send(world, ("acq", s.holder, slot, seq))


def retry_acquire(world: World, slot: int) -> World | None:
    """A supervisor that timed out resends its acquire (same seq)."""
    s = world.slots[slot]
    if s.phase != ACQUIRING or world.retries == 0 or world.parties[s.holder] != LIVE:
        return None
    return _send(world._replace(retries=world.retries - 1), ("acq", s.holder, slot, s.seq))


def start(world: World, slot: int) -> World | None:
    """A holder (re)starts its child through the starter."""
    s = world.slots[slot]
    if s.phase not in (HOLDING, RUNNING) or world.starts == 0 or world.parties[s.holder] != LIVE:
        return None
    if _busy(world, s.holder):
        return None
    # A restart: the child died first (that is why it is restarted).
    world = _children_die(world._replace(starts=world.starts - 1), s.holder, slot)
    return _send(_set_slot(world, slot, phase=STARTING), ("start", s.holder, slot, s.seq))


def child_answers(world: World, slot: int, answer: str) -> World | None:
    """The child of ``slot`` answers its start to its supervisor (not through the starter)."""
    s = world.slots[slot]
    if s.phase != ACKING or world.parties[s.holder] != LIVE:
        return None
    if answer == "acknowledges":
        return _set_slot(world, slot, phase=RUNNING)
    # Ignored or failed, the child is not running any more.
    world = _children_die(world, s.holder, slot)
    if answer in ("ignored", "fails"):
        return _set_slot(world, slot, phase=HOLDING)  # the spec stays, and its reference
    assert answer == "spec dropped"
    return _send(_set_slot(world, slot, phase=RELEASED), ("rel", s.holder, slot, s.seq))


def delete(world: World, slot: int) -> World | None:
    """A holder deletes its spec: the release signal ``Shutdown((key, seq))``."""
    s = world.slots[slot]
    if s.phase not in (HOLDING, RUNNING) or world.parties[s.holder] != LIVE or _busy(world, s.holder):
        return None
    world = _children_die(world, s.holder, slot)  # terminate_child, then delete_child
    return _send(_set_slot(world, slot, phase=RELEASED), ("rel", s.holder, slot, s.seq))


def retry_release(world: World, slot: int) -> World | None:
    """A holder sends its release again (a retry or a duplicate delete)."""
    s = world.slots[slot]
    if s.phase != RELEASED or world.retries == 0 or world.parties[s.holder] != LIVE:
        return None
    return _send(world._replace(retries=world.retries - 1), ("rel", s.holder, slot, s.seq))


def readd(world: World, slot: int) -> World | None:
    """A supervisor adds the same key again after deleting it or failing (a new seq)."""
    s = world.slots[slot]
    if s.phase not in (RELEASED, FAILED, LOST) or world.readds == 0 or world.parties[s.holder] != LIVE:
        return None
    if _busy(world, s.holder):
        return None
    seq = world.next_seq
    world = world._replace(readds=world.readds - 1, next_seq=seq + 1)
    return _send(_set_slot(world, slot, phase=ACQUIRING, seq=seq), ("acq", s.holder, slot, seq))


def forge_start(world: World, party: int, slot: int) -> World | None:
    """``party`` asks to start the child of ``slot`` with a seq it never acquired: another
    holder's seq, or 0 (never issued) for its own slot. The starter must refuse it."""
    s = world.slots[slot]
    if world.forgeries == 0 or world.parties[party] != LIVE:
        return None
    seq = s.seq if party != s.holder else 0
    return _send(world._replace(forgeries=world.forgeries - 1), ("fstart", party, slot, seq))


def owner_release(world: World) -> World | None:
    """The owner lets go of its first reference."""
    if world.owner != O_HOLDING or world.parties[OWNER] != LIVE:
        return None
    return _send(world._replace(owner=O_RELEASING), ("orel", OWNER, -1, 0))


def crash(world: World, party: int) -> World | None:
    """A party (the owner or a supervisor) crashes; a watching starter gets its Down."""
    if world.crashes == 0 or world.parties[party] != LIVE:
        return None
    parties = list(world.parties)
    parties[party] = CRASHED
    world = _children_die(world._replace(parties=tuple(parties), crashes=world.crashes - 1), party)
    if world.alive and party in world.watched:
        world = _send(world, ("down", party, -1, 0))
    return world


def deliver(impl: Impl, world: World, index: int) -> World:
    """Deliver message ``index`` of the bag (any of them: reordering)."""
    msg = world.net[index]
    world = world._replace(net=world.net[:index] + world.net[index + 1 :])
    if msg[1] in world.cut and msg[0] != "down":
        # Across the partition: lost, and the sender's call fails with NoConnection.
        return _cut(impl, world, msg[1])
    if _to_starter(msg[0]):
        return _at_starter(impl, world, msg)
    return _at_party(world, msg)


def partition(impl: Impl, world: World, side: frozenset[int]) -> World | None:
    """The supervisors in ``side`` are cut off from the starter (and its node, where the
    owner and the children run): each one's session ends at once, as after the detection
    bound (their calls fail; the starter gets a false ``Down`` for each one it watches; their
    children die with their links)."""
    if world.partitions == 0 or world.cut or OWNER in side:
        return None
    world = world._replace(partitions=world.partitions - 1, cut=side)
    for party in sorted(side):
        world = _cut(impl, world, party)
    return world


def heal(world: World) -> World | None:
    """The partition heals: the supervisors cut off can reach the starter again (in new
    sessions; a reference they lost must be acquired again)."""
    if not world.cut:
        return None
    return world._replace(cut=frozenset())


def duplicate(world: World, index: int) -> World | None:
    """The network delivers message ``index`` twice."""
    if world.dups == 0:
        return None
    return _send(world._replace(dups=world.dups - 1), world.net[index])


def drop(impl: Impl, world: World, index: int) -> World | None:
    """The network loses message ``index``: the session with its party ends."""
    msg = world.net[index]
    if world.drops == 0 or msg[0] == "down":
        return None  # a Down is made by the watcher's own node, not carried
    world = world._replace(drops=world.drops - 1, net=world.net[:index] + world.net[index + 1 :])
    return _cut(impl, world, msg[1])


# -- properties ------------------------------------------------------------------------------


def believers(world: World) -> list[str]:
    """The live parties that believe they hold a reference."""
    out = [
        f"holder {s.holder} key {s.key!r}"
        for s in world.slots
        if s.phase in BELIEVES and world.parties[s.holder] == LIVE
    ]
    if world.owner == O_HOLDING and world.parties[OWNER] == LIVE:
        out.append("the owner")
    return out


def check_safety(impl: Impl, world: World) -> None:
    """S1 (no premature stop), S2 (the state's invariants), and no refused holder start."""
    assert not world.violation, world.violation
    crowded = [s for s, count in zip(world.slots, world.children, strict=True) if count > 1]
    assert not crowded, f"C1: more than one live child for {crowded}"
    if not world.alive:
        held = believers(world)
        assert not held, f"S1: the starter stopped while {held} hold it"
    else:
        impl.check(world.state)


def check_quiescent(world: World) -> None:
    """L1 (no leak) and no hang, once nothing more can happen."""
    assert not world.net
    waiting = [s for s in world.slots if s.phase in WAITING and world.parties[s.holder] == LIVE]
    assert not waiting, f"calls never answered: {waiting}"
    assert not world.alive, f"L1: the starter leaked; slots {world.slots}, owner {world.owner}"
    assert not any(world.children), f"L2: children left running: {world.children} for {world.slots}"


def successors(impl: Impl, world: World) -> Iterator[tuple[str, World]]:
    """Every enabled action, with a label for traces."""
    for index, s in enumerate(world.slots):
        who = f"H{s.holder}/{s.key}"
        for name, action in (
            ("add", add),
            ("retry acquire", retry_acquire),
            ("start", start),
            ("delete", delete),
            ("retry release", retry_release),
            ("re-add", readd),
        ):
            nxt = action(world, index)
            if nxt is not None:
                yield f"{who} {name}", nxt
        for answer in CHILD_ANSWERS:
            if (nxt := child_answers(world, index, answer)) is not None:
                yield f"{who} child {answer}", nxt
    if world.forgeries:
        for party in range(len(world.parties)):
            for index in range(len(world.slots)):
                if (nxt := forge_start(world, party, index)) is not None:
                    yield f"{'owner' if party == OWNER else f'H{party}'} FORGES start of slot {index}", nxt
    nxt = owner_release(world)
    if nxt is not None:
        yield "owner release", nxt
    if world.partitions:
        holders = range(1, len(world.parties))
        for side in {frozenset([h]) for h in holders} | {frozenset(holders)}:
            if (nxt := partition(impl, world, side)) is not None:
                yield f"PARTITION {sorted(side)}", nxt
    if (nxt := heal(world)) is not None:
        yield "HEAL", nxt
    for party in range(len(world.parties)):
        nxt = crash(world, party)
        if nxt is not None:
            yield f"{'owner' if party == OWNER else f'H{party}'} CRASH", nxt
    for index, msg in enumerate(world.net):
        if index and world.net[index - 1] == msg:
            continue  # identical messages give identical successors
        label = f"{msg[0]}({msg[1]},{msg[2]},{msg[3]})"
        yield f"deliver {label}", deliver(impl, world, index)
        if (nxt := duplicate(world, index)) is not None:
            yield f"DUPLICATE {label}", nxt
        if (nxt := drop(impl, world, index)) is not None:
            yield f"DROP {label}", nxt


def settle(impl: Impl, world: World) -> World:
    """Drive to quiescence without faults: every live party finishes, every message arrives."""
    world = world._replace(
        dups=0, drops=0, crashes=0, retries=0, readds=0, starts=0, forgeries=0, partitions=0, cut=frozenset()
    )
    for _ in range(10_000):
        progressed = False
        if (nxt := owner_release(world)) is not None:
            world, progressed = nxt, True
        for index in range(len(world.slots)):
            if (nxt := child_answers(world, index, "acknowledges")) is not None:
                world, progressed = nxt, True
            for action in (add, delete):
                if (nxt := action(world, index)) is not None:
                    world, progressed = nxt, True
        while world.net:
            world = deliver(impl, world, 0)
            check_safety(impl, world)
            progressed = True
        if not progressed:
            return world
    raise AssertionError("the model did not settle")
