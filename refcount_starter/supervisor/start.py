"""How a supervisor starts a child: the ``ChildStart`` interface and its local kinds.

A supervisor drives every child start through three calls, in this order over a spec's life:

1. ``acquire(sup, key)`` once, when a spec is added (``add_child``; ``start_new_child``
   calls ``acquire_and_start``, which is acquire then the first start in one step),
   before anything else; it returns a lease token (or ``None``) the supervisor keeps with the
   spec. A start that cannot be used any more fails here, early (``StarterGone``).
2. ``start(sup, key, lease)`` at each (re)start; it returns the child's pid and the monitor
   reference under which the supervisor will receive the child's ``Down``. The child is
   linked to and monitored by the supervisor before it runs. A start whose ``acknowledges``
   is true spawns the child through ``run_child``, which sends the supervisor the child's
   init acknowledgement (``InitAck``); the supervisor waits for it (see ADR-0009).
3. ``release(sup, key, lease)`` once, when the spec is deleted (``delete_child``), or when a
   temporary child's spec is dropped. It never blocks.

The reference-counted ``StarterProcess`` (``refcount_starter.starter``) implements the same
interface with a starter process behind it.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Hashable
from typing import Any, ClassVar

import attrs

from ..runtime import Pid, Process, ProcessFunction, Ref

__all__ = [
    "ChildKey",
    "ChildStart",
    "ChildStatus",
    "InitAck",
    "LocalStart",
    "acknowledges_itself",
    "check_process_function",
    "run_child",
]

#: A child's key within its supervisor.
ChildKey = str


# -- the init acknowledgement (OTP's proc_lib:init_ack) --------------------------------------


@attrs.frozen
class InitAck:
    """Sent by a child to its supervisor: it has initialised.

    Args:
        ref: The monitor reference under which the supervisor watches this start of the
            child (unique to the start, so a late acknowledgement is never mistaken).
        info: The value the child handed to ``task_status.started(info)``; the supervisor
            returns it in ``ChildRunning(pid, info)`` (OTP's ``{ok, Pid, Info}``).
    """

    ref: Ref
    info: Any = None


class ChildStatus:
    """The ``task_status`` a supervised child is given when its function takes one.

    The child calls ``task_status.started(info)`` once it has initialised, as a task started
    with anyio's ``TaskGroup.start`` does; until then its supervisor's start waits. It fits
    ``anyio.abc.TaskStatus``, so a child's signature can read
    ``task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED``.

    Args:
        p: The child's process.
        to: The supervisor that waits for the acknowledgement.
        ref: The reference of this start, which the acknowledgement carries.
    """

    __slots__ = ("_done", "_p", "_ref", "_to")

    def __init__(self, p: Process, to: Pid, ref: Ref) -> None:
        self._p = p
        self._to = to
        self._ref = ref
        self._done = False

    @property
    def acknowledged(self) -> bool:
        """Whether ``started`` has been called."""
        return self._done

    def started(self, value: Any = None) -> None:
        """Tell the supervisor the child has initialised; ``value`` is what its start returns.

        Args:
            value: The ``info`` of ``ChildRunning(pid, info)``; it must be encodable if the
                supervisor runs on another node.

        Raises:
            RuntimeError: ``started`` was already called.
        """
        if self._done:
            raise RuntimeError(f"process {self._p.pid} called task_status.started() twice")
        self._done = True
        self._p.send(self._to, InitAck(self._ref, value))


@functools.lru_cache(maxsize=1024)
def _is_async(fn: Hashable) -> bool:
    return _is_coroutine_function(fn)


def _is_coroutine_function(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 (the class's, not the instance's)
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def check_process_function(fn: object, what: str = "a child's process function") -> None:
    """Refuse anything but an async process function (``async def fn(p, *args)``).

    A ``functools.partial`` of one, and an object whose ``__call__`` is ``async def``, are
    accepted.

    Raises:
        TypeError: ``fn`` is not callable, or not a coroutine function (a plain ``def``).
    """
    if not callable(fn):
        raise TypeError(f"{what} must be an async callable, got {fn!r}")
    try:
        is_async = _is_async(fn)  # once per function: specs and starters are made per cycle
    except TypeError:  # an unhashable callable: not cached
        is_async = _is_coroutine_function(fn)
    if not is_async:
        raise TypeError(
            f"{what} must be a coroutine function (async def fn(p, *args)), got {fn!r}, which is not async"
        )


@functools.lru_cache(maxsize=1024)
def _takes_task_status(fn: Hashable) -> bool:
    try:
        parameters = inspect.signature(fn).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("task_status")
    return parameter is not None and parameter.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def acknowledges_itself(fn: ProcessFunction) -> bool:
    """Whether ``fn`` takes a ``task_status`` keyword argument, and so acknowledges its own
    start (otherwise it is acknowledged as soon as it runs)."""
    try:
        return _takes_task_status(fn)
    except TypeError:  # an unhashable callable: not cached
        return _takes_task_status.__wrapped__(fn)


async def run_child(
    p: Process, supervisor: Pid, ref: Ref, fn: ProcessFunction, args: tuple[Any, ...], acks: bool
) -> None:
    """The body every acknowledging start spawns: run ``fn(p, *args)`` and acknowledge it.

    A function that takes ``task_status`` is given a ``ChildStatus`` and acknowledges itself
    when it calls ``started``; any other function is acknowledged as soon as it runs, so a
    plain body keeps its meaning. A child that exits before it acknowledged fails its start
    with its exit reason (``InitIgnored`` when it raised ``ChildInitIgnore``: ignored).

    Args:
        p: The child's process.
        supervisor: The supervisor to acknowledge to.
        ref: The monitor reference of this start (carried by the ``InitAck``).
        fn: The child's process function.
        args: Its extra arguments.
        acks: Whether ``fn`` acknowledges itself (``acknowledges_itself(fn)``).
    """
    if acks:
        await fn(p, *args, task_status=ChildStatus(p, supervisor, ref))
    else:
        p.send(supervisor, InitAck(ref))
        await fn(p, *args)


class ChildStart(abc.ABC):
    """How to start a child; see the module's docstring for the order of the calls.

    Attributes:
        acknowledges: Whether the processes this start spawns send an ``InitAck`` (they run
            through ``run_child``), so that the supervisor waits for it before it counts the
            child as started. ``False`` for a start that spawns its function directly: the
            child is then started once it is spawned (as before the init acknowledgement).
    """

    acknowledges: ClassVar[bool] = False

    async def acquire(self, sup: Process, key: ChildKey) -> Any:
        """Take whatever the start needs for the spec's life; return a lease token or ``None``.

        Args:
            sup: The supervisor process that adds the spec.
            key: The child's key.

        Raises:
            StartFailureDied: The start can no longer be used (``StarterGone`` for a stale
                starter).
        """
        return None

    @abc.abstractmethod
    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        """Start the child linked to ``sup`` and monitored by it; return (pid, monitor ref).

        Args:
            sup: The supervisor process.
            key: The child's key.
            lease: What ``acquire`` returned for this spec.

        Raises:
            StartFailureDied: The child could not be started.
        """

    def release(self, sup: Process, key: ChildKey, lease: Any) -> None:  # noqa: B027
        """Give back what ``acquire`` took; never blocks.

        Args:
            sup: The supervisor process that deletes the spec.
            key: The child's key.
            lease: What ``acquire`` returned for this spec.
        """

    async def acquire_and_start(self, sup: Process, key: ChildKey) -> tuple[Any, Pid, Ref]:
        """``acquire`` then ``start``, as one step: what ``start_new_child`` does.

        A start whose acquire and first start can travel as one message (the starter's)
        overrides it to save a round trip. If the start fails after the acquire, the lease is
        released before the error is raised: on an error, nothing is held.

        Args:
            sup: The supervisor process that adds the spec.
            key: The child's key.

        Returns:
            The lease, the child's pid and the monitor reference of its ``Down``.

        Raises:
            StartFailureDied: The start can no longer be used (``StarterGone``), or the child
                could not be started; and whatever ``acquire`` and ``start`` raise.
        """
        lease = await self.acquire(sup, key)
        try:
            pid, ref = await self.start(sup, key, lease)
        except BaseException:
            self.release(sup, key, lease)
            raise
        return lease, pid, ref

    @property
    def serializable(self) -> bool:
        """Whether a spec with this start can travel to another node."""
        return False

    def acknowledges_as_it_runs(self, sup: Process) -> bool:
        """Whether every child of this start is acknowledged by ``run_child`` as soon as it
        runs, on ``sup``'s own node: its acknowledgement cannot fail to come unless the child
        exits first (its ``Down`` comes then), so the supervisor waits for it without arming
        its start timeout.

        Args:
            sup: The supervisor process.
        """
        return False


@attrs.frozen
class LocalStart(ChildStart):
    """Start ``fn(process, *args)`` on the supervisor's own node (not serializable).

    Args:
        fn: The async process function.
        args: Its extra arguments.

    A function that takes a ``task_status`` keyword argument acknowledges its own start
    (``task_status.started(info)``); any other is acknowledged as soon as it runs.

    Raises:
        TypeError: ``fn`` is not a coroutine function (a plain ``def``, or not callable).
    """

    acknowledges: ClassVar[bool] = True

    fn: ProcessFunction = attrs.field()
    args: tuple[Any, ...] = attrs.field(default=(), converter=tuple)

    @fn.validator
    def _check_fn(self, attribute: attrs.Attribute[ProcessFunction], value: ProcessFunction) -> None:
        check_process_function(value)

    def acknowledges_as_it_runs(self, sup: Process) -> bool:
        """True for a function without ``task_status`` (see ``ChildStart``).

        Args:
            sup: The supervisor process.
        """
        return not acknowledges_itself(self.fn)

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        ref = sup.reserve_monitor()
        me = sup.pid
        fn = self.fn
        pid = sup.spawn_for(me, ref, run_child, me, ref, fn, self.args, acknowledges_itself(fn))
        sup.bind_monitor(ref, pid)
        return pid, ref
