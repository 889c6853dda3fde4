"""Child specs, strategies and stop policies are validated values."""

from __future__ import annotations

import math

import pytest

from refcount_starter.runtime import Process
from refcount_starter.supervisor import (
    LEFT_TO_RIGHT,
    PERMANENT,
    RIGHT_TO_LEFT,
    SUPERVISOR,
    TEMPORARY,
    WORKER,
    ChildSpec,
    DuplicateChild,
    LocalStart,
    ParallelShutdown,
    RestartAll,
    RestartEach,
    RestartLimit,
    RestartOne,
    RestartRevOrder,
    SequentialShutdown,
    StopImmediately,
    StopTimeout,
)


async def idle(p: Process) -> None:
    await p.receive()


def test_defaults() -> None:
    """A spec defaults to a permanent worker stopped with StopTimeout(5.0)."""
    spec = ChildSpec("w", idle)
    assert spec.start == LocalStart(idle)
    assert spec.type is WORKER
    assert spec.restart is PERMANENT
    assert spec.shutdown == StopTimeout(5.0)
    assert spec.restart_delay is None
    assert spec.registered_name is None


def test_supervisor_child_waits_for_its_subtree() -> None:
    """A SUPERVISOR child's default stop policy waits however long it takes."""
    assert ChildSpec("s", idle, SUPERVISOR).shutdown == StopTimeout(math.inf)
    nested = ChildSpec.supervisor("s", RestartOne(), [ChildSpec("w", idle)])
    assert nested.type is SUPERVISOR
    assert nested.shutdown == StopTimeout.infinity()


def test_worker_constructor_passes_args() -> None:
    """ChildSpec.worker(key, fn, *args) wraps the function and its arguments as a LocalStart."""
    spec = ChildSpec.worker("w", idle, 1, "x", restart=TEMPORARY, shutdown=StopImmediately())
    assert spec.start == LocalStart(idle, (1, "x"))
    assert spec.restart is TEMPORARY
    assert spec.shutdown == StopImmediately()


def test_spec_is_frozen_and_hashable() -> None:
    """Specs are frozen values."""
    spec = ChildSpec("w", idle)
    with pytest.raises(AttributeError):
        spec.key = "v"  # type: ignore[misc]
    assert hash(spec) == hash(ChildSpec("w", idle))


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"key": ""}, ValueError, "key"),
        ({"key": 3}, TypeError, "key"),
        ({"start": 42}, TypeError, "start"),
        ({"type": "worker"}, TypeError, "type"),
        ({"restart": "permanent"}, TypeError, "restart"),
        ({"shutdown": 5.0}, TypeError, "shutdown"),
        ({"restart_delay": -1.0}, ValueError, "restart_delay"),
        ({"restart_delay": "1"}, TypeError, "restart_delay"),
        ({"registered_name": ""}, TypeError, "registered_name"),
    ],
)
def test_bad_fields_name_the_field_and_value(
    kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    """A bad field raises TypeError/ValueError naming the field and the value."""
    base: dict[str, object] = {"key": "w", "start": idle}
    base.update(kwargs)
    with pytest.raises(error) as info:
        ChildSpec(**base)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


def test_negative_stop_timeout() -> None:
    """StopTimeout rejects a negative or NaN timeout and a non-number."""
    with pytest.raises(ValueError, match="seconds"):
        StopTimeout(-1.0)
    with pytest.raises(ValueError, match="seconds"):
        StopTimeout(math.nan)
    with pytest.raises(TypeError, match="seconds"):
        StopTimeout("5")  # type: ignore[arg-type]


HUGE = 10**400  # an int no float can hold: float(HUGE) raises OverflowError


def test_seconds_too_large_for_a_float_are_infinity_or_refused_as_not_finite() -> None:
    """Regression: an int beyond a float's range raised an untyped OverflowError; it is
    math.inf where no limit is allowed, and a ValueError naming it where one is required."""
    assert StopTimeout(HUGE) == StopTimeout.infinity()
    assert ChildSpec("a", idle, start_timeout=HUGE).start_timeout == math.inf
    refusals = (
        lambda: ChildSpec("a", idle, restart_delay=HUGE),
        lambda: RestartLimit(1, HUGE),
        lambda: StopTimeout(-HUGE),
        lambda: ChildSpec("a", idle, start_timeout=-HUGE),
        lambda: ChildSpec("a", idle, restart_delay=-HUGE),
    )
    for refused in refusals:
        with pytest.raises(ValueError, match=str(HUGE)[:40]):
            refused()


def test_restart_limit_validation() -> None:
    """RestartLimit rejects negative restarts and a non-positive window."""
    assert RestartLimit() == RestartLimit(1, 5.0)
    with pytest.raises(ValueError, match="max_restarts"):
        RestartLimit(-1, 1.0)
    with pytest.raises(TypeError, match="max_restarts"):
        RestartLimit(1.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="within_seconds"):
        RestartLimit(1, 0.0)
    with pytest.raises(TypeError, match="within_seconds"):
        RestartLimit(1, "5")  # type: ignore[arg-type]


def test_strategy_defaults_follow_otp() -> None:
    """Branch strategies default to OTP's order: stop right to left, start left to right."""
    assert RestartAll().mode == RestartRevOrder(RIGHT_TO_LEFT)
    assert RestartAll().intensity == RestartLimit(1, 5.0)
    assert SequentialShutdown().order is RIGHT_TO_LEFT
    assert RestartEach().order is LEFT_TO_RIGHT
    with pytest.raises(TypeError, match="mode"):
        RestartAll(RestartLimit(), mode=ParallelShutdown())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="intensity"):
        RestartOne(3)  # type: ignore[arg-type]


def test_duplicate_keys_in_nested_children() -> None:
    """A nested supervisor spec with two children of one key is a DuplicateChild."""
    with pytest.raises(DuplicateChild, match="more than once"):
        ChildSpec.supervisor("s", RestartOne(), [ChildSpec("w", idle), ChildSpec("w", idle)])
