"""The supervisor process.

It traps exits, starts its children through their ``ChildStart`` (linked to it and monitored
by it before they run), and handles one message at a time: client calls, its children's
``Down``s, exit signals, and the retries it sends itself. Every per-child operation is O(1)
in the number of children: a dict by key (whose insertion order is the start order) and a
dict pid -> child for the running ones; only a branch restart and a shutdown walk children
(a branch restart finds its branch in one O(n) pass, then acts on the branch). See ADR-0009.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import anyio
import anyio.lowlevel
import attrs

from ..runtime import (
    Call,
    Crashed,
    Down,
    ExitReason,
    ExitSignal,
    Kill,
    NameTaken,
    Normal,
    Pid,
    Process,
    ProcessExit,
    ProcessNotAlive,
    Ref,
    Shutdown,
    log_fields,
)
from . import events as ev
from .errors import (
    AlreadyRunning,
    BadClosure,
    ChildNotFound,
    ChildNotStopped,
    DuplicateChild,
    StartFailureDied,
    SupervisorError,
)
from .messages import (
    AddChild,
    AwaitInit,
    DeleteChild,
    Failed,
    GetStatistics,
    ListChildren,
    LookupChild,
    RestartChild,
    RetryRestart,
    StartChild,
    StartNewChild,
    Subscribe,
    TerminateChild,
    Unsubscribe,
)
from .reasons import FailedToStartChild, InitIgnored, InitTimeout, ReachedMaxRestartIntensity
from .spec import INTRINSIC, SUPERVISOR, TEMPORARY, TRANSIENT, ChildSpec, StopImmediately
from .start import ChildStatus, InitAck
from .state import (
    Child,
    ChildRef,
    ChildRestarting,
    ChildRunning,
    ChildStartIgnored,
    ChildStopped,
    SupervisorStatistics,
)
from .strategy import (
    LEFT_TO_RIGHT,
    ParallelShutdown,
    RestartAll,
    RestartEach,
    RestartInOrder,
    RestartLeft,
    RestartOne,
    RestartRight,
    RestartStrategy,
    SequentialShutdown,
    ShutdownMode,
)
from .window import RestartWindow, add_restart

__all__ = ["SupervisorConfig", "supervisor_process"]

_log = logging.getLogger("refcount_starter.supervisor.server")

STOPPED = ChildStopped()
IGNORED = ChildStartIgnored()
# A child's stop signal (an exit reason is immutable: one serves every stop).
SHUTDOWN = Shutdown()


def _check_strategy(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, RestartOne | RestartAll | RestartLeft | RestartRight):
        raise TypeError(
            f"strategy must be RestartOne, RestartAll, RestartLeft or RestartRight, got {value!r}"
        )


def _check_shutdown(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, SequentialShutdown | ParallelShutdown):
        raise TypeError(f"shutdown must be SequentialShutdown(order) or ParallelShutdown(), got {value!r}")


@attrs.frozen
class SupervisorConfig:
    """What a supervisor process is started with: its strategy, initial children, shutdown."""

    strategy: RestartStrategy = attrs.field(validator=_check_strategy)
    children: tuple[ChildSpec, ...]
    shutdown: ShutdownMode = attrs.field(validator=_check_shutdown)

    @classmethod
    def build(
        cls, strategy: RestartStrategy, children: Iterable[ChildSpec], shutdown: ShutdownMode | None
    ) -> SupervisorConfig:
        """Validate and build a config.

        Raises:
            TypeError: ``strategy``, ``shutdown`` or one of ``children`` has the wrong type.
            DuplicateChild: Two of ``children`` share a key.
        """
        if isinstance(children, ChildSpec | str | bytes):
            raise TypeError(f"children must be an iterable of ChildSpec, got {children!r}")
        specs = tuple(children)
        seen: set[str] = set()
        for spec in specs:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"children must be ChildSpec values, got {spec!r}")
            if spec.key in seen:
                raise DuplicateChild(spec.key, None)
            seen.add(spec.key)
        return cls(strategy, specs, SequentialShutdown() if shutdown is None else shutdown)


@attrs.define(eq=False)
class _Child:
    """A supervisor's record of one child (an entity: it changes as the child does)."""

    spec: ChildSpec
    lease: Any
    state: ChildRef = STOPPED
    # Invariant: ref is the monitor of the running child iff state is ChildRunning.
    ref: Ref | None = None
    # Invariant: retry is the token of the pending restart iff state is ChildRestarting.
    retry: int | None = None
    last_pid: Pid | None = None
    # Automatic restarts its exits caused (SupervisorStatistics.restarts_by_key).
    restarts: int = 0


