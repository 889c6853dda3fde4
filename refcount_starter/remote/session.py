"""The session layer between two node incarnations: sequence numbers, epochs, verdicts.

NATS core delivers each publisher's messages in order but may drop some (slow consumers,
reconnects). This module turns a silent drop into a connection loss, as Erlang's
distribution does: every envelope carries ``(source incarnation, epoch, seq)``; a receiver
accepts exactly the next ``seq`` of the current epoch, and anything else ends the session.
Ending a session fires ``NoConnection`` on every link and monitor across it (the transport
calls ``peer_down``), and the next envelope in a new, larger epoch tells the other side to do
the same. Both sides converge on the larger epoch, so an ended session is never resumed.

A signal larger than the server's ``max_payload`` travels as fragments, each an envelope with
the next ``seq``; ``Peer.reassemble`` joins them in order, so a lost fragment is a gap like
any other. What all peers hold in unfinished signals is bounded together (``Reassembly``):
a peer that starts a signal and never finishes it must not hold memory for ever.

Incarnations are random (ADR-0005): they are compared for equality only. A peer's
incarnation changes at once when no session with it is live (it was seen down, or never
spoke); a claim of another incarnation while a session is live is only a hint, which the
transport checks by asking the peer itself (``whois``) before it ends anything
(``Received.verify``). So no single message from a stranger can end a live session for good.

Nothing here awaits, sleeps, reads a clock or logs: the transport passes the time in and
performs what the returned values say. See ADR-0006 and ADR-0007.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from typing import Any

import attrs

from ..runtime.errors import RefcountStarterError

__all__ = ["FragmentError", "Peer", "PeerState", "Reassembly", "Received"]


class PeerState(enum.Enum):
    """Whether a session with the peer is live."""

    #: No live session: the next send must first resolve the peer (``whois``).
    IDLE = "idle"
    #: A live session in ``Peer.epoch``: envelopes flow both ways.
    UP = "up"


@attrs.frozen
class Received:
    """The verdict on one received envelope.

    Args:
        accept: Deliver the envelope's content (it is the next in order).
        ended: A live session with the peer ended: call ``peer_down`` before delivering.
        restart: Send the peer a heartbeat now: a new session has started on this side (it
            tells a peer still in an ended session that its session is over).
        gap: The session ended because an envelope was missing.
        verify: The envelope came from another incarnation than the one with a live
            session: ask the peer (``whois``) which one is current; nothing ended.
    """

    accept: bool
    ended: bool = False
    restart: bool = False
    gap: bool = False
    verify: bool = False


class FragmentError(RefcountStarterError, ValueError):
    """Fragments that cannot make a signal: too large in all, or interrupted."""


@attrs.define(eq=False)
class Reassembly:
    """The bytes that the peers of one node hold in unfinished fragmented signals, and the
    most they may hold together.

    The transport makes room before it adds a piece (``oldest``, then ending that peer's
    session); each ``Peer`` adds and releases its own bytes. Every operation is O(1).

    Args:
        limit: The most bytes held in all.
    """

    limit: int
    # Invariant: held is the sum of the holders' fragment_bytes.
    held: int = 0
    # Invariant: exactly the peers with pieces held, in the order their first piece came.
    holders: OrderedDict[str, Peer] = attrs.field(factory=OrderedDict)

    def full(self, size: int) -> bool:
        """Whether ``size`` more bytes would exceed the limit."""
        return self.held + size > self.limit

    def oldest(self) -> Peer | None:
        """The peer whose unfinished signal started first, or None when none is held."""
        return next(iter(self.holders.values()), None)

    def add(self, peer: Peer, size: int) -> None:
        """``peer`` holds ``size`` more bytes."""
        self.held += size
        if peer.name not in self.holders:
            self.holders[peer.name] = peer

    def release(self, peer: Peer, size: int) -> None:
        """``peer`` dropped the ``size`` bytes it held."""
        if self.holders.pop(peer.name, None) is peer:
            self.held -= size


DROP = Received(False)
VERIFY = Received(False, verify=True)
ACCEPT = Received(True)


@attrs.define(eq=False)
class Peer:
    """This node's view of one peer node, by name.

    Args:
        name: The peer's node name.
        touched: When this node last had to do with the peer (for idle expiry).
    """

    name: str
    # Invariant: None until this node has heard of an incarnation of the peer. It changes
    # only while no session is live, or on the peer's own word (a whois answer).
    incarnation: int | None = None
    state: PeerState = PeerState.IDLE
    # Invariant: the epoch of the live session (UP) or of the last one (IDLE); a new
    # session takes a larger one.
    epoch: int = 0
    out_seq: int = 0
    in_seq: int = 0
    last_heard: float = 0.0
    touched: float = 0.0
    #: Whether a ``whois`` for the peer is in flight.
    resolving: bool = False
    #: Whether a ``whois`` that checks a claimed incarnation is in flight.
    verifying: bool = False
    #: When the last such check started.
    checked: float = -math.inf
    #: What waits for the ``whois`` to finish, in the order sent.
    pending: list[Any] = attrs.field(factory=list)
    #: Invariant: the pieces of the signal being reassembled, in order; empty between signals.
    fragments: list[memoryview] = attrs.field(factory=list)
    fragment_bytes: int = 0
    #: The node-wide account of unfinished signals, if any (the transport's).
    reassembly: Reassembly | None = None

    # -- sending ----------------------------------------------------------------------------

    def next_out(self) -> tuple[int, int]:
        """The (epoch, seq) of the next envelope to the peer; the session must be UP."""
        assert self.state is PeerState.UP, f"no live session with {self.name}"
        seq = self.out_seq
        self.out_seq = seq + 1
        return self.epoch, seq

    def probe_out(self) -> tuple[int, int]:
        """The (epoch, seq) of a heartbeat to the peer: the seq of the next envelope, not
        taken. A lost heartbeat therefore leaves no gap, and a heartbeat that arrives after
        a lost envelope reveals it. The session must be UP."""
        assert self.state is PeerState.UP, f"no live session with {self.name}"
        return self.epoch, self.out_seq

    def start_session(self, now: float) -> None:
        """Open a new session, in a larger epoch than any before."""
        self.state = PeerState.UP
        self.epoch += 1
        self.out_seq = 0
        self.in_seq = 0
        self.last_heard = now
        self.touched = now
        self._drop_fragments()

    def end_session(self) -> bool:
        """End the live session, if any; return whether one was live (then: ``peer_down``).

        The peer's incarnation is released with it: another one is accepted at once.
        """
        was_up = self.state is PeerState.UP
        self.state = PeerState.IDLE
        self._drop_fragments()
        return was_up

    def idle(self, now: float, timeout: float) -> bool:
        """Whether nothing ties this node to the peer and nothing happened for ``timeout``:
        no session, no whois, nothing waiting. Such a peer can be forgotten."""
        return (
            self.state is PeerState.IDLE
            and not self.resolving
            and not self.verifying
            and not self.pending
            and now - self.touched > timeout
        )

    # -- what the peer says about itself --------------------------------------------------

    def learn_incarnation(self, incarnation: int) -> bool:
        """The peer itself says its current incarnation is ``incarnation`` (a whois answer).
        Return whether a live session with another incarnation ended."""
        if incarnation == self.incarnation:
            return False
        ended = self.end_session()
        self.incarnation = incarnation
        self.epoch = 0
        return ended

    def claimed(self, incarnation: int) -> bool:
        """Someone says the peer is ``incarnation`` (a hello, a handshake). Taken at once when
        no session is live; return True when it conflicts with a live session (then the
        transport asks the peer, and ``learn_incarnation`` decides)."""
        if incarnation == self.incarnation:
            return False
        if self.state is PeerState.UP:
            return True
        self.learn_incarnation(incarnation)
        return False

    def resolved(self, incarnation: int, now: float) -> bool:
        """A whois answered ``incarnation``: open a session unless one is live. Return
        whether a live session (with another incarnation) ended."""
        ended = self.learn_incarnation(incarnation)
        if self.state is PeerState.IDLE:
            self.start_session(now)
        return ended

    def expired(self, now: float, bound: float) -> bool:
        """Whether a live session has heard nothing from the peer for more than ``bound``."""
        return self.state is PeerState.UP and now - self.last_heard > bound

    # -- receiving --------------------------------------------------------------------------

    def received(
        self, incarnation: int, epoch: int, seq: int, now: float, *, probe: bool = False
    ) -> Received:
        """Judge an envelope from the peer; update the session accordingly.

        A ``probe`` (a heartbeat) carries the seq of the peer's next envelope without taking
        it: it is accepted when nothing is missing before it, and consumes nothing.
        """
        ended = False
        taken = 0 if probe else 1
        if incarnation != self.incarnation:
            if self.state is PeerState.UP:
                return VERIFY  # a live session with another incarnation: ask, end nothing
            self.learn_incarnation(incarnation)
        if self.state is PeerState.UP:
            if epoch == self.epoch:
                if seq == self.in_seq:
                    self.in_seq = seq + taken
                    self.last_heard = now
                    return ACCEPT
                # A gap: something was lost. The session is over on both sides.
                self.end_session()
                self.start_session(now)
                return Received(False, True, True, True)
            if epoch < self.epoch:
                return DROP  # from a session already over
            # The peer ended our session and opened a new one: end ours too, join its.
            self.end_session()
            ended = True
        elif epoch <= self.epoch:
            # The peer still speaks in a session that is over here: tell it, by opening a
            # new one.
            self.start_session(now)
            return Received(False, ended, True)
        self.state = PeerState.UP
        self.epoch = epoch
        self.out_seq = 0
        self.in_seq = 0
        self.last_heard = now
        self.touched = now
        self._drop_fragments()
        if seq != 0:
            # Its first envelopes in this epoch were lost.
            self.end_session()
            self.start_session(now)
            return Received(False, ended, True, True)
        self.in_seq = taken
        return Received(True, ended)

    def reassemble(self, piece: memoryview, *, last: bool, limit: int) -> bytes | None:
        """Add the next piece of a fragmented signal (already accepted in order by
        ``received``); return the whole encoding with the last piece, else None.

        Raises:
            FragmentError: The pieces add up to more than ``limit`` bytes (they are dropped).
        """
        size = self.fragment_bytes + len(piece)
        if size > limit:
            self._drop_fragments()
            raise FragmentError(f"fragments from {self.name} add up to more than {limit} bytes")
        self.fragments.append(piece)
        self.fragment_bytes = size
        if self.reassembly is not None:
            self.reassembly.add(self, len(piece))
        if not last:
            return None
        whole = b"".join(self.fragments)
        self._drop_fragments()
        return whole

    def unfragmented(self) -> None:
        """A whole envelope (not a fragment) arrived: no signal may be half reassembled.

        Raises:
            FragmentError: The pieces of a signal were interrupted (they are dropped).
        """
        if self.fragments:
            self._drop_fragments()
            raise FragmentError(f"the fragments of a signal from {self.name} were interrupted")

    def _drop_fragments(self) -> None:
        if self.fragments:
            self.fragments = []
            if self.reassembly is not None:
                self.reassembly.release(self, self.fragment_bytes)
        self.fragment_bytes = 0
