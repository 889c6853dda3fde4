"""The node: owns a process table, the way its processes run, and the way out to peers.

Signals between processes of one node are applied at once by the table (``table.py``), which
keeps them in the order sent; a signal for another node's pid goes through the transport as a
value from ``signals.py``. When a process exits, each linked process gets an exit signal and
each watcher a ``Down``, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import AsyncIterator
from inspect import CO_COROUTINE
from types import FunctionType, TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .errors import NodeNotRunning, ProcessExit, ProcessNotAlive
from .info import ProcessInfo
from .mailbox import AsyncioMailbox, Mailbox, mailbox_class
from .pid import Pid, Ref, new_incarnation
from .process import Process, ProcessFunction, as_seconds
from .reasons import Crashed, ExitReason, Kill, Killed, NoConnection, NoProc, Normal, Shutdown
from .runners import AsyncioRunner, TrioRunner, check_process_function, exit_in_group
from .signals import Signal, destination_node
from .table import Entry, Table
from .transport import Transport

if TYPE_CHECKING:
    from ..observe.model import NodeSnapshot

__all__ = ["Address", "Node"]

#: Where a message can be sent: a pid, a local registered name, or ``(name, node)``.
Address = Pid | str | tuple[str, str]

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
        shutdown_timeout: Seconds each top-level process gets to stop when the node exits
            (an int too large for a float is ``math.inf``: as long as it takes).
        dead_table_size: How many recently dead pids the node remembers, so that a
            ``NoProc`` can say when and why a pid died.

    Raises:
        TypeError: A parameter has the wrong type (a name that is not a str, a timeout
            that is not a number, a table size that is not an int).
        ValueError: A parameter has the right type and a wrong value (an empty name or one
            with a dot, a negative timeout or table size).
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
        if not isinstance(name, str):
            raise TypeError(f"a node name must be a str, got {name!r}")
        # Printable: no control character, no line or paragraph separator, no space of any
        # kind (a name is a NATS subject token, and is shown in every pid).
        if not name or not name.isprintable() or any(c in name for c in ". *<>?"):
            raise ValueError(
                "a node name must be a non-empty printable str without dots, spaces, '*', '<', "
                f"'>' or '?', got {name!r}"
            )
        if isinstance(shutdown_timeout, bool) or not isinstance(shutdown_timeout, int | float):
            raise TypeError(f"shutdown_timeout must be a number of seconds, got {shutdown_timeout!r}")
        if not shutdown_timeout >= 0:
            raise ValueError(f"shutdown_timeout must be >= 0, got {shutdown_timeout!r}")
        if type(dead_table_size) is not int:
            raise TypeError(f"dead_table_size must be an int, got {dead_table_size!r}")
        if dead_table_size < 0:
            raise ValueError(f"dead_table_size must be >= 0, got {dead_table_size!r}")
        self._name = name
        self._incarnation = new_incarnation()
        self._transport = transport
        self.shutdown_timeout = float(as_seconds(shutdown_timeout))
        self._table = Table(name, self._incarnation, dead_table_size, self._transport_send)
        self._tg: anyio.abc.TaskGroup | None = None
        self._nursery_cm: Any = None
        self._runner: AsyncioRunner | TrioRunner | None = None
        self._mailbox_class: type[Mailbox] = AsyncioMailbox
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

    @property
    def pid(self) -> Pid:
        """The node's own pid (serial 0): the sender of ``Node.exit`` and of its stop."""
        return self._self_pid

    def __repr__(self) -> str:
        return f"<Node {self._name}.{self._incarnation} processes={len(self._table.procs)}>"

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        if self._running or self._runner is not None:
            raise RuntimeError(f"node {self._name!r} is already running; a Node is entered once")
        self._mailbox_class = mailbox_class()
        table = self._table
        runner: AsyncioRunner | TrioRunner
        if self._mailbox_class is AsyncioMailbox:
            runner = AsyncioRunner(table, asyncio.get_running_loop())
        else:
            # trio: the processes are tasks of a trio nursery of the node's own, each in a
            # trio cancel scope (cheaper than anyio's task group and scopes over trio).
            trio = sys.modules["trio"]
            self._nursery_cm = trio.open_nursery()
            runner = TrioRunner(table, await self._nursery_cm.__aenter__())
        self._runner = runner
        table.cancel = runner.cancel
        self._running = True
        if self._transport is not None:
            try:
                await self._transport.attach(self)
            except BaseException:
                self._running = False
                await self._close_nursery()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._runner is not None
        self._stopping = True
        with anyio.CancelScope(shield=True):
            try:
                await self._stop_all()
            finally:
                self._running = False
                if self._transport is not None:
                    await self._transport.detach()
        await self._close_nursery()
        return None

    async def _close_nursery(self) -> None:
        if self._nursery_cm is not None:
            cm, self._nursery_cm = self._nursery_cm, None
            await cm.__aexit__(None, None, None)

    @property
    def stopping(self) -> bool:
        """Whether the node has begun to stop its processes (its ``async with`` block is
        ending). Only the node sets it, before it sends any process its stop signal, so a
        process can tell the node's own stop from a ``Node.exit`` (ADR-0004)."""
        return self._stopping

    async def _stop_all(self) -> None:
        # Top-level processes first, newest first, each through its own shutdown
        # (a supervisor stops its children in its own order). A process whose spawner
        # has gone meanwhile is top-level too: the next pass gives it its Shutdown.
        # See ADR-0010.
        table = self._table
        signalled: set[int] = set()
        while True:
            orphans = [
                entry
                for entry in reversed(table.procs.values())
                if not entry.foreign
                and entry.pid.serial not in signalled
                and (entry.parent is None or table.lookup(entry.parent) is None)
            ]
            if not orphans:
                break
            for entry in orphans:
                signalled.add(entry.pid.serial)
                await self._stop(entry, Shutdown("node stopping"), self.shutdown_timeout)
        # Whatever is left (processes whose spawner is still alive but did not stop them,
        # and processes started while the node was stopping), until none is left.
        while table.procs:
            for entry in reversed(list(table.procs.values())):
                if entry.foreign:
                    table.kill(entry, KILLED)
                else:
                    await self._stop(entry, Kill(), None)
            if all(entry.foreign for entry in table.procs.values()):
                break

    async def _stop(self, entry: Entry, reason: ExitReason, timeout: float | None) -> None:
        if entry.reason is not None:
            return
        exited = entry.exited = entry.exited or anyio.Event()
        self._table.exit_signal(entry, self._self_pid, reason, linked=False)
        if timeout is not None:
            with anyio.move_on_after(timeout):
                await exited.wait()
            if entry.reason is None:
                self._table.kill(entry, KILLED)
        await exited.wait()

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
            TypeError: ``fn`` is not an async callable.
            NodeNotRunning: The node is not inside its ``async with`` block.
        """
        return self.spawn_process(fn, args, None, trap_exits=trap_exits, name=name)[0].pid

    def spawn_process(
        self,
        fn: ProcessFunction,
        args: tuple[Any, ...],
        parent: Entry | None,
        *,
        link: bool = False,
        monitor: bool = False,
        trap_exits: bool = False,
        name: str | None = None,
        owner: tuple[Pid, Ref] | None = None,
    ) -> tuple[Process, Ref | None]:
        """Start ``fn(process, *args)``, spawned by ``parent``: the one way a process starts
        (``Node.spawn`` and the ``Process.spawn*`` methods call it). Linked to or monitored
        by ``parent``, or linked to and monitored by ``owner`` under its ref, before it runs.

        Args:
            fn: The async process function.
            args: Its extra arguments.
            parent: The table entry of the spawning process, or ``None`` for the node.
            link: Link the new process to ``parent``.
            monitor: Let ``parent`` monitor the new process.
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.
            name: A name to register the new process under.
            owner: ``(pid, ref)`` of a process (maybe of another node) to link the new one
                to and to let monitor it under ``ref`` (``Process.spawn_for``).

        Returns:
            The new process's handle, and the ref of ``parent``'s monitor if ``monitor``.

        Raises:
            TypeError: ``fn`` is not an async callable.
            NodeNotRunning: The node is not inside its ``async with`` block.
            NameTaken: ``name`` is held by a live process.
            ProcessNotAlive: ``parent`` has exited (its handle outlived it).
        """
        if not self._running:
            self._check_running()
        if type(fn) is not FunctionType or not fn.__code__.co_flags & CO_COROUTINE:
            check_process_function(fn)  # the common case (an async def function) tested inline
        if parent is not None and parent.reason is not None:
            # A handle that outlived its process: a child linked to or watched by a pid
            # that is gone would never hear of it.
            raise ProcessNotAlive(parent.pid, self._table.noproc(parent.pid))
        table = self._table
        if name is not None:
            # Checked before the process exists, so that a bad name leaves nothing behind.
            table.check_name(name)
        entry = table.new_entry(
            None if parent is None else parent.pid, self._mailbox_class(), bool(trap_exits), fn
        )
        process = Process(self, table, entry)
        if name is not None:
            table.register(name, entry)
        ref = None
        if owner is not None:
            table.adopt(entry, *owner)
        elif parent is not None:
            if link:
                entry.link_to(parent.pid)
                parent.link_to(entry.pid)
            if monitor:
                ref = table.new_ref()
                entry.watchers[ref] = parent.pid
                parent.monitors[ref] = entry.pid
        assert self._runner is not None
        self._runner.start(entry, process, fn, args)
        return process, ref

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
        table = self._table
        if name is not None:
            table.check_name(name)
        entry = table.new_entry(None, self._mailbox_class(), bool(trap_exits), None)
        entry.foreign = True
        entry.scope = anyio.CancelScope()
        if name is not None:
            table.register(name, entry)
        reason: ExitReason = NORMAL
        try:
            with entry.scope:
                try:
                    yield Process(self, table, entry)
                except ProcessExit as exc:
                    reason = exc.reason
                except Exception as exc:
                    # A ProcessExit from a task of the block's own task group is the exit it
                    # is (as for a spawned process), not a crash.
                    grouped = exit_in_group(exc)
                    if grouped is None:
                        reason = Crashed.from_exception(exc)
                        raise
                    reason = grouped
                except BaseException:
                    # The block was cancelled from outside (or interrupted): the process
                    # did not finish, so its links and a start_link'ed supervisor must not
                    # see a Normal exit.
                    reason = Shutdown("cancelled")
                    raise
        finally:
            if entry.pending is not None:
                reason = entry.pending
            if entry.reason is None:
                table.exit(entry, reason)
        if entry.pending is not None:
            raise ProcessExit(entry.pending)

    # -- public node-level operations -------------------------------------------------------

    def send(self, to: Address, message: Any) -> None:
        """Send ``message`` from outside any process (the sender is unknown to the receiver)."""
        self._table.send(None, to, message)

    def exit(self, pid: Pid, reason: ExitReason) -> None:
        """Send ``pid`` an exit signal from the node itself (see ``Process.exit``).

        The target sees it as from any other sender (its sender is ``Node.pid``); only the
        node's own stop, when ``stopping`` is set, means more to a starter (ADR-0004).

        Args:
            pid: The target.
            reason: The exit reason (``Kill()`` cannot be trapped).

        Raises:
            TypeError: ``pid`` is not a Pid or ``reason`` not an ``ExitReason``.
        """
        self._table.exit_from(self._self_pid, pid, reason)

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
        entry = self._table.lookup(pid)
        if entry is None:
            raise ProcessNotAlive(pid, self._table.noproc(pid))
        self._table.register(name, entry)

    def unregister(self, name: str) -> None:
        """Release ``name``.

        Raises:
            TypeError: ``name`` is not a str.
            NameNotRegistered: No live process holds ``name``.
        """
        if type(name) is not str and not isinstance(name, str):
            raise TypeError(f"unregister takes a registered name (a str), got {name!r}")
        self._table.unregister(name)

    def whereis(self, name: str) -> Pid | None:
        """The pid registered under ``name`` on this node, or ``None``.

        Raises:
            TypeError: ``name`` is not a str.
        """
        if type(name) is not str and not isinstance(name, str):
            raise TypeError(f"whereis takes a registered name (a str), got {name!r}")
        entry = self._table.names.get(name)
        return None if entry is None else entry.pid

    def registered(self) -> list[str]:
        """The names registered on this node."""
        return list(self._table.names)

    def is_alive(self, pid: Pid) -> bool:
        """Whether ``pid`` is a live process of this node.

        Raises:
            TypeError: ``pid`` is not a Pid.
        """
        if type(pid) is not Pid:
            raise TypeError(f"is_alive takes a Pid, got {pid!r}")
        return self._table.lookup(pid) is not None

    def is_exiting(self, pid: Pid) -> bool:
        """Whether ``pid`` is a live process of this node that an exit signal has killed:
        it stops at its next checkpoint, and no later signal changes its reason (the first
        kill wins, ADR-0010).

        Raises:
            TypeError: ``pid`` is not a Pid.
        """
        if type(pid) is not Pid:
            raise TypeError(f"is_exiting takes a Pid, got {pid!r}")
        entry = self._table.lookup(pid)
        return entry is not None and entry.pending is not None

    def processes(self) -> list[Pid]:
        """The pids of the live processes, in spawn order."""
        return [entry.pid for entry in self._table.procs.values()]

    @property
    def process_count(self) -> int:
        """How many processes are alive on this node."""
        return len(self._table.procs)

    def info(self, pid: Pid) -> ProcessInfo:
        """A frozen picture of the live local process ``pid`` (Erlang's ``process_info``).

        Raises:
            TypeError: ``pid`` is not a Pid.
            ProcessNotAlive: ``pid`` is not a live process of this node.
        """
        if type(pid) is not Pid:
            raise TypeError(f"info takes a Pid, got {pid!r}")
        entry = self._table.lookup(pid)
        if entry is None:
            raise ProcessNotAlive(pid, self._table.noproc(pid))
        return entry.info()

    @property
    def inbound_calls(self) -> int:
        """How many calls from processes of other nodes wait for a reply here."""
        return len(self._table.inbound_calls)

    async def snapshot(self) -> NodeSnapshot:
        """A frozen picture of the whole node: its processes, registered names, supervision
        trees and starters, encodable to JSON (``refcount_starter.observe``; its cost is in
        ``docs/observer.md``).

        Raises:
            NodeNotRunning: The node is not inside its ``async with`` block.
        """
        self._check_running()
        from ..observe.collect import take_snapshot  # the observer sits above the runtime

        return await take_snapshot(self, transport=self._transport)

    def why_dead(self, pid: Pid) -> NoProc:
        """What the node still knows of a dead or unknown pid, as a ``NoProc`` reason.

        Raises:
            TypeError: ``pid`` is not a Pid.
        """
        if type(pid) is not Pid:
            raise TypeError(f"why_dead takes a Pid, got {pid!r}")
        return self._table.noproc(pid)

    async def wait(self, pid: Pid) -> ExitReason:
        """Wait until the local process ``pid`` has exited; return its exit reason.

        A pid that has already exited returns its exit reason at once, while the node still
        remembers it (see ``dead_table_size``); one it never had or has forgotten returns
        ``NoProc(pid)``. Either way the answer does not depend on whether the process
        exited just before or just after the call.

        Raises:
            TypeError: ``pid`` is not a Pid.
        """
        if type(pid) is not Pid:
            raise TypeError(f"wait takes a Pid, got {pid!r}")
        table = self._table
        entry = table.lookup(pid)
        if entry is None:
            known = table.dead.get(pid)
            return table.noproc(pid) if known is None else known[0]
        exited = entry.exited = entry.exited or anyio.Event()
        await exited.wait()
        assert entry.reason is not None
        return entry.reason

    # -- the transport's side ---------------------------------------------------------------

    def _transport_send(self, signal: Signal) -> None:
        if self._transport is None:
            self._table.undeliverable(signal, NoConnection(destination_node(signal)))
        else:
            self._transport.send(signal)

    def deliver(self, signal: Signal) -> None:
        """Apply a signal that arrived from another node (called by the transport)."""
        self._table.deliver(signal)

    def undeliverable(self, signal: Signal, reason: NoConnection) -> None:
        """A signal this node sent could not reach its node (called by the transport).

        Args:
            signal: The signal.
            reason: The ``NoConnection`` that links and monitors fire with.
        """
        self._table.undeliverable(signal, reason)

    def peer_down(self, node: str) -> None:
        """Every link and monitor across to ``node`` fires ``NoConnection`` (transport's call)."""
        self._table.peer_down(node)
