"""The client API: start a supervisor, and the ``Supervisor`` handle to talk to it.

A handle is bound to the process that calls through it (the ``caller``): a call is a
message from that process, and the reply comes back to its mailbox, which only it reads.
``supervisor.start(me, ...)`` binds the handle to ``me``; ``handle.using(other)`` gives a
handle for another process. See ADR-0009.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ..runtime import CallFailed, Down, ExitReason, Pid, Process, Shutdown
from .errors import SupervisorExited
from .messages import (
    AddChild,
    AwaitInit,
    DeleteChild,
    Failed,
    GetStatistics,
    ListChildren,
    LookupChild,
    RestartChild,
    StartChild,
    StartNewChild,
    Subscribe,
    TerminateChild,
    Unsubscribe,
)
from .server import SupervisorConfig, supervisor_process
from .spec import ChildSpec
from .state import Child, ChildRef, SupervisorStatistics
from .strategy import RestartOne, RestartStrategy, ShutdownMode

__all__ = ["Supervisor", "start", "start_link"]


def _check_caller(instance: object, attribute: attrs.Attribute[Process], value: object) -> None:
    if not isinstance(value, Process):
        raise TypeError(f"caller must be the Process that calls the supervisor, got {value!r}")


def _check_pid(instance: object, attribute: attrs.Attribute[Pid], value: object) -> None:
    if type(value) is not Pid:
        raise TypeError(f"pid must be the supervisor's Pid, got {value!r}")


@attrs.frozen
class Supervisor:
    """A handle on a running supervisor, bound to the process that calls through it.

    Every method is a call from ``caller`` that watches the supervisor with a monitor: it
    never hangs on a dead supervisor, and raises ``SupervisorExited`` with its exit reason.

    Args:
        pid: The supervisor's pid.
        caller: The process the calls are made from (only that process may use the handle).

    Raises:
        TypeError: ``pid`` is not a Pid or ``caller`` not a Process.
    """

    pid: Pid = attrs.field(validator=_check_pid)
    caller: Process = attrs.field(eq=False, repr=False, validator=_check_caller)

    def using(self, caller: Process) -> Supervisor:
        """The same supervisor, called from ``caller``."""
        return Supervisor(self.pid, caller)

    async def _call(self, request: object) -> Any:
        try:
            value = await self.caller.call(self.pid, request)
        except CallFailed as exc:
            raise SupervisorExited(self.pid, exc.reason) from None
        if type(value) is Failed:
            raise value.error
        return value

    async def add_child(self, spec: ChildSpec) -> ChildRef:
        """Add a spec without starting it (it is ``ChildStopped``), to the right of the others.

        Raises:
            DuplicateChild: The key is taken.
            StartFailureDied, StarterGone, BadClosure: The spec's start refused it (from
                ``ChildStart.acquire``, unchanged).
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(AddChild(self._spec(spec)))  # type: ignore[no-any-return]

    async def start_new_child(self, spec: ChildSpec) -> ChildRef:
        """Add a spec and start the child; a spec whose start fails is not kept.

        Returns:
            ``ChildRunning(pid)``.

        Raises:
            DuplicateChild: The key is taken.
            StartFailureDied: The start failed (``Crashed`` with the exception if it raised).
            StarterGone, BadClosure: The spec's start refused it.
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(StartNewChild(self._spec(spec)))  # type: ignore[no-any-return]

    async def start_child(self, key: str) -> ChildRef:
        """Start a stopped (or ignored) child.

        Raises:
            ChildNotFound: No such key.
            AlreadyRunning: It is running or restarting.
            StartFailureDied: The start failed; the child keeps its state.
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(StartChild(self._key(key)))  # type: ignore[no-any-return]

    async def restart_child(self, key: str) -> ChildRef:
        """Start a stopped child again (as OTP's restart_child: a running one is an error).

        Raises:
            ChildNotFound: No such key (a temporary child's spec is gone once it stopped).
            AlreadyRunning: It is running or restarting.
            StartFailureDied: The start failed.
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(RestartChild(self._key(key)))  # type: ignore[no-any-return]

    async def terminate_child(self, key: str) -> None:
        """Stop a child with its stop policy; it becomes ``ChildStopped`` (a temporary child's
        spec is dropped). Stopping a child that is not running is not an error; a pending
        restart is cancelled. No restart follows and siblings are not touched.

        Raises:
            ChildNotFound: No such key.
            SupervisorExited: The supervisor is not running.
        """
        await self._call(TerminateChild(self._key(key)))

    async def delete_child(self, key: str) -> None:
        """Remove a stopped (or ignored) child's spec, releasing what its start acquired.

        Raises:
            ChildNotFound: No such key.
            ChildNotStopped: It is running or restarting; terminate it first.
            SupervisorExited: The supervisor is not running.
        """
        await self._call(DeleteChild(self._key(key)))

    async def lookup_child(self, key: str) -> Child | None:
        """The child's key, state and spec, or ``None`` if there is no such key.

        Raises:
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(LookupChild(self._key(key)))  # type: ignore[no-any-return]

    async def list_children(self) -> list[Child]:
        """Every child, in start (insertion) order, left to right.

        Raises:
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(ListChildren())  # type: ignore[no-any-return]

    async def statistics(self) -> SupervisorStatistics:
        """Counts of the children, and of the restarts so far.

        Raises:
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(GetStatistics())  # type: ignore[no-any-return]

    async def subscribe(self, pid: Pid | None = None) -> None:
        """Send the supervisor's events (``refcount_starter.supervisor.events``) to ``pid``
        (the caller by default) until it unsubscribes or exits.

        Raises:
            SupervisorExited: The supervisor is not running.
        """
        await self._call(Subscribe(self.caller.pid if pid is None else pid))

    async def unsubscribe(self, pid: Pid | None = None) -> None:
        """Stop sending events to ``pid`` (the caller by default).

        Raises:
            SupervisorExited: The supervisor is not running.
        """
        await self._call(Unsubscribe(self.caller.pid if pid is None else pid))

    async def shutdown(self) -> None:
        """Ask the supervisor to stop its children (in its shutdown order) and exit
        ``Shutdown()``; returns at once, and does nothing if it is already gone."""
        self.caller.exit(self.pid, Shutdown())

    async def shutdown_and_wait(self) -> ExitReason:
        """As ``shutdown``, then wait until the supervisor has exited.

        Returns:
            Its exit reason (``NoProc`` if it was already gone).
        """
        ref = self.caller.monitor(self.pid)
        self.caller.exit(self.pid, Shutdown())
        down = await self.caller.receive(Down, where=lambda m: m.ref == ref)
        return down.reason

    @staticmethod
    def _spec(spec: ChildSpec) -> ChildSpec:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"expected a ChildSpec, got {spec!r}")
        return spec

    @staticmethod
    def _key(key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"a child key is a str, got {key!r}")
        return key


