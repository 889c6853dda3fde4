"""The session layer (sans-IO): a lost envelope always ends the session, on both sides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcount_starter.remote.session import FragmentError, Peer, PeerState, Reassembly

A_INC, B_INC = 1, 2


def pair() -> tuple[Peer, Peer]:
    """A's view of b with a live session, and b's view of a (nothing heard yet)."""
    a_sees_b, b_sees_a = Peer("b"), Peer("a")
    assert a_sees_b.resolved(B_INC, 0.0) is False
    return a_sees_b, b_sees_a


@given(st.lists(st.booleans(), max_size=40))
def test_no_envelope_is_lost_silently(deliveries: list[bool]) -> None:
    """Whatever a drops, b accepts nothing after a loss until both sides have ended the session."""
    a_sees_b, b_sees_a = pair()
    lost = False
    for delivered in deliveries:
        epoch, seq = a_sees_b.next_out()
        if not delivered:
            lost = True
            continue
        verdict = b_sees_a.received(A_INC, epoch, seq, 0.0)
        if verdict.gap:
            assert lost
            assert verdict.restart
            # b's heartbeat in its new epoch reaches a, which ends its side.
            answer = a_sees_b.received(B_INC, *b_sees_a.next_out(), 0.0)
            assert answer.ended
            assert answer.accept
            lost = False
        if verdict.accept:
            assert not lost, "an envelope was accepted after a silent loss"


@given(st.lists(st.booleans(), min_size=1, max_size=20))
def test_sessions_converge_after_any_losses(deliveries: list[bool]) -> None:
    """After losses and the restart they cause, the next envelope is accepted again."""
    a_sees_b, b_sees_a = pair()
    for delivered in deliveries:
        epoch, seq = a_sees_b.next_out()
        if delivered:
            verdict = b_sees_a.received(A_INC, epoch, seq, 0.0)
            if verdict.restart:
                a_sees_b.received(B_INC, *b_sees_a.next_out(), 0.0)
    epoch, seq = a_sees_b.next_out()
    verdict = b_sees_a.received(A_INC, epoch, seq, 0.0)
    if verdict.restart:
        a_sees_b.received(B_INC, *b_sees_a.next_out(), 0.0)
        epoch, seq = a_sees_b.next_out()
        verdict = b_sees_a.received(A_INC, epoch, seq, 0.0)
    assert verdict.accept
    assert a_sees_b.epoch == b_sees_a.epoch


def test_a_session_ended_here_is_never_resumed() -> None:
    """After b declares a down, a's envelopes of the old session are dropped and a is told."""
    a_sees_b, b_sees_a = pair()
    assert b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0).accept
    assert b_sees_a.end_session()  # heartbeats missed: peer_down(a) on b
    verdict = b_sees_a.received(A_INC, *a_sees_b.next_out(), 10.0)
    assert not verdict.accept and verdict.restart and not verdict.ended
    answer = a_sees_b.received(B_INC, *b_sees_a.next_out(), 10.0)
    assert answer.ended, "a must fire NoConnection for the session b ended"


def test_another_incarnation_during_a_live_session_is_checked_not_believed() -> None:
    """An envelope or a claim from another incarnation while a session is live ends nothing:
    the peer is asked (verify); only its own answer ends the session with the old one."""
    a_sees_b, b_sees_a = pair()
    fresh = Peer("b")
    fresh.resolved(B_INC, 0.0)
    assert b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0).accept
    forged = b_sees_a.received(2**62, *fresh.next_out(), 0.0)
    assert forged.verify and not forged.ended and not forged.accept
    assert b_sees_a.claimed(2**62) is True  # a hello: check it
    assert b_sees_a.state is PeerState.UP and b_sees_a.incarnation == A_INC
    assert b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0).accept
    # The peer itself answers a whois with its new incarnation (it restarted).
    assert b_sees_a.learn_incarnation(A_INC + 7) is True
    restarted = Peer("b")
    restarted.resolved(B_INC, 0.0)
    assert b_sees_a.received(A_INC + 7, *restarted.next_out(), 0.0).accept
    old = b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0)
    assert old.verify and not old.accept


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_peer_seen_down_releases_its_incarnation(successor: int) -> None:
    """Once a peer's session ended, any other incarnation, smaller or larger, is accepted at
    once: incarnations are compared for equality only."""
    a_sees_b, b_sees_a = pair()
    assert b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0).accept
    assert b_sees_a.end_session()  # seen down: goodbye, advisory or heartbeats
    fresh = Peer("b")
    fresh.resolved(B_INC, 0.0)
    verdict = b_sees_a.received(successor, *fresh.next_out(), 1.0)
    if successor == A_INC:
        # The same incarnation, speaking in a session over here: it is told so.
        assert verdict.restart and not verdict.accept
    else:
        assert verdict.accept and not verdict.verify and not verdict.ended
        assert b_sees_a.incarnation == successor


def test_a_claim_is_taken_at_once_without_a_live_session() -> None:
    """A hello or a handshake naming another incarnation replaces the known one when no
    session is live, and asks for a check when one is."""
    peer = Peer("a")
    assert peer.claimed(5) is False and peer.incarnation == 5
    assert peer.claimed(3) is False and peer.incarnation == 3
    peer.resolved(3, 0.0)
    assert peer.claimed(9) is True and peer.incarnation == 3


