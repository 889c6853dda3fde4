"""How a supervisor starts a child: the ``ChildStart`` interface and its local kinds.

A supervisor drives every child start through three calls, in this order over a spec's life:

1. ``acquire(sup, key)`` once, when a spec is added (``add_child``; ``start_new_child``
   calls ``acquire_and_start``, which is acquire then the first start in one step),
   before anything else; it returns a lease token (or ``None``) the supervisor keeps with the
   spec. A start that cannot be used any more fails here, early (``StarterGone``).
2. ``start(sup, key, lease)`` at each (re)start; it returns the child's pid and the monitor
   reference under which the supervisor will receive the child's ``Down``. The child is
   linked to and monitored by the supervisor before it runs.
3. ``release(sup, key, lease)`` once, when the spec is deleted (``delete_child``), or when a
   temporary child's spec is dropped. It never blocks.

The reference-counted ``StarterProcess`` (``refcount_starter.starter``) implements the same
interface with a starter process behind it.
"""

from __future__ import annotations

import abc
from typing import Any

import attrs

from ..runtime import Pid, Process, ProcessFunction, Ref

__all__ = ["ChildKey", "ChildStart", "LocalStart"]

#: A child's key within its supervisor.
ChildKey = str


class ChildStart(abc.ABC):
    """How to start a child; see the module's docstring for the order of the calls."""

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


@attrs.frozen
class LocalStart(ChildStart):
    """Start ``fn(process, *args)`` on the supervisor's own node (not serializable).

    Args:
        fn: The async process function.
        args: Its extra arguments.

    Raises:
        TypeError: ``fn`` is not callable.
    """

    fn: ProcessFunction = attrs.field()
    args: tuple[Any, ...] = attrs.field(default=(), converter=tuple)

    @fn.validator
    def _check_fn(self, attribute: attrs.Attribute[ProcessFunction], value: ProcessFunction) -> None:
        if not callable(value):
            raise TypeError(f"a child start must be an async callable, got {value!r}")

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        ref = sup.reserve_monitor()
        pid = sup.spawn_for(sup.pid, ref, self.fn, *self.args)
        sup.bind_monitor(ref, pid)
        return pid, ref
