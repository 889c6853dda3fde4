"""The node: owns a task group, the process table, the registry, and the way out to peers.

Signals between processes of one node are applied at once, which keeps them in the order
sent; a signal for another node's pid goes through the transport as a value from
``signals.py``. When a process exits, each linked process gets an exit signal and each
watcher a ``Down``, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from .errors import NameNotRegistered, NameTaken, NodeNotRunning, ProcessExit, ProcessNotAlive
from .mailbox import AsyncioMailbox, Mailbox, mailbox_class
from .pid import Pid, Ref, new_incarnation
from .process import UNBOUND, Process, ProcessFunction
from .reasons import (
    Crashed,
    Down,
    ExitReason,
    ExitSignal,
    Kill,
    Killed,
    NoConnection,
    NoProc,
    Normal,
    Shutdown,
)
from .signals import (
    Call,
    CallSignal,
    DemonitorSignal,
    DownSignal,
    ExitSignalSent,
    LinkSignal,
    MessageSignal,
    MonitorSignal,
    NamedMessageSignal,
    Reply,
    ReplySignal,
    Signal,
    UnlinkSignal,
    destination_node,
)
from .transport import Transport

__all__ = ["Address", "Node"]

_log = logging.getLogger("refcount_starter.runtime.node")

#: Where a message can be sent: a pid, a local registered name, or ``(name, node)``.
Address = Pid | str | tuple[str, str]

# Makes a Pid or a Ref of the node's own parts, which need no validation (one per spawn,
# call and monitor).
_new_identifier = tuple.__new__

NORMAL = Normal()
KILLED = Killed()
_anonymous = itertools.count(1)


class Node:
    """A node: processes, their registry, and (optionally) a transport to other nodes.

    Use it as an async context manager; leaving it stops every process (the processes that
    no live process spawned get ``Shutdown`` in reverse spawn order, each waited for up to
    ``shutdown_timeout`` seconds, then killed) and waits for them.

    Args:
        name: The node's name, unique among connected nodes; a fresh one by default.
        transport: How to reach other nodes (``InMemoryNetwork().transport()``, or the NATS
            transport); without one the node reaches no other.
        shutdown_timeout: Seconds each top-level process gets to stop when the node exits.
        dead_table_size: How many recently dead pids the node remembers, so that a
            ``NoProc`` can say when and why a pid died.

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: ``shutdown_timeout`` is negative or ``dead_table_size`` below 0.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        transport: Transport | None = None,
        shutdown_timeout: float = 5.0,
        dead_table_size: int = 10_000,
    ) -> None:
        if name is None:
            name = f"node{next(_anonymous)}"
        if not isinstance(name, str) or not name or any(c in name for c in ". *<>?\t\n"):
            raise ValueError(
                f"a node name must be a non-empty str without dots, spaces, '*', '<', '>' or '?', got {name!r}"
            )
        if isinstance(shutdown_timeout, bool) or not isinstance(shutdown_timeout, int | float):
            raise TypeError(f"shutdown_timeout must be a number of seconds, got {shutdown_timeout!r}")
        if not shutdown_timeout >= 0:
            raise ValueError(f"shutdown_timeout must be >= 0, got {shutdown_timeout!r}")
        if type(dead_table_size) is not int or dead_table_size < 0:
            raise ValueError(f"dead_table_size must be an int >= 0, got {dead_table_size!r}")
        self._name = name
        self._incarnation = new_incarnation()
        self._transport = transport
        self.shutdown_timeout = float(shutdown_timeout)
        self._dead_table_size = dead_table_size
        # Invariant: _procs holds exactly the live processes, in spawn order.
        self._procs: dict[int, Process] = {}
        self._names: dict[str, Process] = {}
        # An OrderedDict: forgetting the oldest is popitem(last=False), O(1); a dict's
        # del d[next(iter(d))] slows down as deleted slots pile up at its front.
        self._dead: OrderedDict[Pid, tuple[ExitReason, float]] = OrderedDict()
        self._serials = itertools.count(1)
        self._refs = itertools.count(1)
        # Calls from other nodes not answered yet: ref -> the callee, whose watcher entry the
        # reply removes (ReplySignal). Invariant: each entry's ref is in its callee's _watchers.
        self._inbound_calls: dict[Ref, Process] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._mailbox_class: type[Mailbox] = AsyncioMailbox
        # On asyncio a process is a bare task (a quarter of an anyio task group task's
        # memory, and faster to start), killed with Task.cancel() delivered until it ends; on
        # trio it runs in the node's task group inside its own cancel scope.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._stopping = False
        # The node itself, as the sender of the exit signals it sends at shutdown.
        self._self_pid = Pid(name, self._incarnation, 0)

    # -- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The node's name."""
        return self._name

    @property
    def incarnation(self) -> int:
        """This run's incarnation: pids of an earlier one are stale everywhere."""
        return self._incarnation

    def __repr__(self) -> str:
        return f"<Node {self._name}.{self._incarnation} processes={len(self._procs)}>"

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        if self._running or self._tg is not None:
            raise RuntimeError(f"node {self._name!r} is already running; a Node is entered once")
        self._mailbox_class = mailbox_class()
        self._loop = asyncio.get_running_loop() if self._mailbox_class is AsyncioMailbox else None
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._running = True
        if self._transport is not None:
            try:
                await self._transport.attach(self)
            except BaseException:
                self._running = False
                await tg.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._stopping = True
        with anyio.CancelScope(shield=True):
            try:
                await self._stop_all()
            finally:
                self._running = False
                if self._transport is not None:
                    await self._transport.detach()
        await self._tg.__aexit__(None, None, None)
        return None

    async def _stop_all(self) -> None:
        # Top-level processes first, newest first, each through its own shutdown
        # (a supervisor stops its children in its own order). A process whose spawner
        # has gone meanwhile is top-level too: the next pass gives it its Shutdown.
        # See ADR-0010.
        signalled: set[int] = set()
        while True:
            orphans = [
                proc
                for proc in reversed(self._procs.values())
                if not proc._foreign
                and proc.pid.serial not in signalled
                and (proc.parent is None or self._lookup(proc.parent) is None)
            ]
            if not orphans:
                break
            for proc in orphans:
                signalled.add(proc.pid.serial)
                await self._stop(proc, Shutdown("node stopping"), self.shutdown_timeout)
        # Whatever is left (processes whose spawner is still alive but did not stop them,
        # and processes started while the node was stopping), until none is left.
        while self._procs:
            for proc in reversed(list(self._procs.values())):
                if proc._foreign:
                    self._kill(proc, KILLED)
                else:
                    await self._stop(proc, Kill(), None)
            if all(proc._foreign for proc in self._procs.values()):
                break

    async def _stop(self, proc: Process, reason: ExitReason, timeout: float | None) -> None:
        if proc.reason is not None:
            return
        exited = proc._exited = proc._exited or anyio.Event()
        self._exit_signal(proc, self._self_pid, reason, linked=False)
        if timeout is not None:
            with anyio.move_on_after(timeout):
                await exited.wait()
            if proc.reason is None:
                self._kill(proc, KILLED)
        await exited.wait()

    @property
    def stopping(self) -> bool:
        """Whether the node has begun to stop its processes (its ``async with`` block is
        ending). Only the node sets it, before it sends any process its stop signal, so a
        process can tell the node's own stop from a ``Node.exit`` (ADR-0004)."""
        return self._stopping

    def _check_running(self) -> None:
        if not self._running:
            raise NodeNotRunning(f"node {self._name!r} is not running; use it inside 'async with'")

    # -- spawning ---------------------------------------------------------------------------

    def spawn(
        self, fn: ProcessFunction, *args: Any, trap_exits: bool = False, name: str | None = None
    ) -> Pid:
        """Start ``fn(process, *args)`` as a top-level process; return its pid at once.

        Args:
            fn: The async process function.
            *args: Its extra arguments.
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.
            name: A name to register the process under.

        Raises:
            TypeError: ``fn`` is not callable.
            NodeNotRunning: The node is not inside its ``async with`` block.
        """
        return self._spawn(fn, args, None, trap_exits=trap_exits, name=name).pid

    def _spawn(
        self,
        fn: ProcessFunction,
        args: tuple[Any, ...],
        parent: Process | None,
        *,
        link: bool = False,
        monitor: bool = False,
        trap_exits: bool = False,
        name: str | None = None,
        owner: tuple[Pid, Ref] | None = None,
    ) -> Process:
        if not self._running:
            self._check_running()
        if not callable(fn):
            raise TypeError(f"a process function must be an async callable, got {fn!r}")
        if name is not None:
            # Checked before the process exists, so that a bad name leaves nothing behind.
            self._check_name(name)
        proc = self._new_process(parent, trap_exits)
        if name is not None:
            self._register(name, proc)
        if owner is not None:
            # Linked to and monitored by ``owner`` (maybe on another node) before it runs.
            owner_pid, ref = owner
            proc.parent = owner_pid
            proc._links.add(owner_pid)
            proc._watchers[ref] = owner_pid
            local_owner = self._lookup(owner_pid)
            if local_owner is not None:
                local_owner._links.add(proc.pid)
                local_owner._monitors[ref] = proc.pid
            elif self._is_remote(owner_pid):
                self._transport_send(LinkSignal(proc.pid, owner_pid))
            else:
                # The owner is already dead: the new process dies with it, as a linked one would.
                proc._links.discard(owner_pid)
                del proc._watchers[ref]
                self._kill(proc, self._noproc(owner_pid))
        elif parent is not None:
            if link:
                proc._links.add(parent.pid)
                parent._links.add(proc.pid)
            if monitor:
                ref = self._new_ref()
                proc._watchers[ref] = parent.pid
                parent._monitors[ref] = proc.pid
        if self._loop is not None:
            proc._task = self._loop.create_task(self._run_task(proc, fn, args))
        else:
            proc._scope = anyio.CancelScope()
            assert self._tg is not None
            self._tg.start_soon(self._run, proc, fn, args, name="refcount_starter.process")
        return proc

    def _new_process(self, parent: Process | None, trap_exits: bool) -> Process:
        serial = next(self._serials)
        # The node's own parts are valid: skip Pid's validators (one Pid per spawn).
        pid = _new_identifier(Pid, (self._name, self._incarnation, serial))
        proc = Process(
            self,
            pid,
            None if parent is None else parent.pid,
            self._mailbox_class(),
            None,
            bool(trap_exits),
        )
        self._procs[serial] = proc
        return proc

    async def _run(self, proc: Process, fn: ProcessFunction, args: tuple[Any, ...]) -> None:
        reason: ExitReason = KILLED
        try:
            with proc._scope:
                if proc._pending is None:
                    await fn(proc, *args)
                reason = NORMAL
        except ProcessExit as exc:
            reason = exc.reason
        except Exception as exc:
            reason = Crashed.from_exception(exc)
            _log.error("process %s crashed", proc.pid, exc_info=exc)
        finally:
            if proc._pending is not None:
                reason = proc._pending
            self._exit(proc, reason)

    async def _run_task(self, proc: Process, fn: ProcessFunction, args: tuple[Any, ...]) -> None:
        # The asyncio twin of _run: the kill is Task.cancel(), delivered again at every loop
        # iteration until the task ends (see _kill), so CancelledError with _pending set is
        # the kill.
        proc._started = True
        reason: ExitReason = KILLED
        try:
            if proc._pending is None:
                await fn(proc, *args)
            reason = NORMAL
        except ProcessExit as exc:
            reason = exc.reason
        except asyncio.CancelledError:
            if proc._pending is None:
                raise
        except Exception as exc:
            reason = Crashed.from_exception(exc)
            _log.error("process %s crashed", proc.pid, exc_info=exc)
        finally:
            if proc._pending is not None:
                reason = proc._pending
            self._exit(proc, reason)

    def _recancel(self, proc: Process) -> None:
        task = proc._task
        if proc.reason is None and task is not None and not task.done():
            task.cancel()
            assert self._loop is not None
            self._loop.call_soon(self._recancel, proc)

    @contextlib.asynccontextmanager
    async def process(self, *, trap_exits: bool = False, name: str | None = None) -> AsyncIterator[Process]:
        """Make the calling task a process for the duration of the block.

        Leaving the block normally exits the process ``Normal``; an exception leaving it
        exits it ``Crashed`` (and propagates). If an exit signal kills the process, its
        block is cancelled and ``ProcessExit(reason)`` is raised out of it.

        Args:
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.
            name: A name to register the process under.

        Raises:
            NodeNotRunning: The node is not inside its ``async with`` block.
        """
        self._check_running()
        if name is not None:
            self._check_name(name)
        proc = self._new_process(None, trap_exits)
        proc._foreign = True
        proc._scope = anyio.CancelScope()
        if name is not None:
            self._register(name, proc)
        reason: ExitReason = NORMAL
        try:
            with proc._scope:
                try:
                    yield proc
                except ProcessExit as exc:
                    reason = exc.reason
                except Exception as exc:
                    reason = Crashed.from_exception(exc)
                    raise
                except BaseException:
                    # The block was cancelled from outside (or interrupted): the process
                    # did not finish, so its links and a start_link'ed supervisor must not
                    # see a Normal exit.
                    reason = Shutdown("cancelled")
                    raise
        finally:
            if proc._pending is not None:
                reason = proc._pending
            if proc.reason is None:
                self._exit(proc, reason)
        if proc._pending is not None:
            raise ProcessExit(proc._pending)

    # -- exit -------------------------------------------------------------------------------

    def _exit(self, proc: Process, reason: ExitReason) -> None:
        pid = proc.pid
        del self._procs[pid.serial]
        proc.reason = reason
        if proc._name is not None:
            del self._names[proc._name]
        if self._dead_table_size:
            dead = self._dead
            if len(dead) >= self._dead_table_size:
                dead.popitem(last=False)
            dead[pid] = (reason, time.time())
        # Each step below changes the other processes' tables, never this one's: its own are
        # read, then emptied.
        links = proc._links
        for other in links:
            self._link_exit(pid, other, reason)
        links.clear()
        watchers = proc._watchers
        inbound = self._inbound_calls
        for ref, watcher in watchers.items():
            if inbound:
                inbound.pop(ref, None)
            self._down(watcher, ref, pid, reason)
        watchers.clear()
        monitors = proc._monitors
        for ref, target in monitors.items():
            self._drop_watch(pid, target, ref)
        monitors.clear()
        if proc._exited is not None:
            proc._exited.set()

    def _kill(self, proc: Process, reason: ExitReason) -> None:
        if proc._pending is None and proc.reason is None:
            proc._pending = reason
            task = proc._task
            if task is not None:
                # asyncio: a task that has not started sees _pending when it does (cancelling
                # it now would skip its exit bookkeeping). A started one is cancelled now and
                # again at each loop iteration until it ends: level-triggered, like a cancel
                # scope, so an await in a finally cannot outlive the kill.
                if proc._started:
                    task.cancel()
                    assert self._loop is not None
                    self._loop.call_soon(self._recancel, proc)
            elif proc._scope is not None:  # else not scheduled yet: it sees _pending at start
                proc._scope.cancel()

    def _exit_signal(self, target: Process, sender: Pid, reason: ExitReason, *, linked: bool) -> None:
        if type(reason) is Kill and not linked:
            self._kill(target, KILLED)
        elif target.trap_exits:
            target._mailbox.put(ExitSignal(sender, reason))
        elif type(reason) is Normal:
            if sender == target.pid and not linked:
                self._kill(target, reason)
        else:
            self._kill(target, reason)

    def _link_exit(self, sender: Pid, to: Pid, reason: ExitReason) -> None:
        target = self._lookup(to)
        if target is not None:
            target._links.discard(sender)
            self._exit_signal(target, sender, reason, linked=True)
        elif to.node != self._name:
            self._transport_send(ExitSignalSent(sender, to, reason, True))

    def _down(self, watcher: Pid, ref: Ref, pid: Pid, reason: ExitReason) -> None:
        proc = self._lookup(watcher)
        if proc is not None:
            if proc._monitors.pop(ref, None) is not None:
                proc._mailbox.put(Down(ref, pid, reason))
        elif watcher.node != self._name:
            self._transport_send(DownSignal(watcher, ref, pid, reason))

    def _drop_watch(self, watcher: Pid, target: Pid, ref: Ref) -> None:
        if target is UNBOUND:
            return
        if target.node != self._name:
            self._transport_send(DemonitorSignal(watcher, target, ref))
        elif target.incarnation == self._incarnation:  # _lookup, written out (a hot path)
            proc = self._procs.get(target.serial)
            if proc is not None:
                proc._watchers.pop(ref, None)

    # -- operations behind the Process handle -----------------------------------------------

    def _lookup(self, pid: Pid) -> Process | None:
        if pid.node != self._name or pid.incarnation != self._incarnation:
            return None
        return self._procs.get(pid.serial)

    def _noproc(self, pid: Pid) -> NoProc:
        known = self._dead.get(pid)
        if known is None:
            return NoProc(pid)
        return NoProc(pid, known[0], known[1])

    def _is_remote(self, pid: Pid) -> bool:
        return pid.node != self._name

    def _send(self, sender: Pid | None, to: Address, message: Any) -> None:
        if type(to) is Pid:
            if to.node == self._name:
                if to.incarnation == self._incarnation:
                    proc = self._procs.get(to.serial)
                    if proc is not None:
                        proc._mailbox.put(message)
                # A dead pid, or one of an earlier incarnation: dropped, as in Erlang.
                return
            self._transport_send(MessageSignal(sender, to, message))
        elif isinstance(to, str):
            self._named(to)._mailbox.put(message)
        elif isinstance(to, tuple) and len(to) == 2 and all(isinstance(part, str) for part in to):
            name, node = to
            if node == self._name:
                self._named(name)._mailbox.put(message)
            else:
                self._transport_send(NamedMessageSignal(sender, node, name, message))
        else:
            raise TypeError(f"a message goes to a Pid, a registered name or a (name, node) pair, got {to!r}")

    def _named(self, name: str) -> Process:
        proc = self._names.get(name)
        if proc is None:
            raise NameNotRegistered(name, self._name)
        return proc

    def _resolve(self, target: Address) -> Pid:
        if type(target) is Pid:
            return target
        if isinstance(target, str):
            return self._named(target).pid
        if isinstance(target, tuple) and len(target) == 2 and all(isinstance(p, str) for p in target):
            if target[1] == self._name:
                return self._named(target[0]).pid
            raise TypeError(f"a remote name {target!r} cannot be monitored or called; use its pid")
        raise TypeError(f"expected a Pid, a registered name or a (name, node) pair, got {target!r}")

    def _link(self, proc: Process, pid: Pid) -> None:
        if type(pid) is not Pid:
            raise TypeError(f"link takes a Pid, got {pid!r}")
        if pid == proc.pid or pid in proc._links:
            return
        target = self._lookup(pid)
        if target is not None:
            proc._links.add(pid)
            target._links.add(proc.pid)
        elif self._is_remote(pid):
            proc._links.add(pid)
            self._transport_send(LinkSignal(proc.pid, pid))
        else:
            self._exit_signal(proc, pid, self._noproc(pid), linked=True)

    def _unlink(self, proc: Process, pid: Pid) -> None:
        if type(pid) is not Pid:
            raise TypeError(f"unlink takes a Pid, got {pid!r}")
        if pid not in proc._links:
            return
        proc._links.discard(pid)
        target = self._lookup(pid)
        if target is not None:
            target._links.discard(proc.pid)
        elif self._is_remote(pid):
            self._transport_send(UnlinkSignal(proc.pid, pid))

    def _monitor(self, proc: Process, target: Address) -> Ref:
        return self._monitor_pid(proc, self._resolve(target))

    def _monitor_pid(self, proc: Process, pid: Pid) -> Ref:
        # _new_ref and _lookup, written out: every call monitors its callee.
        ref = _new_identifier(Ref, (self._name, self._incarnation, next(self._refs)))
        local = pid.node == self._name
        watched = self._procs.get(pid.serial) if local and pid.incarnation == self._incarnation else None
        if watched is not None:
            watched._watchers[ref] = proc.pid
            proc._monitors[ref] = pid
        elif not local:
            proc._monitors[ref] = pid
            self._transport_send(MonitorSignal(proc.pid, pid, ref))
        else:
            proc._mailbox.put(Down(ref, pid, self._noproc(pid)))
        return ref

    def _call(self, proc: Process, pid: Pid, request: Any) -> Ref:
        """Monitor ``pid`` and send it ``Call``; return the call's ref (behind ``Process.call``).

        To another node the two travel as one ``CallSignal``.
        """
        if pid.node != self._name:
            ref = self._new_ref()
            proc._monitors[ref] = pid  # before the send: an undeliverable call fires it
            try:
                self._transport_send(CallSignal(proc.pid, pid, ref, request))
            except BaseException:
                del proc._monitors[ref]  # the request cannot be encoded: no call was made
                raise
            return ref
        ref = self._monitor_pid(proc, pid)
        self._send(proc.pid, pid, Call(proc.pid, ref, request))
        return ref

    def _reply(self, sender: Pid, call: Call, value: Any) -> None:
        """Answer ``call`` (behind ``Process.reply``).

        A call that came as a ``CallSignal`` is answered with a ``ReplySignal``, which ends
        its monitor on both nodes; any other goes back as a ``Reply`` message.
        """
        ref = call.ref
        inbound = self._inbound_calls
        callee = inbound.get(ref) if inbound and type(ref) is Ref else None
        if callee is not None and type(call.sender) is Pid:
            self._transport_send(ReplySignal(sender, call.sender, ref, value))
            # After the send: if the value cannot be encoded, the call is still open.
            del self._inbound_calls[ref]
            callee._watchers.pop(ref, None)
            return
        self._send(sender, call.sender, Reply(ref, value))

    def _demonitor(self, proc: Process, ref: Ref, flush: bool) -> None:
        if type(ref) is not Ref:
            raise TypeError(f"demonitor takes the Ref that monitor returned, got {ref!r}")
        target = proc._monitors.pop(ref, None)
        if target is not None:
            self._drop_watch(proc.pid, target, ref)
        if flush and len(proc._mailbox):
            proc._mailbox.remove_all(lambda m: type(m) is Down and m.ref == ref)

    def _exit_from(self, sender: Pid, pid: Pid, reason: ExitReason) -> None:
        if type(pid) is not Pid:
            raise TypeError(f"exit takes a Pid, got {pid!r}")
        if not isinstance(reason, ExitReason):
            raise TypeError(
                f"an exit signal carries an ExitReason (Normal(), Shutdown(), ...), got {reason!r}"
            )
        if pid.node != self._name:
            self._transport_send(ExitSignalSent(sender, pid, reason, False))
        elif pid.incarnation == self._incarnation:
            target = self._procs.get(pid.serial)
            if target is not None:
                self._exit_signal(target, sender, reason, linked=False)

    def _new_ref(self) -> Ref:
        # The node's own parts are valid: skip Ref's validators (one Ref per call and monitor).
        ref = _new_identifier(Ref, (self._name, self._incarnation, next(self._refs)))
        return ref

    # -- public node-level operations -------------------------------------------------------

    def send(self, to: Address, message: Any) -> None:
        """Send ``message`` from outside any process (the sender is unknown to the receiver)."""
        self._send(None, to, message)

    def exit(self, pid: Pid, reason: ExitReason) -> None:
        """Send ``pid`` an exit signal from the node itself (see ``Process.exit``).

        Args:
            pid: The target.
            reason: The exit reason (``Kill()`` cannot be trapped).

        Raises:
            TypeError: ``pid`` is not a Pid or ``reason`` not an ``ExitReason``.
        """
        self._exit_from(self._self_pid, pid, reason)

    def register(self, name: str, pid: Pid) -> None:
        """Register a live local process under ``name`` (released when it exits).

        Raises:
            TypeError: ``name`` is not a non-empty str or ``pid`` not a Pid.
            NameTaken: Another live process holds ``name``.
            ProcessNotAlive: ``pid`` is not a live process of this node.
            ValueError: The process already has a name.
        """
        if type(pid) is not Pid:
            raise TypeError(f"register takes a Pid, got {pid!r}")
        proc = self._lookup(pid)
        if proc is None:
            raise ProcessNotAlive(pid, self._noproc(pid))
        self._register(name, proc)

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered name must be a non-empty str, got {name!r}")
        holder = self._names.get(name)
        if holder is not None:
            raise NameTaken(name, holder.pid)

    def _register(self, name: str, proc: Process) -> None:
        self._check_name(name)
        if proc._name is not None:
            raise ValueError(f"process {proc.pid} is already registered as {proc._name!r}")
        self._names[name] = proc
        proc._name = name

    def unregister(self, name: str) -> None:
        """Release ``name``.

        Raises:
            NameNotRegistered: No live process holds ``name``.
        """
        proc = self._named(name)
        del self._names[name]
        proc._name = None

    def whereis(self, name: str) -> Pid | None:
        """The pid registered under ``name`` on this node, or ``None``."""
        proc = self._names.get(name)
        return None if proc is None else proc.pid

    def registered(self) -> list[str]:
        """The names registered on this node."""
        return list(self._names)

    def is_alive(self, pid: Pid) -> bool:
        """Whether ``pid`` is a live process of this node."""
        return self._lookup(pid) is not None

    def processes(self) -> list[Pid]:
        """The pids of the live processes, in spawn order."""
        return [proc.pid for proc in self._procs.values()]

    @property
    def process_count(self) -> int:
        """How many processes are alive on this node."""
        return len(self._procs)

    def why_dead(self, pid: Pid) -> NoProc:
        """What the node still knows of a dead or unknown pid, as a ``NoProc`` reason."""
        return self._noproc(pid)

    async def wait(self, pid: Pid) -> ExitReason:
        """Wait until the local process ``pid`` has exited; return its exit reason.

        A pid that has already exited returns its exit reason at once, while the node still
        remembers it (see ``dead_table_size``); one it never had or has forgotten returns
        ``NoProc(pid)``. Either way the answer does not depend on whether the process
        exited just before or just after the call.
        """
        proc = self._lookup(pid)
        if proc is None:
            known = self._dead.get(pid)
            return self._noproc(pid) if known is None else known[0]
        exited = proc._exited = proc._exited or anyio.Event()
        await exited.wait()
        assert proc.reason is not None
        return proc.reason

    # -- the transport's side ---------------------------------------------------------------

    def _transport_send(self, signal: Signal) -> None:
        if self._transport is None:
            self.undeliverable(signal, NoConnection(destination_node(signal)))
        else:
            self._transport.send(signal)

    def deliver(self, signal: Signal) -> None:
        """Apply a signal that arrived from another node (called by the transport)."""
        # The commonest first: calls and their replies, then messages.
        if type(signal) is CallSignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                proc._watchers[signal.ref] = signal.sender
                self._inbound_calls[signal.ref] = proc
                proc._mailbox.put(Call(signal.sender, signal.ref, signal.request))
            else:
                self._transport_send(
                    DownSignal(signal.sender, signal.ref, signal.to, self._noproc(signal.to))
                )
        elif type(signal) is ReplySignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                # The replier's node has dropped the call's monitor: drop this side too.
                proc._monitors.pop(signal.ref, None)
                proc._mailbox.put(Reply(signal.ref, signal.value))
        elif type(signal) is MessageSignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                proc._mailbox.put(signal.message)
        elif type(signal) is NamedMessageSignal:
            named = self._names.get(signal.name)
            if named is not None:
                named._mailbox.put(signal.message)
        elif type(signal) is LinkSignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                proc._links.add(signal.sender)
            else:
                self._transport_send(ExitSignalSent(signal.to, signal.sender, self._noproc(signal.to), True))
        elif type(signal) is UnlinkSignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                proc._links.discard(signal.sender)
        elif type(signal) is ExitSignalSent:
            proc = self._lookup(signal.to)
            if proc is None:
                return
            if signal.linked:
                if signal.sender not in proc._links:
                    return  # unlinked meanwhile: Erlang drops it too
                proc._links.discard(signal.sender)
            self._exit_signal(proc, signal.sender, signal.reason, linked=signal.linked)
        elif type(signal) is MonitorSignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                proc._watchers[signal.ref] = signal.sender
            else:
                self._transport_send(
                    DownSignal(signal.sender, signal.ref, signal.to, self._noproc(signal.to))
                )
        elif type(signal) is DemonitorSignal:
            proc = self._lookup(signal.to)
            if proc is not None:
                proc._watchers.pop(signal.ref, None)
                self._inbound_calls.pop(signal.ref, None)
        elif type(signal) is DownSignal:
            self._down(signal.to, signal.ref, signal.pid, signal.reason)
        else:
            _log.warning("node %s dropped an unknown signal %r", self._name, signal)

    def undeliverable(self, signal: Signal, reason: NoConnection) -> None:
        """A signal this node sent could not reach its node (called by the transport).

        Args:
            signal: The signal.
            reason: The ``NoConnection`` that links and monitors fire with.
        """
        if type(signal) is LinkSignal:
            proc = self._lookup(signal.sender)
            if proc is not None and signal.to in proc._links:
                proc._links.discard(signal.to)
                self._exit_signal(proc, signal.to, reason, linked=True)
        elif type(signal) is MonitorSignal or type(signal) is CallSignal:
            self._down(signal.sender, signal.ref, signal.to, reason)
        else:
            _log.debug("node %s could not deliver %r: %r", self._name, signal, reason)

    def peer_down(self, node: str) -> None:
        """Every link and monitor across to ``node`` fires ``NoConnection`` (transport's call)."""
        reason = NoConnection(node)
        for proc in list(self._procs.values()):
            lost_links = [pid for pid in proc._links if pid.node == node]
            for pid in lost_links:
                proc._links.discard(pid)
                self._exit_signal(proc, pid, reason, linked=True)
            lost_monitors = [(ref, pid) for ref, pid in proc._monitors.items() if pid.node == node]
            for ref, pid in lost_monitors:
                del proc._monitors[ref]
                proc._mailbox.put(Down(ref, pid, reason))
            lost_watchers = [ref for ref, pid in proc._watchers.items() if pid.node == node]
            for ref in lost_watchers:
                del proc._watchers[ref]
                self._inbound_calls.pop(ref, None)