async def start(
    caller: Process,
    strategy: RestartStrategy | None = None,
    children: Iterable[ChildSpec] = (),
    *,
    shutdown: ShutdownMode | None = None,
    link: bool = False,
    name: str | None = None,
) -> Supervisor:
    """Start a supervisor on ``caller``'s node and wait until its initial children run.

    Children start left to right; if one fails, those already started are stopped (in the
    shutdown order), the supervisor exits, and its error is raised here.

    Args:
        caller: The process that starts it; the returned handle calls from it.
        strategy: The restart strategy (``RestartOne()`` by default).
        children: The initial child specs.
        shutdown: How it stops its children (``SequentialShutdown()``: right to left).
        link: Link it to ``caller`` (as OTP's start_link): when ``caller`` exits, the
            supervisor stops its children and exits with the same reason.
        name: A name to register it under, on its node.

    Returns:
        The handle, bound to ``caller``.

    Raises:
        DuplicateChild: Two initial children share a key (nothing is started).
        StartFailureDied, StarterGone, BadClosure: An initial child could not be added or
            started.
        TypeError: An argument has the wrong type.
        SupervisorExited: The supervisor exited before it finished starting.
    """
    if not isinstance(caller, Process):
        raise TypeError(f"caller must be the Process that starts the supervisor, got {caller!r}")
    config = SupervisorConfig.build(RestartOne() if strategy is None else strategy, children, shutdown)
    spawn = caller.spawn_link if link else caller.spawn
    pid = spawn(supervisor_process, config, True, trap_exits=True, name=name)
    handle = Supervisor(pid, caller)
    await handle._call(AwaitInit())
    return handle


async def start_link(
    caller: Process,
    strategy: RestartStrategy | None = None,
    children: Iterable[ChildSpec] = (),
    *,
    shutdown: ShutdownMode | None = None,
    name: str | None = None,
) -> Supervisor:
    """``start(..., link=True)``: the supervisor is linked to ``caller``.

    Args:
        caller: The process that starts it; the supervisor is linked to it.
        strategy: As for ``start``.
        children: As for ``start``.
        shutdown: As for ``start``.
        name: As for ``start``.

    Returns:
        The handle, bound to ``caller``.

    Raises:
        DuplicateChild: Two initial children share a key (nothing is started).
        StartFailureDied: An initial child could not be started (``StarterGone`` and
            ``BadClosure`` as for ``start``).
        TypeError: An argument has the wrong type.
        SupervisorExited: The supervisor exited before it finished starting.
    """
    return await start(caller, strategy, children, shutdown=shutdown, link=True, name=name)