@given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=20))
def test_fragments_reassemble_in_order(pieces: list[bytes]) -> None:
    """The pieces of a signal come back joined, in order, with the last one; not before."""
    peer = Peer("a")
    for piece in pieces[:-1]:
        assert peer.reassemble(memoryview(piece), last=False, limit=10_000) is None
    assert peer.reassemble(memoryview(pieces[-1]), last=True, limit=10_000) == b"".join(pieces)
    assert peer.fragments == [] and peer.fragment_bytes == 0
    peer.unfragmented()  # nothing half done


def test_fragments_beyond_the_limit_or_interrupted_are_refused() -> None:
    """More than the limit in pieces, or a whole envelope between pieces, is a FragmentError,
    and what was gathered is dropped."""
    peer = Peer("a")
    peer.reassemble(memoryview(b"x" * 60), last=False, limit=100)
    with pytest.raises(FragmentError, match="more than 100 bytes"):
        peer.reassemble(memoryview(b"x" * 60), last=False, limit=100)
    assert peer.fragment_bytes == 0
    peer.reassemble(memoryview(b"y"), last=False, limit=100)
    with pytest.raises(FragmentError, match="interrupted"):
        peer.unfragmented()
    assert peer.fragments == []


def test_an_ended_session_drops_a_half_reassembled_signal() -> None:
    """Pieces gathered in a session that ends are not joined with those of the next one."""
    peer = Peer("a")
    peer.resolved(1, 0.0)
    peer.reassemble(memoryview(b"old"), last=False, limit=100)
    peer.end_session()
    peer.start_session(1.0)
    assert peer.reassemble(memoryview(b"new"), last=True, limit=100) == b"new"


def test_only_a_peer_with_nothing_going_on_is_idle() -> None:
    """A peer is idle (forgettable) only without a session, a whois, or anything waiting."""
    peer = Peer("a", touched=0.0)
    assert peer.idle(10.0, 5.0) and not peer.idle(4.0, 5.0)
    peer.resolving = True
    assert not peer.idle(10.0, 5.0)
    peer.resolving = False
    peer.resolved(1, 0.0)
    assert not peer.idle(100.0, 5.0)
    peer.end_session()
    assert peer.idle(100.0, 5.0)


def test_silence_beyond_the_bound_expires_the_session() -> None:
    """A live session expires when nothing was heard for longer than the bound."""
    a_sees_b, _ = pair()
    assert not a_sees_b.expired(1.0, 1.5)
    assert a_sees_b.expired(1.6, 1.5)
    a_sees_b.end_session()
    assert a_sees_b.state is PeerState.IDLE
    assert not a_sees_b.expired(100.0, 1.5)


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40))
def test_heartbeats_take_no_seq_and_reveal_every_loss(sends: list[tuple[bool, bool]]) -> None:
    """A lost heartbeat leaves no gap (a session survives a reconnect that lost only
    heartbeats), and a heartbeat after a lost signal ends the session (ADR-0013)."""
    a_sees_b, b_sees_a = pair()
    lost_signal = False
    for is_heartbeat, delivered in sends:
        epoch, seq = a_sees_b.probe_out() if is_heartbeat else a_sees_b.next_out()
        if not delivered:
            lost_signal = lost_signal or not is_heartbeat
            continue
        verdict = b_sees_a.received(A_INC, epoch, seq, 0.0, probe=is_heartbeat)
        if lost_signal:
            assert verdict.gap and not verdict.accept, "an envelope was accepted after a lost signal"
            return
        assert verdict.accept and not verdict.gap
        assert b_sees_a.state is PeerState.UP


def test_a_first_heartbeat_opens_the_session_without_taking_a_seq() -> None:
    """A new session's first envelope may be a heartbeat; the first signal after it is seq 0."""
    a_sees_b, b_sees_a = pair()
    assert b_sees_a.received(A_INC, *a_sees_b.probe_out(), 0.0, probe=True).accept
    assert b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0).accept
    assert b_sees_a.received(A_INC, *a_sees_b.probe_out(), 0.0, probe=True).accept


def test_the_reassembly_account_holds_the_unfinished_signals_of_every_peer_oldest_first() -> None:
    """Pieces held by several peers add up in one account, which names the peer whose
    unfinished signal started first; a finished signal, a dropped one and an ended session
    each release their bytes."""
    account = Reassembly(limit=100)
    peers = [Peer(name, reassembly=account) for name in ("p0", "p1", "p2")]
    for peer in peers:
        peer.start_session(0.0)
    peers[1].reassemble(memoryview(b"x" * 30), last=False, limit=1_000)
    peers[0].reassemble(memoryview(b"x" * 30), last=False, limit=1_000)
    peers[1].reassemble(memoryview(b"x" * 30), last=False, limit=1_000)
    assert account.held == 90 and account.oldest() is peers[1]
    assert account.full(11) and not account.full(10)
    assert peers[1].end_session()
    assert account.held == 30 and account.oldest() is peers[0]
    peers[2].reassemble(memoryview(b"x" * 5), last=False, limit=1_000)
    assert peers[0].reassemble(memoryview(b"y"), last=True, limit=1_000) == b"x" * 30 + b"y"
    assert account.held == 5 and account.oldest() is peers[2]
    with pytest.raises(FragmentError):
        peers[2].unfragmented()
    assert account.held == 0 and account.oldest() is None and not account.holders
