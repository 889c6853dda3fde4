"""The session layer between two node incarnations: sequence numbers, epochs, verdicts.

NATS core delivers each publisher's messages in order but may drop some (slow consumers,
reconnects). This module turns a silent drop into a connection loss, as Erlang's
distribution does: every envelope carries ``(source incarnation, epoch, seq)``; a receiver
accepts exactly the next ``seq`` of the current epoch, and anything else ends the session.
Ending a session fires ``NoConnection`` on every link and monitor across it (the transport
calls ``peer_down``), and the next envelope in a new, larger epoch tells the other side to do
the same. Both sides converge on the larger epoch, so an ended session is never resumed.

Nothing here awaits, sleeps, reads a clock or logs: the transport passes the time in and
performs what the returned values say. See ADR-0006 and ADR-0007.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["Peer", "PeerState", "Received"]


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
    """

    accept: bool
    ended: bool = False
    restart: bool = False
    gap: bool = False


DROP = Received(False)
ACCEPT = Received(True)
ACCEPT_ENDED = Received(True, True)


@attrs.define(eq=False)
class Peer:
    """This node's view of one peer node, by name.

    Args:
        name: The peer's node name.
    """

    name: str
    # Invariant: None until this node has heard of an incarnation of the peer; never
    # decreases afterwards (an envelope from an earlier incarnation is dropped).
    incarnation: int | None = None
    state: PeerState = PeerState.IDLE
    # Invariant: the epoch of the live session (UP) or of the last one (IDLE); a new
    # session takes a larger one.
    epoch: int = 0
    out_seq: int = 0
    in_seq: int = 0
    last_heard: float = 0.0
    #: Whether a ``whois`` for the peer is in flight.
    resolving: bool = False
    #: What waits for the ``whois`` to finish, in the order sent.
    pending: list[Any] = attrs.field(factory=list)

    # -- sending ----------------------------------------------------------------------------

    def next_out(self) -> tuple[int, int]:
        """The (epoch, seq) of the next envelope to the peer; the session must be UP."""
        assert self.state is PeerState.UP, f"no live session with {self.name}"
        seq = self.out_seq
        self.out_seq = seq + 1
        return self.epoch, seq

    def start_session(self, now: float) -> None:
        """Open a new session, in a larger epoch than any before."""
        self.state = PeerState.UP
        self.epoch += 1
        self.out_seq = 0
        self.in_seq = 0
        self.last_heard = now

    def end_session(self) -> bool:
        """End the live session, if any; return whether one was live (then: ``peer_down``)."""
        was_up = self.state is PeerState.UP
        self.state = PeerState.IDLE
        return was_up

    # -- what the peer says about itself --------------------------------------------------

    def learn_incarnation(self, incarnation: int) -> bool:
        """The peer's current incarnation is ``incarnation`` (from a whois, a hello or an
        envelope). Return whether a live session with an earlier incarnation ended."""
        if self.incarnation is not None and incarnation <= self.incarnation:
            return False
        ended = self.end_session()
        self.incarnation = incarnation
        self.epoch = 0
        return ended

    def resolved(self, incarnation: int, now: float) -> bool:
        """A whois answered ``incarnation``: open a session unless one is live (or the answer
        is older than what is known). Return whether a live session ended."""
        ended = self.learn_incarnation(incarnation)
        if self.state is PeerState.IDLE and incarnation == self.incarnation:
            self.start_session(now)
        return ended

    def disconnected(self, incarnation: int) -> bool:
        """The server says the peer's connection closed. Return whether a session ended."""
        if incarnation != self.incarnation:
            return False
        return self.end_session()

    def expired(self, now: float, bound: float) -> bool:
        """Whether a live session has heard nothing from the peer for more than ``bound``."""
        return self.state is PeerState.UP and now - self.last_heard > bound

    # -- receiving --------------------------------------------------------------------------

    def received(self, incarnation: int, epoch: int, seq: int, now: float) -> Received:
        """Judge an envelope from the peer; update the session accordingly."""
        ended = False
        if self.incarnation is None or incarnation > self.incarnation:
            ended = self.learn_incarnation(incarnation)
        elif incarnation < self.incarnation:
            return DROP  # an earlier incarnation, still talking: it is over for us
        if self.state is PeerState.UP:
            if epoch == self.epoch:
                if seq == self.in_seq:
                    self.in_seq = seq + 1
                    self.last_heard = now
                    return ACCEPT_ENDED if ended else ACCEPT
                # A gap: something was lost. The session is over on both sides.
                self.end_session()
                self.start_session(now)
                return Received(False, True, True, True)
            if epoch < self.epoch:
                return Received(False, ended)  # from a session already over
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
        if seq != 0:
            # Its first envelopes in this epoch were lost.
            self.end_session()
            self.start_session(now)
            return Received(False, ended, True, True)
        self.in_seq = 1
        return Received(True, ended)
