"""Restart-window accounting: how many restarts happened within the last ``within_seconds``.

Nothing here reads a clock: the time comes in as an argument (OTP's
``add_restart(Restarts, Now, Period)``). The window is a deque of timestamps, oldest first,
that never holds more than ``max_restarts`` entries, so recording a restart costs O(1)
amortised however many restarts the limit allows (OTP 25 walks its whole list each time).
"""

from __future__ import annotations

from collections import deque

from .strategy import RestartLimit

__all__ = ["RestartWindow", "add_restart"]


class RestartWindow:
    """The timestamps of the restarts still in the window, oldest first."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        # Invariant: non-decreasing (for a non-decreasing clock) and at most max_restarts long.
        self.times: deque[float] = deque()

    def __len__(self) -> int:
        return len(self.times)

    def __repr__(self) -> str:
        return f"RestartWindow({list(self.times)!r})"


def add_restart(window: RestartWindow, now: float, limit: RestartLimit) -> tuple[RestartWindow, bool]:
    """Record a restart at ``now``; say whether it exceeds ``limit``.

    A restart at time ``t`` stays in the window while ``now - t <= within_seconds``; the
    restart being recorded counts, so ``max_restarts + 1`` restarts within the window
    exceed the limit (OTP: the supervisor survives ``MaxR`` restarts, the next one stops it).
    A restart that exceeds the limit is not recorded.

    Args:
        window: The window; it is updated in place and returned.
        now: The current time, in seconds, from a monotonic clock.
        limit: The restart limit.

    Returns:
        ``(window, exceeded)``.
    """
    times = window.times
    within = limit.within_seconds
    while times and now - times[0] > within:
        times.popleft()
    if len(times) >= limit.max_restarts:
        # One more would exceed the limit: it is refused, not recorded (Cloud Haskell's
        # addRestart). Recording it would push a real restart out and keep a child with a
        # restart_delay retrying for ever.
        return window, True
    times.append(now)
    return window, False
