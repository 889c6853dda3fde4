"""Restart-window accounting: pure functions of (window, now, limit)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from refcount_starter.supervisor import RestartLimit, RestartWindow, add_restart


def test_max_restarts_survived_then_next_exceeds() -> None:
    """The supervisor survives max_restarts restarts in the window; the next one exceeds."""
    window = RestartWindow()
    limit = RestartLimit(3, 5.0)
    for t in (0.0, 1.0, 2.0):
        window, exceeded = add_restart(window, t, limit)
        assert not exceeded
    _, exceeded = add_restart(window, 3.0, limit)
    assert exceeded


def test_intensity_zero_first_restart_exceeds() -> None:
    """With max_restarts=0 the first restart exceeds the limit."""
    _, exceeded = add_restart(RestartWindow(), 0.0, RestartLimit(0, 1.0))
    assert exceeded


def test_an_exceeding_restart_is_not_recorded() -> None:
    """Regression: a refused restart must not push a real one out of the window.

    With a restart_delay the supervisor retries instead of dying; if refused attempts were
    recorded, every retry would refresh the window and the child would never be restarted.
    """
    limit = RestartLimit(1, 1.0)
    window, exceeded = add_restart(RestartWindow(), 0.0, limit)
    assert not exceeded
    for t in (0.2, 0.4, 0.6, 0.8):
        window, exceeded = add_restart(window, t, limit)
        assert exceeded
    window, exceeded = add_restart(window, 1.1, limit)  # the real restart at 0.0 has left
    assert not exceeded


def test_old_restarts_leave_the_window() -> None:
    """A restart older than within_seconds no longer counts."""
    limit = RestartLimit(1, 5.0)
    window, exceeded = add_restart(RestartWindow(), 0.0, limit)
    assert not exceeded
    window, exceeded = add_restart(window, 5.5, limit)
    assert not exceeded
    _, exceeded = add_restart(window, 6.0, limit)
    assert exceeded


def test_restart_exactly_at_the_edge_still_counts() -> None:
    """A restart exactly within_seconds old is still in the window (now - t <= within)."""
    limit = RestartLimit(1, 5.0)
    window, _ = add_restart(RestartWindow(), 0.0, limit)
    _, exceeded = add_restart(window, 5.0, limit)
    assert exceeded


def test_window_never_holds_more_than_max_restarts() -> None:
    """However many restarts are recorded, the deque holds at most max_restarts entries."""
    window = RestartWindow()
    limit = RestartLimit(10, 1000.0)
    for t in range(10_000):
        window, _ = add_restart(window, float(t) * 0.001, limit)
    assert len(window) == 10


@given(
    st.integers(min_value=0, max_value=6),
    st.floats(min_value=0.1, max_value=10.0),
    st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=40),
)
def test_matches_the_list_model(max_restarts: int, within: float, gaps: list[float]) -> None:
    """add_restart agrees with Cloud Haskell's list model: count the recorded restarts with
    now - t <= within, and record a restart only when it does not exceed the limit."""
    limit = RestartLimit(max_restarts, within)
    window = RestartWindow()
    history: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        model = len([t for t in history if now - t <= within]) + 1 > max_restarts
        if not model:
            history.append(now)
        window, exceeded = add_restart(window, now, limit)
        assert exceeded == model
