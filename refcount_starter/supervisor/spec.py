"""Child specs: what a supervisor starts, how it restarts it, and how it stops it.

Validated at construction: a bad field raises ``TypeError`` or ``ValueError`` naming the
field and the value, so a spec that exists is a spec a supervisor can run.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ..runtime import ProcessFunction
from ..runtime.process import as_seconds
from .start import ChildStart, LocalStart, check_process_function

if TYPE_CHECKING:
    from .strategy import RestartStrategy, ShutdownMode

__all__ = [
    "INTRINSIC",
    "PERMANENT",
    "SUPERVISOR",
    "TEMPORARY",
    "TRANSIENT",
    "WORKER",
    "WORKER_START_TIMEOUT",
    "ChildSpec",
    "ChildType",
    "RestartPolicy",
    "StopImmediately",
    "StopPolicy",
    "StopTimeout",
]


class ChildType(enum.Enum):
    """Whether a child is a worker or a supervisor (which changes its default stop policy)."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"

    def __repr__(self) -> str:
        return self.name


class RestartPolicy(enum.Enum):
    """When a child that exited is restarted.

    A normal exit is ``Normal`` or ``Shutdown(...)``, for every strategy.

    * ``PERMANENT``: always.
    * ``TEMPORARY``: never; its spec is dropped when it exits or is terminated.
    * ``TRANSIENT``: only after an abnormal exit; after a normal one it stays ``ChildStopped``.
    * ``INTRINSIC``: as ``TRANSIENT``, and a normal exit also stops the supervisor normally.
    """

    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    TRANSIENT = "transient"
    INTRINSIC = "intrinsic"

    def __repr__(self) -> str:
        return self.name


WORKER = ChildType.WORKER
SUPERVISOR = ChildType.SUPERVISOR
PERMANENT = RestartPolicy.PERMANENT
TEMPORARY = RestartPolicy.TEMPORARY
TRANSIENT = RestartPolicy.TRANSIENT
INTRINSIC = RestartPolicy.INTRINSIC


def _check_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, got {value!r}")
    if not value >= 0:  # NaN too; not math.isnan, which overflows on a huge negative int
        raise ValueError(f"{attribute.name} must be >= 0 seconds, got {value!r}")


@attrs.frozen
class StopTimeout:
    """Stop a child with a ``Shutdown`` exit signal, wait up to ``seconds``, then kill it.

    ``StopTimeout.infinity()`` waits as long as it takes (the default for a supervisor
    child, so that its whole subtree stops in order, as OTP).

    Raises:
        TypeError: ``seconds`` is not a number.
        ValueError: ``seconds`` is negative or NaN.
    """

    # An int too large for a float is math.inf (ADR-0010, decision 6).
    seconds: float = attrs.field(converter=as_seconds, validator=_check_seconds)

    @classmethod
    def infinity(cls) -> StopTimeout:
        """Wait for the child to stop however long it takes."""
        return cls(math.inf)


@attrs.frozen
class StopImmediately:
    """Stop a child with an untrappable ``Kill``."""


StopPolicy = StopTimeout | StopImmediately


def _check_key(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"key must be a str, got {value!r}")
    if not value:
        raise ValueError("key must be a non-empty str, got ''")


def _to_child_start(value: ChildStart | ProcessFunction) -> ChildStart:
    if isinstance(value, ChildStart):
        return value
    if not callable(value):
        raise TypeError(f"start must be a ChildStart or an async process function, got {value!r}")
    check_process_function(value, "start")
    return LocalStart(value)


# The default stop policies: frozen values, shared by every spec that takes them.
_WORKER_STOP = StopTimeout(5.0)
_SUPERVISOR_STOP = StopTimeout.infinity()
_STOP_POLICIES = (StopTimeout, StopImmediately)

#: How long a worker's start waits for its acknowledgement by default, in seconds. A
#: supervisor child waits as long as its own children's starts take (each bounded).
WORKER_START_TIMEOUT = 5.0


def _default_stop(spec: ChildSpec) -> StopPolicy:
    return _SUPERVISOR_STOP if spec.type is SUPERVISOR else _WORKER_STOP


def _default_start_timeout(spec: ChildSpec) -> float:
    return math.inf if spec.type is SUPERVISOR else WORKER_START_TIMEOUT


def _check_type(instance: object, attribute: attrs.Attribute[ChildType], value: object) -> None:
    if not isinstance(value, ChildType):
        raise TypeError(f"type must be WORKER or SUPERVISOR, got {value!r}")


def _check_restart(instance: object, attribute: attrs.Attribute[RestartPolicy], value: object) -> None:
    if not isinstance(value, RestartPolicy):
        raise TypeError(f"restart must be PERMANENT, TEMPORARY, TRANSIENT or INTRINSIC, got {value!r}")


def _check_stop(instance: object, attribute: attrs.Attribute[StopPolicy], value: object) -> None:
    if not isinstance(value, _STOP_POLICIES):
        raise TypeError(f"shutdown must be StopTimeout(seconds) or StopImmediately(), got {value!r}")


def _check_delay(instance: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"restart_delay must be None or a number of seconds, got {value!r}")
    # A float's range, not math.isfinite: an int too large for a float is math.inf
    # (ADR-0010, decision 6), and isfinite of it would raise OverflowError.
    if not 0 <= value <= sys.float_info.max:
        raise ValueError(f"restart_delay must be a finite number of seconds >= 0, got {value!r}")


