"""Restart strategies, restart limits, branch modes and shutdown modes, as frozen values.

Names follow Cloud Haskell's supervisor; defaults follow Erlang/OTP (see ADR-0009):
``RestartLimit()`` is OTP's intensity 1 within 5 seconds, a branch restart stops its
children right to left and starts them left to right (OTP's one_for_all/rest_for_one), and
``SequentialShutdown()`` stops children in reverse start order.
"""

from __future__ import annotations

import enum
import sys

import attrs

__all__ = [
    "LEFT_TO_RIGHT",
    "ParallelShutdown",
    "RIGHT_TO_LEFT",
    "RestartAll",
    "RestartEach",
    "RestartInOrder",
    "RestartLeft",
    "RestartLimit",
    "RestartMode",
    "RestartOne",
    "RestartOrder",
    "RestartRevOrder",
    "RestartRight",
    "RestartStrategy",
    "SequentialShutdown",
    "ShutdownMode",
]


class RestartOrder(enum.Enum):
    """The order in which a group of children is walked: by insertion order or its reverse."""

    LEFT_TO_RIGHT = "left_to_right"
    RIGHT_TO_LEFT = "right_to_left"

    def __repr__(self) -> str:
        return self.name


LEFT_TO_RIGHT = RestartOrder.LEFT_TO_RIGHT
RIGHT_TO_LEFT = RestartOrder.RIGHT_TO_LEFT


def _check_order(instance: object, attribute: attrs.Attribute[RestartOrder], value: object) -> None:
    if not isinstance(value, RestartOrder):
        raise TypeError(f"{attribute.name} must be LEFT_TO_RIGHT or RIGHT_TO_LEFT, got {value!r}")


def _check_max_restarts(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"max_restarts must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"max_restarts must be >= 0, got {value!r}")


def _check_within(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"within_seconds must be a number of seconds > 0, got {value!r}")
    # A float's range, not math.isfinite: an int too large for a float is math.inf
    # (ADR-0010, decision 6), and isfinite of it would raise OverflowError.
    if not 0 < value <= sys.float_info.max:
        raise ValueError(f"within_seconds must be a finite number of seconds > 0, got {value!r}")


@attrs.frozen
class RestartLimit:
    """At most ``max_restarts`` restarts within any ``within_seconds``; one more and the
    supervisor stops its children and exits with ``ReachedMaxRestartIntensity``.

    The default is OTP's (1 restart within 5 s); Cloud Haskell's ``defaultLimits`` is
    ``RestartLimit(1, 1.0)``. ``max_restarts=0`` makes the first restart fatal.

    Raises:
        TypeError: ``max_restarts`` is not an int, or ``within_seconds`` not a number.
        ValueError: ``max_restarts`` is negative, or ``within_seconds`` not finite and > 0.
    """

    max_restarts: int = attrs.field(default=1, validator=_check_max_restarts)
    within_seconds: float = attrs.field(default=5.0, validator=_check_within)


@attrs.frozen
class RestartEach:
    """Branch mode: stop then start each child of the branch in turn, in ``order``.

    Raises:
        TypeError: ``order`` is not ``LEFT_TO_RIGHT`` or ``RIGHT_TO_LEFT``.
    """

    order: RestartOrder = attrs.field(default=LEFT_TO_RIGHT, validator=_check_order)


@attrs.frozen
class RestartInOrder:
    """Branch mode: stop every child of the branch in ``order``, then start them in ``order``.

    Raises:
        TypeError: ``order`` is not ``LEFT_TO_RIGHT`` or ``RIGHT_TO_LEFT``.
    """

    order: RestartOrder = attrs.field(default=LEFT_TO_RIGHT, validator=_check_order)


@attrs.frozen
class RestartRevOrder:
    """Branch mode: stop every child of the branch in ``order``, then start them in reverse.

    The default (stop right to left, start left to right) is OTP's one_for_all.

    Raises:
        TypeError: ``order`` is not ``LEFT_TO_RIGHT`` or ``RIGHT_TO_LEFT``.
    """

    order: RestartOrder = attrs.field(default=RIGHT_TO_LEFT, validator=_check_order)


RestartMode = RestartEach | RestartInOrder | RestartRevOrder


def _check_limit(instance: object, attribute: attrs.Attribute[RestartLimit], value: object) -> None:
    if not isinstance(value, RestartLimit):
        raise TypeError(
            f"{attribute.name} must be a RestartLimit(max_restarts, within_seconds), got {value!r}"
        )


def _check_mode(instance: object, attribute: attrs.Attribute[RestartMode], value: object) -> None:
    if not isinstance(value, RestartEach | RestartInOrder | RestartRevOrder):
        raise TypeError(f"mode must be RestartEach, RestartInOrder or RestartRevOrder, got {value!r}")


@attrs.frozen
class RestartOne:
    """Restart only the child that exited (OTP's one_for_one).

    Args:
        intensity: The restart limit (``RestartLimit()``: 1 restart within 5 s).

    Raises:
        TypeError: ``intensity`` is not a ``RestartLimit``.
    """

    intensity: RestartLimit = attrs.field(factory=RestartLimit, validator=_check_limit)


@attrs.frozen
class _BranchStrategy:
    """The fields every branch strategy has: its restart limit and its branch mode."""

    intensity: RestartLimit = attrs.field(factory=RestartLimit, validator=_check_limit)
    mode: RestartMode = attrs.field(factory=RestartRevOrder, validator=_check_mode)


@attrs.frozen
class RestartAll(_BranchStrategy):
    """Restart every child when one must be restarted (OTP's one_for_all).

    Args:
        intensity: The restart limit (``RestartLimit()``: 1 restart within 5 s).
        mode: How the branch is stopped and started again (``RestartRevOrder()``: stop right
            to left, start left to right).

    Raises:
        TypeError: ``intensity`` is not a ``RestartLimit``, or ``mode`` not a branch mode.
    """


@attrs.frozen
class RestartLeft(_BranchStrategy):
    """Restart the child and every child to its left (added before it).

    Args:
        intensity: The restart limit (``RestartLimit()``: 1 restart within 5 s).
        mode: How the branch is stopped and started again (``RestartRevOrder()``: stop right
            to left, start left to right).

    Raises:
        TypeError: ``intensity`` is not a ``RestartLimit``, or ``mode`` not a branch mode.
    """


@attrs.frozen
class RestartRight(_BranchStrategy):
    """Restart the child and every child to its right (OTP's rest_for_one).

    Args:
        intensity: The restart limit (``RestartLimit()``: 1 restart within 5 s).
        mode: How the branch is stopped and started again (``RestartRevOrder()``: stop right
            to left, start left to right).

    Raises:
        TypeError: ``intensity`` is not a ``RestartLimit``, or ``mode`` not a branch mode.
    """


RestartStrategy = RestartOne | RestartAll | RestartLeft | RestartRight


@attrs.frozen
class SequentialShutdown:
    """Stop the children one at a time in ``order`` (default: reverse start order, as OTP).

    Raises:
        TypeError: ``order`` is not ``LEFT_TO_RIGHT`` or ``RIGHT_TO_LEFT``.
    """

    order: RestartOrder = attrs.field(default=RIGHT_TO_LEFT, validator=_check_order)


@attrs.frozen
class ParallelShutdown:
    """Signal every child at once, then wait for all of them (each with its own stop policy)."""


ShutdownMode = SequentialShutdown | ParallelShutdown