# The lease of a child whose start_new_child has not acquired yet.
_NOT_ACQUIRED: Any = object()


class _Stop(Exception):
    """Raised inside the supervisor to stop its children and exit with ``reason``."""

    def __init__(self, reason: ExitReason) -> None:
        super().__init__(reason)
        self.reason = reason


class _Malformed(Exception):
    """A request the supervisor cannot read (a wrong field type): the caller's error,
    answered as a ``TypeError``, never a crash."""


def _bad_key(key: object, exc: Exception) -> str:
    """Why ``key`` cannot be looked up (its hash or its ``==`` raised ``exc``), naming it
    even if its own ``repr`` raises."""
    what = "a child key must be hashable and comparable"
    try:
        return f"{what}, got {key!r} ({type(exc).__name__}: {exc})"
    except Exception:
        return f"{what}, got {object.__repr__(key)} ({type(exc).__name__})"


class _InitFailed(Exception):
    def __init__(self, key: str, error: BaseException, reason: ExitReason) -> None:
        super().__init__(key, error)
        self.key = key
        self.error = error
        self.reason = reason


def _failure_reason(exc: BaseException) -> ExitReason:
    if isinstance(exc, StartFailureDied):
        return exc.reason
    return Crashed.from_exception(exc)


async def supervisor_process(
    p: Process, config: SupervisorConfig, reply_init: bool, *, task_status: ChildStatus | None = None
) -> None:
    """The supervisor's process function.

    Args:
        p: The supervisor's process.
        config: Its strategy, initial children and shutdown mode.
        reply_init: Whether the spawner waits for an ``AwaitInit`` call to learn how the
            initial children started (``supervisor.start``); a child supervisor (started by
            its parent) just exits with ``FailedToStartChild`` when one fails.
        task_status: Given when a parent supervisor starts it: it acknowledges its start
            once its initial children have all acknowledged theirs.
    """
    p.trap_exits = True
    await _Server(p, config).run(reply_init, task_status)


