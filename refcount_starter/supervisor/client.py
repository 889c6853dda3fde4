"""The client API: start a supervisor, and the ``Supervisor`` handle to talk to it.

A handle is bound to the process that calls through it (the ``caller``): a call is a
message from that process, and the reply comes back to its mailbox, which only it reads.
``supervisor.start(me, ...)`` binds the handle to ``me``; ``handle.using(other)`` gives a
handle for another process. See ADR-0009.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable, Iterable
from types import TracebackType
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

__all__ = ["Supervisor", "SupervisorStart", "start", "start_link"]

# The stop signal of shutdown(): an exit reason is immutable, one serves every call.
_SHUTDOWN = Shutdown()


def _ask_to_stop(caller: Process, pid: Pid) -> None:
    """Send the supervisor ``pid`` its stop signal, unlinked from ``caller`` first: the stop
    the caller asked for must not come back to it over a link (OTP's ``supervisor:stop/1``
    leaves a linked caller running too)."""
    caller.unlink(pid)
    caller.exit(pid, _SHUTDOWN)


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
    ``async with handle:`` stops the supervisor and waits for it when the block ends.

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
        """Add a spec and start the child, waiting for it to acknowledge its start (OTP's
        synchronous ``start_child``); a spec whose start fails is not kept.

        Returns:
            ``ChildRunning(pid, info)`` once the child acknowledged (``info`` is what it passed
            to ``task_status.started``); ``ChildStartIgnored()`` if it raised
            ``ChildInitIgnore`` first (a temporary child's spec is then not kept).

        Raises:
            DuplicateChild: The key is taken.
            StartFailureDied: The start failed: it raised (``Crashed`` with the exception),
                the child exited before it acknowledged (its exit reason), or it did not
                acknowledge within the spec's ``start_timeout`` (``InitTimeout``).
            StarterGone, BadClosure: The spec's start refused it.
            SupervisorExited: The supervisor is not running.
        """
        return await self._call(StartNewChild(self._spec(spec)))  # type: ignore[no-any-return]

    async def start_child(self, key: Hashable) -> ChildRef:
        """Start a stopped (or ignored) child and wait for it to acknowledge its start.

        Returns:
            ``ChildRunning(pid, info)``, or ``ChildStartIgnored()`` (a temporary child's spec
            is then dropped), as for ``start_new_child``.

        Raises:
            ChildNotFound: No such key (of any type).
            AlreadyRunning: It is running or restarting.
            StartFailureDied: The start failed, as for ``start_new_child``; the child keeps
                its state.
            SupervisorExited: The supervisor is not running.
            TypeError: ``key`` is not hashable.
        """
        return await self._call(StartChild(self._key(key)))  # type: ignore[no-any-return]

    async def restart_child(self, key: Hashable) -> ChildRef:
        """Start a stopped child again (as OTP's restart_child: a running one is an error),
        and wait for it to acknowledge its start.

        Returns:
            As ``start_child``.

        Raises:
            ChildNotFound: No such key, of any type (a temporary child's spec is gone once
                it stopped).
            AlreadyRunning: It is running or restarting.
            StartFailureDied: The start failed, as for ``start_new_child``.
            SupervisorExited: The supervisor is not running.
            TypeError: ``key`` is not hashable.
        """
        return await self._call(RestartChild(self._key(key)))  # type: ignore[no-any-return]

    async def terminate_child(self, key: Hashable) -> None:
        """Stop a child with its stop policy; it becomes ``ChildStopped`` (a temporary child's
        spec is dropped). Stopping a child that is not running is not an error; a pending
        restart is cancelled. No restart follows and siblings are not touched.

        Raises:
            ChildNotFound: No such key (of any type).
            SupervisorExited: The supervisor is not running.
            TypeError: ``key`` is not hashable.
        """
        await self._call(TerminateChild(self._key(key)))

    async def delete_child(self, key: Hashable) -> None:
        """Remove a stopped (or ignored) child's spec, releasing what its start acquired.

        Raises:
            TypeError: ``key`` is not hashable.
            ChildNotFound: No such key (of any type).
            ChildNotStopped: It is running or restarting; terminate it first.
            SupervisorExited: The supervisor is not running.
        """
        await self._call(DeleteChild(self._key(key)))

    async def lookup_child(self, key: Hashable) -> Child | None:
        """The child's key, state and spec, or ``None`` if there is no such key (of any type;
        Cloud Haskell's ``lookupChild`` answers ``Maybe``).

        Raises:
            SupervisorExited: The supervisor is not running.
            TypeError: ``key`` is not hashable.
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
        ``Shutdown()``; returns at once, and does nothing if it is already gone.

        A caller linked to the supervisor (``start(..., link=True)``) is unlinked first: the
        stop it asked for does not come back to it as an exit signal (OTP's
        ``supervisor:stop/1`` leaves a linked caller running too).
        """
        _ask_to_stop(self.caller, self.pid)

    async def shutdown_and_wait(self) -> ExitReason:
        """As ``shutdown``, then wait until the supervisor has exited.

        Cancelled while it waits, it leaves no monitor and no ``Down`` behind (the supervisor
        still stops).

        Returns:
            Its exit reason (``NoProc`` if it was already gone).
        """
        caller = self.caller
        ref = caller.monitor(self.pid)
        _ask_to_stop(caller, self.pid)
        try:
            down = await caller.receive(Down, where=lambda m: m.ref == ref)
        except BaseException:
            caller.demonitor(ref)
            raise
        return down.reason

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown_and_wait()

    @staticmethod
    def _spec(spec: ChildSpec) -> ChildSpec:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"expected a ChildSpec, got {spec!r}")
        return spec

    @staticmethod
    def _key(key: Hashable) -> Hashable:
        try:
            hash(key)
        except TypeError:
            raise TypeError(f"a child key must be hashable (a child's key is a str), got {key!r}") from None
        return key


class SupervisorStart:
    """What ``start`` returns: await it for the handle, or use it in ``async with``, which
    stops the supervisor and waits for it when the block ends (a structured handle).

    ``await supervisor.start(me, ...)`` and ``async with supervisor.start(me, ...) as sup``
    start the supervisor the same way; only the ``async with`` form owns its lifetime.

    Args:
        caller: The process that starts the supervisor (and talks to it).
        config: The supervisor's strategy, limits and initial children.
        link: Link the supervisor to ``caller`` (``start_link``).
        name: A name to register the supervisor under.
    """

    __slots__ = ("_caller", "_config", "_handle", "_link", "_name")

    def __init__(self, caller: Process, config: SupervisorConfig, link: bool, name: str | None) -> None:
        self._caller = caller
        self._config = config
        self._link = link
        self._name = name
        self._handle: Supervisor | None = None

    async def _start(self) -> Supervisor:
        caller = self._caller
        spawn = caller.spawn_link if self._link else caller.spawn
        pid = spawn(supervisor_process, self._config, True, trap_exits=True, name=self._name)
        handle = Supervisor(pid, caller)
        try:
            await handle._call(AwaitInit())
        except BaseException:
            # Cancelled before the answer: leave no supervisor behind. It reads the signal
            # once its initial children have started, then stops them in order. (After a
            # failed start it is gone already, and the signal is dropped.)
            if caller.reason is None:
                _ask_to_stop(caller, pid)
            raise
        return handle

    def __await__(self) -> Generator[Any, None, Supervisor]:
        return self._start().__await__()

    async def __aenter__(self) -> Supervisor:
        self._handle = await self._start()
        return self._handle

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._handle
        self._handle = None
        if handle is not None:
            await handle.shutdown_and_wait()


def start(
    caller: Process,
    strategy: RestartStrategy | None = None,
    children: Iterable[ChildSpec] = (),
    *,
    shutdown: ShutdownMode | None = None,
    link: bool = False,
    name: str | None = None,
) -> SupervisorStart:
    """Start a supervisor on ``caller``'s node and wait until its initial children run:
    ``sup = await start(me, ...)``, or ``async with start(me, ...) as sup:``, which stops the
    supervisor and waits for it at the end of the block.

    Children start strictly left to right, each once the previous one acknowledged its
    start; if one fails, those already started are stopped (in the shutdown order), the
    supervisor exits, and its error is raised here.

    Args:
        caller: The process that starts it; the returned handle calls from it.
        strategy: The restart strategy (``RestartOne()`` by default).
        children: The initial child specs.
        shutdown: How it stops its children (``SequentialShutdown()``: right to left).
        link: Link it to ``caller`` (as OTP's start_link): when ``caller`` exits, the
            supervisor stops its children and exits with the same reason.
        name: A name to register it under, on its node.

    Returns:
        A ``SupervisorStart``: awaited, the handle, bound to ``caller``.

    Raises:
        DuplicateChild: Two initial children share a key (nothing is started).
        StartFailureDied, StarterGone, BadClosure: An initial child could not be added or
            started (from the await).
        TypeError: An argument has the wrong type (at the call).
        SupervisorExited: The supervisor exited before it finished starting (from the await).
    """
    if not isinstance(caller, Process):
        raise TypeError(f"caller must be the Process that starts the supervisor, got {caller!r}")
    config = SupervisorConfig.build(RestartOne() if strategy is None else strategy, children, shutdown)
    return SupervisorStart(caller, config, link, name)


def start_link(
    caller: Process,
    strategy: RestartStrategy | None = None,
    children: Iterable[ChildSpec] = (),
    *,
    shutdown: ShutdownMode | None = None,
    name: str | None = None,
) -> SupervisorStart:
    """``start(..., link=True)``: the supervisor is linked to ``caller``.

    Args:
        caller: The process that starts it; the supervisor is linked to it.
        strategy: As for ``start``.
        children: As for ``start``.
        shutdown: As for ``start``.
        name: As for ``start``.

    Returns:
        As for ``start``.

    Raises:
        DuplicateChild: Two initial children share a key (nothing is started).
        StartFailureDied: An initial child could not be started (``StarterGone`` and
            ``BadClosure`` as for ``start``).
        TypeError: An argument has the wrong type.
        SupervisorExited: The supervisor exited before it finished starting.
    """
    return start(caller, strategy, children, shutdown=shutdown, link=True, name=name)