def _check_start_timeout(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if value in (WORKER_START_TIMEOUT, math.inf):
        return  # the defaults (a spec is made per DPP-84 cycle)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"start_timeout must be a number of seconds (math.inf: no limit), got {value!r}")
    if not value > 0:  # NaN too; not math.isnan, which overflows on a huge negative int
        raise ValueError(f"start_timeout must be > 0 seconds, got {value!r}")


def _check_name(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"registered_name must be None or a non-empty str, got {value!r}")


@attrs.frozen
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    Args:
        key: The child's key, unique within its supervisor.
        start: A ``ChildStart`` (``LocalStart``, ``RunClosure``, a starter's ``child_start``)
            or an async process function, which becomes ``LocalStart(fn)``.
        type: ``WORKER`` or ``SUPERVISOR``.
        restart: The restart policy (``PERMANENT`` by default).
        shutdown: How to stop it: ``StopTimeout(5.0)`` for a worker by default,
            ``StopTimeout.infinity()`` for a supervisor.
        restart_delay: Seconds to wait before retrying a restart once the restart limit is
            reached, and before retrying a restart whose start failed (Cloud Haskell's
            ``childRestartDelay``; see ADR-0009); the supervisor then keeps the child
            ``ChildRestarting`` instead of giving up. It applies to ``RestartOne``; a branch
            strategy that reaches its limit stops the supervisor.
        registered_name: A name to register the child under at each start, when the child
            runs on the supervisor's node (a child started through a starter on another node
            is not registered). The name is taken just after the child is spawned, before it
            runs.
        start_timeout: Seconds the supervisor waits for the child to acknowledge its start
            (OTP's ``start_link`` timeout): ``5.0`` for a worker by default, ``math.inf`` for
            a supervisor (its own children's starts are bounded). A child that has not
            acknowledged in time is killed and its start fails with ``InitTimeout``. A
            function that takes ``task_status`` acknowledges when it calls
            ``task_status.started()``; any other is acknowledged as soon as it runs.

    Raises:
        TypeError: A field has the wrong type, or ``start`` is a function that is not a
            coroutine function (a plain ``def``).
        ValueError: ``key`` is empty, a number of seconds is negative, or ``start_timeout``
            is not positive.
    """

    key: str = attrs.field(validator=_check_key)
    start: ChildStart = attrs.field(converter=_to_child_start)
    type: ChildType = attrs.field(default=WORKER, validator=_check_type)
    restart: RestartPolicy = attrs.field(default=PERMANENT, validator=_check_restart)
    shutdown: StopPolicy = attrs.field(
        default=attrs.Factory(_default_stop, takes_self=True), validator=_check_stop
    )
    restart_delay: float | None = attrs.field(default=None, validator=_check_delay)
    registered_name: str | None = attrs.field(default=None, validator=_check_name)
    start_timeout: float = attrs.field(
        default=attrs.Factory(_default_start_timeout, takes_self=True),
        converter=as_seconds,
        validator=_check_start_timeout,
    )

    @classmethod
    def worker(
        cls,
        key: str,
        fn: ProcessFunction,
        *args: Any,
        restart: RestartPolicy = PERMANENT,
        shutdown: StopPolicy | None = None,
        restart_delay: float | None = None,
        registered_name: str | None = None,
        start_timeout: float = WORKER_START_TIMEOUT,
    ) -> ChildSpec:
        """A worker that runs ``fn(process, *args)`` on the supervisor's node.

        Args:
            key: The child's key, unique within its supervisor.
            fn: The async process function.
            *args: Its extra arguments.
            restart: The restart policy.
            shutdown: How to stop it (``StopTimeout(5.0)`` by default).
            restart_delay: As for ``ChildSpec``.
            registered_name: As for ``ChildSpec``.
            start_timeout: As for ``ChildSpec`` (``5.0`` seconds).

        Returns:
            The spec, with a ``LocalStart(fn, args)`` start.

        Raises:
            TypeError: An argument has the wrong type (``fn`` not a coroutine function, ...).
            ValueError: ``key`` is empty, or ``restart_delay`` negative.
        """
        return cls(
            key,
            LocalStart(fn, args),
            WORKER,
            restart,
            StopTimeout(5.0) if shutdown is None else shutdown,
            restart_delay,
            registered_name,
            start_timeout,
        )

    @classmethod
    def supervisor(
        cls,
        key: str,
        strategy: RestartStrategy,
        children: Iterable[ChildSpec] = (),
        *,
        shutdown_mode: ShutdownMode | None = None,
        restart: RestartPolicy = PERMANENT,
        shutdown: StopPolicy | None = None,
        restart_delay: float | None = None,
        registered_name: str | None = None,
        start_timeout: float = math.inf,
    ) -> ChildSpec:
        """A child supervisor with its own strategy and children (supervisors nest).

        Args:
            key: The child's key in the parent.
            strategy: The child supervisor's restart strategy.
            children: Its initial children, started left to right each time it starts.
            shutdown_mode: How it stops its own children (``SequentialShutdown()``).
            restart: How the parent restarts it.
            shutdown: How the parent stops it (``StopTimeout.infinity()``: the subtree
                stops in order however long it takes).
            restart_delay: As for any child.
            registered_name: As for any child.
            start_timeout: How long the parent waits for it to start its children and
                acknowledge (``math.inf``: each of its children's starts is bounded).

        Raises:
            DuplicateChild: Two of ``children`` share a key.
            TypeError: An argument has the wrong type.
        """
        from .server import SupervisorConfig, supervisor_process

        config = SupervisorConfig.build(strategy, children, shutdown_mode)
        args: tuple[Any, ...] = (config, False)
        return cls(
            key,
            LocalStart(supervisor_process, args),
            SUPERVISOR,
            restart,
            StopTimeout.infinity() if shutdown is None else shutdown,
            restart_delay,
            registered_name,
            start_timeout,
        )