class _Server:
    def __init__(self, p: Process, config: SupervisorConfig) -> None:
        self.p = p
        self.config = config
        self.strategy = config.strategy
        self.limit = config.strategy.intensity
        # Invariant: children holds every spec, in start order; by_pid exactly the running ones.
        self.children: dict[str, _Child] = {}
        self.by_pid: dict[Pid, _Child] = {}
        self.subscribers: dict[Pid, Ref] = {}
        self.subscriber_refs: dict[Ref, Pid] = {}
        self.window = RestartWindow()
        self.timers: list[tuple[float, int, RetryRestart]] = []
        self.tokens = itertools.count(1)
        self.supervisors = 0
        self.running_supervisors = 0
        self.total_restarts = 0

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self, reply_init: bool, task_status: ChildStatus | None) -> None:
        try:
            try:
                await self._init()
            except _InitFailed as failed:
                await self._shutdown_children()
                if reply_init:
                    await self._reply_init(Failed(failed.error))
                    if self.p.parent is not None:
                        # Like OTP's init_fail: the spawner learns it from the reply, not a signal.
                        self.p.unlink(self.p.parent)
                raise ProcessExit(FailedToStartChild(failed.key, failed.reason)) from None
            if reply_init:
                await self._reply_init(None)
            if task_status is not None:
                task_status.started()
            await self._loop()
        except _Stop as stop:
            await self._exit(stop.reason)
        except ProcessExit:
            raise
        except Exception as exc:
            # Let it crash: a bug in the supervisor itself stops its children (in its
            # shutdown order) and exits Crashed, so that its parent restarts it.
            _log.error("supervisor %s crashed", self.p.pid, exc_info=exc, extra=log_fields(self.p.pid))
            await self._exit(Crashed.from_exception(exc))

    async def _reply_init(self, value: object) -> None:
        call = await self.p.receive(Call, where=lambda c: type(c.request) is AwaitInit)
        self.p.reply(call, value)

    async def _init(self) -> None:
        # Strictly one after the other: child k+1 is spawned only once child k acknowledged.
        for spec in self.config.children:
            try:
                await self._start_new_child(StartNewChild(spec))
            except SupervisorError as exc:
                raise _InitFailed(spec.key, exc, _failure_reason(exc)) from exc

    async def _exit(self, reason: ExitReason) -> NoReturn:
        await self._shutdown_children()
        self._emit(ev.SupervisorShutdown, self.p.pid, reason)
        raise ProcessExit(reason)

    async def _loop(self) -> None:
        p = self.p
        while True:
            timeout = self._fire_timers() if self.timers else None
            try:
                message = await p.receive(timeout=timeout)
            except TimeoutError:
                continue
            kind = type(message)
            if kind is Call:
                await self._handle_call(message)
            elif kind is Down:
                await self._handle_down(message)
            elif kind is ExitSignal:
                self._handle_exit_signal(message)
            elif kind is RetryRestart:
                await self._handle_retry(message)
            elif kind is InitAck:
                # A late acknowledgement: its start timed out (the child was killed) or its
                # start did not wait for one.
                _log.debug("supervisor %s dropped a late %r", p.pid, message, extra=log_fields(self.p.pid))
            else:
                _log.warning(
                    "supervisor %s dropped an unexpected message %r",
                    p.pid,
                    message,
                    extra=log_fields(self.p.pid),
                )

    def _fire_timers(self) -> float | None:
        timers = self.timers
        if not timers:
            return None
        now = anyio.current_time()
        while timers and timers[0][0] <= now:
            _, _, message = heapq.heappop(timers)
            self.p.send(self.p.pid, message)
        return max(0.0, timers[0][0] - now) if timers else None

    # -- events -----------------------------------------------------------------------------

    def _emit(self, kind: Callable[..., ev.SupervisorEvent], *args: Any) -> None:
        # The event is made only when someone listens: emitting is on every start and stop.
        if self.subscribers:
            event = kind(*args)
            for pid in self.subscribers:
                self.p.send(pid, event)

    # -- bookkeeping (every state change goes through these) --------------------------------

    def _insert(self, child: _Child) -> None:
        self.children[child.spec.key] = child
        if child.spec.type is SUPERVISOR:
            self.supervisors += 1

    def _remove(self, child: _Child) -> None:
        del self.children[child.spec.key]
        if child.spec.type is SUPERVISOR:
            self.supervisors -= 1

    def _drop(self, child: _Child) -> None:
        """Remove a spec for good (delete_child, a temporary child gone): release its lease."""
        self._set_state(child, STOPPED)
        self._remove(child)
        child.spec.start.release(self.p, child.spec.key, child.lease)

    def _set_running(self, child: _Child, pid: Pid, ref: Ref, info: Any = None) -> None:
        # Only a child that is not running is started: by_pid holds no other pid of it.
        assert type(child.state) is not ChildRunning
        child.state = ChildRunning(pid, info)
        child.retry = None
        child.ref = ref
        child.last_pid = pid
        self.by_pid[pid] = child
        if child.spec.type is SUPERVISOR:
            self.running_supervisors += 1

    def _set_state(self, child: _Child, state: ChildRef) -> None:
        old = child.state
        if type(old) is ChildRunning:
            del self.by_pid[old.pid]
            child.ref = None
            if child.spec.type is SUPERVISOR:
                self.running_supervisors -= 1
        child.state = state
        child.retry = None

    # -- calls ------------------------------------------------------------------------------

    async def _handle_call(self, call: Call) -> None:
        request = call.request
        # One dict lookup by the request's exact type (a subclass is not understood).
        handler = _HANDLERS.get(type(request))
        value: object
        if handler is None:
            value = Failed(TypeError(f"supervisor {self.p.pid} does not understand the request {request!r}"))
        else:
            # Only the supervisor's own errors are answers, and a malformed request (the
            # caller's error). Anything else raised here is a bug in the supervisor: let it
            # crash (run() stops the children and exits).
            try:
                value = await handler(self, request)
            except SupervisorError as exc:
                value = Failed(exc)
            except _Malformed as exc:
                value = Failed(TypeError(str(exc)))
        try:
            self.p.reply(call, value)
        except TypeError as exc:
            # The answer holds a value of a type that cannot cross nodes (the caller is on
            # another node): the caller still gets an answer, never a dead supervisor.
            _log.warning(
                "supervisor %s could not send %r to %s: %s",
                self.p.pid,
                value,
                call.sender,
                exc,
                extra=log_fields(self.p.pid),
            )
            self.p.reply(call, Failed(RuntimeError(f"the supervisor's answer cannot cross nodes: {exc}")))

    # The request handlers (see _HANDLERS): each answers one request type.

    async def _start_new_child(self, request: StartNewChild) -> ChildRef:
        # Acquire and the first start in one step (one round trip to a starter), the acquire
        # still first.
        child = self._new_child(request.spec)
        self._insert(child)
        try:
            return await self._start(child, acquire=True)
        except BaseException:
            # Cloud Haskell's startNewChild: a spec whose start fails is not kept.
            self._remove(child)
            if child.lease is not _NOT_ACQUIRED:
                child.spec.start.release(self.p, child.spec.key, child.lease)
            raise

    async def _add_child(self, request: AddChild) -> ChildRef:
        child = self._new_child(request.spec)
        key = child.spec.key
        # The start's acquire comes before anything that could start the child; what it
        # raises (StarterGone, BadClosure, ...) goes back to the caller unchanged, and any
        # other exception of it as the start failure it is.
        try:
            child.lease = await child.spec.start.acquire(self.p, key)
        except SupervisorError:
            raise
        except Exception as exc:
            raise StartFailureDied(key, Crashed.from_exception(exc)) from exc
        self._insert(child)
        return child.state

    async def _start_child(self, request: StartChild | RestartChild) -> ChildRef:
        child = self._find(request.key)
        if type(child.state) is ChildRunning or type(child.state) is ChildRestarting:
            raise AlreadyRunning(child.spec.key, child.state)
        return await self._start(child)

    async def _terminate_child(self, request: TerminateChild) -> None:
        child = self._find(request.key)
        if type(child.state) is ChildRunning:
            await self._stop_child(child)
        else:
            self._set_state(child, STOPPED)
        if child.spec.restart is TEMPORARY:
            self._drop(child)

    async def _delete_child(self, request: DeleteChild) -> None:
        child = self._find(request.key)
        if type(child.state) is not ChildStopped and type(child.state) is not ChildStartIgnored:
            raise ChildNotStopped(child.spec.key, child.state)
        self._drop(child)

    async def _lookup_child(self, request: LookupChild) -> Child | None:
        try:
            found: _Child | None = self.children.get(request.key)  # type: ignore[call-overload]
        except Exception as exc:
            raise _Malformed(_bad_key(request.key, exc)) from None
        return None if found is None else Child(found.spec.key, found.state, found.spec)

    async def _list_children(self, request: ListChildren) -> list[Child]:
        return [Child(key, child.state, child.spec) for key, child in self.children.items()]

    async def _get_statistics(self, request: GetStatistics) -> SupervisorStatistics:
        defined = len(self.children)
        running = len(self.by_pid)
        return SupervisorStatistics(
            defined=defined,
            running=running,
            workers=defined - self.supervisors,
            supervisors=self.supervisors,
            running_workers=running - self.running_supervisors,
            running_supervisors=self.running_supervisors,
            total_restarts=self.total_restarts,
            max_restarts=self.limit.max_restarts,
            within_seconds=self.limit.within_seconds,
            restarts_in_window=self._restarts_in_window(),
            restarts_by_key=tuple((key, child.restarts) for key, child in self.children.items()),
        )

    def _restarts_in_window(self) -> int:
        now, within = anyio.current_time(), self.limit.within_seconds
        return sum(1 for at in self.window.times if now - at <= within)

    async def _subscribe(self, request: Subscribe) -> None:
        if request.pid not in self.subscribers:
            ref = self.p.monitor(request.pid)
            self.subscribers[request.pid] = ref
            self.subscriber_refs[ref] = request.pid

    async def _unsubscribe(self, request: Unsubscribe) -> None:
        old = self.subscribers.pop(request.pid, None)
        if old is not None:
            del self.subscriber_refs[old]
            self.p.demonitor(old)

    async def _await_init(self, request: AwaitInit) -> None:
        return None

    def _find(self, key: object) -> _Child:
        # Any key that is not a child's key, of any type, is ChildNotFound (OTP's
        # {error, not_found}).
        try:
            child: _Child | None = self.children.get(key)  # type: ignore[call-overload]
        except Exception as exc:
            raise _Malformed(_bad_key(key, exc)) from None
        if child is None:
            raise ChildNotFound(key)  # type: ignore[arg-type]  # any key: its repr is shown
        return child

    def _new_child(self, spec: ChildSpec) -> _Child:
        """The record of a new spec (not inserted yet); its lease is not acquired."""
        if type(spec) is not ChildSpec and not isinstance(spec, ChildSpec):
            raise _Malformed(f"expected a ChildSpec, got {spec!r}")
        existing = self.children.get(spec.key)
        if existing is not None:
            raise DuplicateChild(spec.key, existing.state)
        return _Child(spec, _NOT_ACQUIRED)

    # -- starting and stopping one child ----------------------------------------------------

    async def _start(self, child: _Child, *, acquire: bool = False) -> ChildRef:
        """Start ``child`` and wait for its acknowledgement (OTP's synchronous start).

        Returns:
            ``ChildRunning(pid, info)`` once the child acknowledged; ``ChildStartIgnored()``
            if it asked to be ignored (a temporary child's spec is then dropped). On a
            failure the child's state is unchanged.

        Raises:
            StartFailureDied: The start failed (an exception from it becomes ``Crashed``),
                the child exited before it acknowledged (with its reason), or it did not
                acknowledge within ``start_timeout`` (``InitTimeout``; it was killed).
            BadClosure: The child's closure is not in the remote table.
        """
        p = self.p
        spec = child.spec
        key = spec.key
        start = spec.start
        try:
            if acquire:
                # On an error, acquire_and_start holds nothing: the lease stays unset.
                lease, pid, ref = await start.acquire_and_start(p, key)
                child.lease = lease
            else:
                pid, ref = await start.start(p, key, child.lease)
        except (StartFailureDied, BadClosure) as exc:
            self._emit(ev.SupervisedChildStartFailure, p.pid, key, _failure_reason(exc))
            raise
        except Exception as exc:
            reason = Crashed.from_exception(exc)
            self._emit(ev.SupervisedChildStartFailure, p.pid, key, reason)
            raise StartFailureDied(key, reason) from exc
        if spec.registered_name is not None and pid.node == p.node.name:
            try:
                p.node.register(spec.registered_name, pid)
            except ProcessNotAlive:
                pass  # it already exited: its Down is on its way
            except (NameTaken, ValueError) as exc:
                reason = Crashed.from_exception(exc)
                await self._kill_unstarted(pid, ref)
                self._emit(ev.SupervisedChildStartFailure, p.pid, key, reason)
                raise StartFailureDied(key, reason) from exc
        info = None
        if start.acknowledges:
            answer = await self._await_ack(child, pid, ref)
            if isinstance(answer, Down):
                return self._unacknowledged(child, pid, answer.reason)
            info = answer.info
        self._set_running(child, pid, ref, info)
        if self.subscribers:
            self._emit(ev.SupervisedChildStarted, p.pid, key, pid)
        return child.state

    async def _await_ack(self, child: _Child, pid: Pid, ref: Ref) -> InitAck | Down:
        """The child's ``InitAck``, or its ``Down`` if it exited first (its link's exit
        signal flushed); kill it if neither comes within its start timeout."""
        p = self.p

        def answers(message: Any) -> bool:
            return (type(message) is InitAck or type(message) is Down) and message.ref == ref

        seconds = child.spec.start_timeout
        try:
            # No timer where the acknowledgement cannot fail to come (worth about 10% of
            # restart_p50 and 3% of dpp84_cycle): a plain body on this node is acknowledged
            # as it starts to run.
            if seconds == math.inf or child.spec.start.acknowledges_as_it_runs(p):
                answer: InitAck | Down = await p.receive(where=answers)
            else:
                answer = await p.receive(where=answers, timeout=seconds)
        except TimeoutError:
            await self._kill_unstarted(pid, ref)
            reason = InitTimeout(seconds)
            self._emit(ev.SupervisedChildStartFailure, p.pid, child.spec.key, reason)
            raise StartFailureDied(child.spec.key, reason) from None
        if type(answer) is Down:
            await self._flush_exit_signal(pid)
        return answer

    def _unacknowledged(self, child: _Child, pid: Pid, reason: ExitReason) -> ChildRef:
        """The child exited before it acknowledged: ignored (``InitIgnored``) or a failure."""
        key = child.spec.key
        if type(reason) is InitIgnored:
            # OTP's ignore: the start answers at once; a temporary child's spec is dropped.
            self._emit(ev.SupervisedChildIgnored, self.p.pid, key, pid)
            if child.spec.restart is TEMPORARY:
                self._drop(child)
            else:
                self._set_state(child, IGNORED)
            return IGNORED
        self._emit(ev.SupervisedChildStartFailure, self.p.pid, key, reason)
        raise StartFailureDied(key, reason)

    async def _kill_unstarted(self, pid: Pid, ref: Ref) -> None:
        """Kill a child that was spawned but is not counted as started, and wait for it."""
        p = self.p
        p.unlink(pid)
        p.exit(pid, Kill())
        await p.receive(Down, where=lambda m: m.ref == ref)
        await self._flush_exit_signal(pid)

    async def _flush_exit_signal(self, pid: Pid) -> None:
        # A child that exited before it was unlinked left its link's exit signal behind; one
        # that sent its supervisor exit signals of its own (ignored while it was a child)
        # left those too: none may reach the loop, where a non-child's would stop it.
        p = self.p
        if not p.mailbox_size:
            return  # the common case, without a TimeoutError

        def from_child(message: Any) -> bool:
            return type(message) is ExitSignal and message.sender == pid

        with contextlib.suppress(TimeoutError):
            await p.receive(where=from_child, timeout=0)
            while p.mailbox_size and any(from_child(m) for m in p.queued()):
                await p.receive(where=from_child, timeout=0)

    def _signal_stop(self, child: _Child) -> float | None:
        """Send the child its stop signal; return how long to wait (None: for ever).

        The link stays until the child is down (``_stopped`` unlinks and flushes), as in OTP's
        ``shutdown/2``: a supervisor killed while it waits still takes the child with it. A
        child the signal has certainly killed (a ``Kill``, or a ``Shutdown`` to a child of
        this node that does not trap exits) dies whatever happens to the supervisor: it is
        unlinked at once, so that its exit leaves no exit signal to flush (about 6% of
        ``shared_starter_cycle``).
        """
        state = child.state
        assert type(state) is ChildRunning
        pid = state.pid
        policy = child.spec.shutdown
        p = self.p
        if isinstance(policy, StopImmediately):
            p.exit(pid, Kill())
            p.unlink(pid)
            return None
        p.exit(pid, SHUTDOWN)
        if p.node.is_exiting(pid):
            # It stops at its next checkpoint, and a Kill at the deadline could change
            # nothing. No timer (a cancel scope with a deadline on trio: 7% of dpp84_cycle
            # there).
            p.unlink(pid)
            return None
        return None if policy.seconds == math.inf else policy.seconds

    async def _stopped(self, child: _Child, reason: ExitReason) -> None:
        state = child.state
        assert type(state) is ChildRunning
        # The child is down; its link's exit signal, queued before its Down, is flushed.
        self.p.unlink(state.pid)
        if self.p.mailbox_size:
            await self._flush_exit_signal(state.pid)
        self._set_state(child, STOPPED)
        if self.subscribers:
            self._emit(ev.SupervisedChildStopped, self.p.pid, child.spec.key, state.pid, reason)

    async def _stop_child(self, child: _Child) -> ExitReason:
        """Stop a running child with its stop policy (OTP's shutdown/2); it ends ``ChildStopped``."""
        state = child.state
        assert type(state) is ChildRunning
        ref = child.ref
        p = self.p
        timeout = self._signal_stop(child)

        def is_down(message: Any) -> bool:
            return type(message) is Down and message.ref == ref

        try:
            # A zero timeout only looks; no timeout waits without a timer.
            down: Down = await p.receive(where=is_down, timeout=timeout)
        except TimeoutError:
            p.exit(state.pid, Kill())
            down = await p.receive(where=is_down)
        await self._stopped(child, down.reason)
        return down.reason

    async def _stop_parallel(self, children: list[_Child]) -> None:
        """Signal every child at once, then collect their ``Down``s (killing the slow ones)."""
        pending: dict[Ref, _Child] = {}
        deadlines: list[tuple[float, int, Ref]] = []
        now = anyio.current_time()
        for index, child in enumerate(children):
            assert child.ref is not None
            pending[child.ref] = child
            timeout = self._signal_stop(child)
            if timeout is not None:
                deadlines.append((now + timeout, index, child.ref))
        heapq.heapify(deadlines)
        while pending:
            while deadlines and deadlines[0][2] not in pending:
                heapq.heappop(deadlines)
            wait = max(0.0, deadlines[0][0] - anyio.current_time()) if deadlines else None
            try:
                down = await self.p.receive(Down, where=lambda m: m.ref in pending, timeout=wait)
            except TimeoutError:
                now = anyio.current_time()
                while deadlines and deadlines[0][0] <= now:
                    _, _, ref = heapq.heappop(deadlines)
                    late = pending.get(ref)
                    if late is not None and type(late.state) is ChildRunning:
                        self.p.exit(late.state.pid, Kill())
                continue
            await self._stopped(pending.pop(down.ref), down.reason)

    async def _shutdown_children(self) -> None:
        """Stop every child in the shutdown order (the supervisor is exiting)."""
        mode = self.config.shutdown
        children = list(self.children.values())
        for child in children:
            if type(child.state) is ChildRestarting:
                self._set_state(child, STOPPED)
        if type(mode) is ParallelShutdown:
            await self._stop_parallel([c for c in children if type(c.state) is ChildRunning])
            return
        assert type(mode) is SequentialShutdown
        if mode.order is not LEFT_TO_RIGHT:
            children.reverse()
        for child in children:
            if type(child.state) is ChildRunning:
                await self._stop_child(child)

    # -- exits and restarts -----------------------------------------------------------------

    def _handle_exit_signal(self, signal: ExitSignal) -> None:
        if signal.sender in self.by_pid:
            return  # a child's link: its Down follows and is handled there
        if type(signal.reason) is Normal and signal.sender != self.p.parent:
            return
        # The parent (or the node, or anyone asking it to shut down) wants it gone.
        raise _Stop(signal.reason)

    async def _handle_down(self, down: Down) -> None:
        child = self.by_pid.get(down.pid)
        if child is not None and child.ref == down.ref:
            await self._child_exited(child, down.reason)
            return
        subscriber = self.subscriber_refs.pop(down.ref, None)
        if subscriber is not None:
            del self.subscribers[subscriber]
        # Otherwise a stale Down (of a child already replaced or stopped): ignored.

    async def _child_exited(self, child: _Child, reason: ExitReason) -> None:
        spec = child.spec
        state = child.state
        assert type(state) is ChildRunning
        pid = state.pid
        self._set_state(child, STOPPED)
        if type(reason) is InitIgnored:
            self._emit(ev.SupervisedChildIgnored, self.p.pid, spec.key, pid)
            if spec.restart is TEMPORARY:
                self._drop(child)
            else:
                self._set_state(child, IGNORED)
            return
        self._emit(ev.SupervisedChildDied, self.p.pid, spec.key, pid, reason)
        _log.info(
            "supervisor %s: child %r (%s) exited with %r",
            self.p.pid,
            spec.key,
            pid,
            reason,
            extra=log_fields(self.p.pid),
        )
        if spec.restart is TEMPORARY:
            self._drop(child)
            return
        if reason.normal and (spec.restart is TRANSIENT or spec.restart is INTRINSIC):
            if spec.restart is INTRINSIC:
                raise _Stop(Normal())
            return
        await self._restart(child, reason)

    async def _handle_retry(self, message: RetryRestart) -> None:
        child = self.children.get(message.key)
        if child is None or child.retry != message.token:
            return  # started, terminated or deleted meanwhile
        anchor = None if message.anchor is None else self.children.get(message.anchor)
        await self._restart(child, message.reason, anchor)

    async def _restart(self, child: _Child, reason: ExitReason, anchor: _Child | None = None) -> None:
        """A restart is due for ``child``: count it, then restart it (or its branch).

        ``anchor`` is the child whose branch a retried branch restart restarts (the one whose
        exit began it); by default, ``child``'s own branch.
        """
        key = child.spec.key
        _, exceeded = add_restart(self.window, anyio.current_time(), self.limit)
        if exceeded:
            delay = child.spec.restart_delay
            if type(self.strategy) is RestartOne and delay is not None:
                # Cloud Haskell's childRestartDelay: wait instead of giving up.
                self._emit(ev.SupervisedChildRestarting, self.p.pid, key, child.last_pid, reason)
                self._schedule_retry(child, reason, delay)
                return
            self._emit(ev.SupervisorIntensityReached, self.p.pid, key, reason)
            _log.warning(
                "supervisor %s reached its restart intensity %r restarting %r after %r",
                self.p.pid,
                self.limit,
                key,
                reason,
                extra=log_fields(self.p.pid),
            )
            raise _Stop(ReachedMaxRestartIntensity(key, reason))
        self.total_restarts += 1
        child.restarts += 1
        if type(self.strategy) is RestartOne:
            self._emit(ev.SupervisedChildRestarting, self.p.pid, key, child.last_pid, reason)
            await self._start_or_retry(child, reason)
        else:
            await self._restart_branch(child if anchor is None else anchor, reason)

    async def _start_or_retry(self, child: _Child, reason: ExitReason, anchor: _Child | None = None) -> bool:
        try:
            await self._start(child)
        except (StartFailureDied, BadClosure):
            # OTP's try_again_restart: a message to itself, so calls interleave; it counts again.
            self._schedule_retry(child, reason, child.spec.restart_delay or 0.0, anchor)
            return False
        return True

    def _schedule_retry(
        self, child: _Child, reason: ExitReason, delay: float, anchor: _Child | None = None
    ) -> None:
        self._set_state(child, ChildRestarting(child.last_pid))
        token = next(self.tokens)
        child.retry = token
        message = RetryRestart(child.spec.key, token, reason, None if anchor is None else anchor.spec.key)
        if delay > 0:
            heapq.heappush(self.timers, (anyio.current_time() + delay, token, message))
        else:
            self.p.send(self.p.pid, message)

    def _branch(self, child: _Child) -> list[_Child]:
        strategy = self.strategy
        children = list(self.children.values())
        if type(strategy) is RestartAll:
            return children
        index = children.index(child)
        if type(strategy) is RestartLeft:
            return children[: index + 1]
        return children[index:]

    async def _restart_branch(self, failed: _Child, reason: ExitReason) -> None:
        strategy = self.strategy
        assert type(strategy) is RestartAll or type(strategy) is RestartLeft or type(strategy) is RestartRight
        mode = strategy.mode
        branch = self._branch(failed)
        if mode.order is not LEFT_TO_RIGHT:
            branch.reverse()
        restarted: list[str] = []
        # A start that fails schedules a retry of this whole branch (anchored at ``failed``):
        # the children after it in the start order are stopped and must not be forgotten.
        if type(mode) is RestartEach:
            for child in branch:
                if await self._branch_stop(child, reason):
                    if not await self._start_or_retry(child, reason, failed):
                        return
                    restarted.append(child.spec.key)
        else:
            to_start = [child for child in branch if await self._branch_stop(child, reason)]
            if type(mode) is not RestartInOrder:
                to_start.reverse()
            for child in to_start:
                if not await self._start_or_retry(child, reason, failed):
                    return
                restarted.append(child.spec.key)
        self._emit(ev.SupervisorBranchRestarted, self.p.pid, failed.spec.key, reason, tuple(restarted))

    async def _branch_stop(self, child: _Child, reason: ExitReason) -> bool:
        """Stop one child of a branch; return whether it is to be started again."""
        running = type(child.state) is ChildRunning
        if child.spec.restart is TEMPORARY:
            if running:
                # OTP: a temporary sibling stopped by a branch restart is dropped, not restarted.
                await self._stop_child(child)
                self._drop(child)
            return False
        self._emit(ev.SupervisedChildRestarting, self.p.pid, child.spec.key, child.last_pid, reason)
        if running:
            await self._stop_child(child)
        return True


#: The handler of each request type, by its exact type.
_HANDLERS: dict[type, Callable[[_Server, Any], Awaitable[object]]] = {
    StartNewChild: _Server._start_new_child,
    TerminateChild: _Server._terminate_child,
    DeleteChild: _Server._delete_child,
    AddChild: _Server._add_child,
    StartChild: _Server._start_child,
    RestartChild: _Server._start_child,
    LookupChild: _Server._lookup_child,
    ListChildren: _Server._list_children,
    GetStatistics: _Server._get_statistics,
    Subscribe: _Server._subscribe,
    Unsubscribe: _Server._unsubscribe,
    AwaitInit: _Server._await_init,
}
