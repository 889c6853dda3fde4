"""The session layer (sans-IO): a lost envelope always ends the session, on both sides."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from refcount_starter.remote.session import Peer, PeerState

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


def test_a_new_incarnation_ends_the_session_with_the_old_one() -> None:
    """An envelope from a later incarnation ends the live session with the earlier one."""
    a_sees_b, b_sees_a = pair()
    fresh = Peer("a")
    fresh.resolved(B_INC, 0.0)
    b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0)
    verdict = b_sees_a.received(A_INC + 1, *fresh.next_out(), 0.0)
    assert verdict.ended and verdict.accept
    assert b_sees_a.incarnation == A_INC + 1
    old = b_sees_a.received(A_INC, *a_sees_b.next_out(), 0.0)
    assert not old.accept and not old.restart


def test_silence_beyond_the_bound_expires_the_session() -> None:
    """A live session expires when nothing was heard for longer than the bound."""
    a_sees_b, _ = pair()
    assert not a_sees_b.expired(1.0, 1.5)
    assert a_sees_b.expired(1.6, 1.5)
    a_sees_b.end_session()
    assert a_sees_b.state is PeerState.IDLE
    assert not a_sees_b.expired(100.0, 1.5)
