"""The ``Process`` handle each process function receives as its first argument."""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .errors import CallFailed, CallTimeout, ProcessNotAlive
from .info import ProcessInfo
from .mailbox import Mailbox, to_predicate
from .pid import Pid, Ref
from .reasons import Down, ExitReason
from .signals import Call, Reply

if TYPE_CHECKING:
    from .node import Address, Node
    from .table import Entry, Table

__all__ = ["Process", "ProcessFunction"]

T = TypeVar("T")

#: A process function: ``async def fn(p: Process, *args) -> None``.
ProcessFunction = Callable[..., Awaitable[object]]


#: The largest float; an int above it has no float (``float()`` raises ``OverflowError``).
_FLOAT_MAX = sys.float_info.max


def as_seconds(value: float) -> float:
    """``value``, or ``math.inf`` if it is an int too large for a float.

    Such an int is a number of seconds longer than any deadline a clock can reach: waiting
    that long is waiting for ever, which ``math.inf`` tells every clock and timer, where the
    int itself would fail with an ``OverflowError`` in the first float sum (ADR-0010,
    decision 6). Anything else comes back as it is (a negative int too, refused as
    negative by the caller, which names it as given).
    """
    if isinstance(value, int) and value > _FLOAT_MAX:
        return math.inf
    return value


def check_timeout(timeout: object) -> float:
    """Refuse a timeout that is not a number of seconds >= 0 (``None`` is checked by callers).

    Returns:
        The timeout, ``math.inf`` for an int too large for a float (``as_seconds``).

    Raises:
        TypeError: ``timeout`` is not a number.
        ValueError: ``timeout`` is negative or NaN.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be None or a number of seconds, got {timeout!r}")
    if not timeout >= 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    if timeout > _FLOAT_MAX:
        return math.inf  # as_seconds, written out: a receive with a timeout checks it
    return timeout


class Process:
    """A live process: its pid, its mailbox, and the operations it can perform.

    Every process function gets one as its first argument; ``Node.process()`` makes the
    calling task a process and gives it one. The mailbox has one reader: the process itself.
    A handle over the process's entry in its node's table (``table.py``), which owns the
    state and the rules; ``info()`` shows that state.
    """

    # A hand-written slotted class: one is made per spawn, and spawn is a hot path.
    __slots__ = ("_entry", "_mailbox", "_table", "node", "pid")

    def __init__(self, node: Node, table: Table, entry: Entry) -> None:
        self.node = node
        self.pid = entry.pid
        self._table = table
        self._entry = entry
        self._mailbox: Mailbox = entry.mailbox

    @property
    def parent(self) -> Pid | None:
        """The process that spawned this one (or its owner), if any."""
        return self._entry.parent

    @property
    def trap_exits(self) -> bool:
        """Whether exit signals arrive as ``ExitSignal`` messages instead of killing
        (settable, as Erlang's ``process_flag(trap_exit, ...)``)."""
        return self._entry.trap_exits

    @trap_exits.setter
    def trap_exits(self, value: bool) -> None:
        self._entry.trap_exits = bool(value)

    @property
    def reason(self) -> ExitReason | None:
        """The exit reason, once the process has exited."""
        return self._entry.reason

    def info(self) -> ProcessInfo:
        """A frozen picture of this process now (Erlang's ``process_info``)."""
        return self._entry.info()

    def __repr__(self) -> str:
        reason = self._entry.reason
        state = "alive" if reason is None else f"exited {reason!r}"
        return f"<Process {self.pid} {state}>"

    def _exited(self) -> ProcessNotAlive:
        """The error of an operation an exited process cannot perform (its handle outlived
        it): a link, monitor or call from it would point at a pid that is gone."""
        return ProcessNotAlive(self.pid, self._table.noproc(self.pid))

    # -- messages ---------------------------------------------------------------------------

    def send(self, to: Address, message: Any) -> None:
        """Send ``message`` to a pid, a registered name, or a ``(name, node)`` pair.

        Sending never blocks and never fails for a dead pid (the message is dropped, as in
        Erlang). Messages from one process to another arrive in the order sent.

        Raises:
            TypeError: ``to`` is not an address.
            NameNotRegistered: ``to`` is a local name that no live process holds.
        """
        self._table.send(self.pid, to, message)

    @overload
    def receive(
        self, match: type[T], *, where: Callable[[T], bool] | None = ..., timeout: float | None = ...
    ) -> Awaitable[T]: ...

    @overload
    def receive(
        self,
        match: tuple[type, ...] | None = ...,
        *,
        where: Callable[[Any], bool] | None = ...,
        timeout: float | None = ...,
    ) -> Awaitable[Any]: ...

    def receive(
        self,
        match: type | tuple[type, ...] | None = None,
        *,
        where: Callable[[Any], bool] | None = None,
        timeout: float | None = None,
    ) -> Awaitable[Any]:
        """Take the oldest message, or with a filter the oldest one that matches:
        ``message = await p.receive(...)``.

        Messages that do not match stay in the mailbox, in order. The arguments are checked
        at the call; the wait is the awaitable it returns.

        Args:
            match: A type or tuple of types the message must be an instance of.
            where: A predicate the message must satisfy.
            timeout: Seconds to wait; ``None`` waits for ever, ``0`` only looks (an int too
                large for a float waits for ever too, as ``math.inf``).

        Returns:
            An awaitable of the message.

        Raises:
            TimeoutError: No matching message arrived within ``timeout`` (from the await).
            ValueError: ``timeout`` is negative.
            TypeError: ``timeout`` is not a number, ``match`` is not a type or tuple of
                types, or ``where`` is not callable.
            ProcessNotAlive: This process has exited and ``timeout`` is ``None`` (its handle
                outlived it; no message can arrive, the wait would never end).
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        predicate = None if match is None and where is None else to_predicate(match, where)
        # The mailbox's coroutine itself, not one wrapping it: one frame less at every wait.
        if timeout is None:
            if self._entry.reason is not None:
                # Its handle outlived it: nothing can ever arrive, it would wait for ever.
                raise self._exited()
            return self._mailbox._receive(predicate)
        return self._mailbox.receive(predicate, timeout)

    def messages(self) -> AsyncIterator[Any]:
        """Iterate over incoming messages for ever (``async for msg in p.messages()``).

        The iterator is a plain object, not an async generator, so leaving the loop early
        (``break``, ``return``, an exit signal) leaves nothing to finalize.

        Raises:
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        if self._entry.reason is not None:
            raise self._exited()
        return _Messages(self._mailbox)

    def queued(self) -> list[Any]:
        """The messages waiting in the mailbox, oldest first, left where they are."""
        return self._mailbox.snapshot()

    def flush(self) -> list[Any]:
        """Take every message waiting now, oldest first, without waiting (the Erlang
        shell's ``flush()``)."""
        return self._mailbox.take_all()

    @property
    def mailbox_size(self) -> int:
        """How many messages wait in the mailbox."""
        return len(self._mailbox)

    # -- call / reply -----------------------------------------------------------------------

    async def call(self, to: Address, request: Any, *, timeout: float | None = None) -> Any:
        """Send ``request`` and wait for the reply, watching the callee with a monitor.

        Args:
            to: The callee: a pid, or a name registered on this node (a name on another
                node cannot be monitored: resolve it to a pid first).
            request: The request; the callee receives it as ``Call(sender, ref, request)``.
            timeout: Seconds to wait for the reply; ``None`` (or ``math.inf``, or an int too
                large for a float) waits as long as the callee lives.

        Returns:
            The value the callee passed to ``reply``.

        Raises:
            CallFailed: The callee exited (or was unknown: ``NoProc``) before replying.
            CallTimeout: No reply within ``timeout``.
            NameNotRegistered: ``to`` is a local name that no live process holds.
            ValueError: ``timeout`` is negative, or ``to`` is this process itself (the call
                could never be answered).
            TypeError: ``to`` is not an address, or ``timeout`` not a number.
            ProcessNotAlive: This process has exited (its handle outlived it).
            RuntimeError: Another task is receiving for this process (a mailbox has one
                reader).
        """
        if timeout is not None:
            timeout = check_timeout(timeout)  # before anything is sent
        if self._entry.reason is not None:
            raise self._exited()
        table = self._table
        pid = table.resolve(to)
        if pid.serial == self.pid.serial and pid == self.pid:  # the serial first: cheaper
            raise ValueError(f"process {self.pid} called itself ({to!r}); it could never reply")
        mailbox = self._mailbox
        if mailbox.waiting:
            # Another task is receiving for this process: refused before the request goes.
            mailbox.refuse_taking()
        # The receive marker: the reply and the Down carry a fresh ref, so they can only be
        # behind the messages queued now; the wait looks at nothing older (ADR-0010).
        marker = len(mailbox)
        ref = table.call(self._entry, pid, request)

        def answers(message: Any) -> bool:
            return (type(message) is Reply or type(message) is Down) and message.ref == ref

        try:
            if timeout is None:
                message = await mailbox._receive(answers, marker)
            else:
                message = await mailbox.receive(answers, timeout, marker)
        except TimeoutError:
            table.abandon_call(self._entry, ref, marker)
            raise CallTimeout(to, timeout or 0.0) from None
        except BaseException:
            # Cancelled (or killed) while waiting: leave no monitor and no answer behind,
            # and none to come.
            table.abandon_call(self._entry, ref, marker)
            raise
        if type(message) is Down:
            raise CallFailed(to, message.reason)
        # The reply came: drop the monitor (and a Down right behind the reply).
        table.end_call(self._entry, ref, marker)
        return message.value

    def reply(self, call: Call, value: Any) -> None:
        """Answer a ``Call`` received from ``call``.

        Args:
            call: The ``Call`` message.
            value: The reply; ``call`` returns it to the caller.

        Raises:
            TypeError: ``call`` is not a ``Call``.
        """
        if not isinstance(call, Call):
            raise TypeError(f"reply answers a Call message, got {call!r}")
        self._table.reply(self.pid, call, value)

    # -- links, monitors, exit signals ------------------------------------------------------

    def link(self, pid: Pid) -> None:
        """Link to ``pid``: when either exits, the other gets an exit signal.

        Linking to a dead or unknown pid delivers ``NoProc`` at once.

        Raises:
            TypeError: ``pid`` is not a Pid.
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        if self._entry.reason is not None:
            raise self._exited()
        self._table.link(self._entry, pid)

    def unlink(self, pid: Pid) -> None:
        """Remove the link to ``pid``, if any."""
        self._table.unlink(self._entry, pid)

    def monitor(self, target: Address) -> Ref:
        """Watch ``target``; when it exits this process receives ``Down(ref, pid, reason)``.

        Monitoring a dead or unknown pid delivers ``Down(ref, pid, NoProc)`` at once.

        Returns:
            The monitor's reference, for ``demonitor``.

        Raises:
            NameNotRegistered: ``target`` is a local name that no live process holds.
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        if self._entry.reason is not None:
            raise self._exited()
        table = self._table
        return table.monitor(self._entry, table.resolve(target))

    def demonitor(self, ref: Ref, *, flush: bool = True) -> None:
        """Stop a monitor; with ``flush`` also remove its ``Down`` if it already arrived.

        Args:
            ref: The reference ``monitor`` returned.
            flush: Remove a ``Down`` for ``ref`` already in the mailbox.

        Raises:
            TypeError: ``ref`` is not a ``Ref``.
        """
        self._table.demonitor(self._entry, ref, flush)

    def exit(self, pid: Pid, reason: ExitReason) -> None:
        """Send ``pid`` an exit signal.

        A target that does not trap exits ignores ``Normal`` and exits with any other reason;
        ``Kill`` cannot be trapped (the target exits ``Killed``); a trapping target receives
        ``ExitSignal(sender, reason)`` as a message.

        Raises:
            TypeError: ``reason`` is not an ``ExitReason``.
        """
        self._table.exit_from(self.pid, pid, reason)

    # -- spawning ---------------------------------------------------------------------------

    def spawn(
        self, fn: ProcessFunction, *args: Any, trap_exits: bool = False, name: str | None = None
    ) -> Pid:
        """Start ``fn(process, *args)`` as a new process on this node; return its pid at once.

        Args:
            fn: The async process function.
            *args: Its extra arguments.
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.
            name: A name to register the new process under.

        Raises:
            TypeError: ``fn`` is not an async callable.
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        return self.node.spawn_process(fn, args, self._entry, trap_exits=trap_exits, name=name)[0].pid

    def spawn_link(
        self, fn: ProcessFunction, *args: Any, trap_exits: bool = False, name: str | None = None
    ) -> Pid:
        """Like ``spawn``, linked to this process before the new one runs.

        Args:
            fn: The async process function.
            *args: Its extra arguments.
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.
            name: A name to register the new process under.

        Raises:
            TypeError: ``fn`` is not an async callable.
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        return self.node.spawn_process(fn, args, self._entry, link=True, trap_exits=trap_exits, name=name)[
            0
        ].pid

    def spawn_monitor(
        self, fn: ProcessFunction, *args: Any, trap_exits: bool = False, name: str | None = None
    ) -> tuple[Pid, Ref]:
        """Like ``spawn``, monitored by this process before the new one runs.

        Args:
            fn: The async process function.
            *args: Its extra arguments.
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.
            name: A name to register the new process under.

        Returns:
            The new pid and the monitor's reference.

        Raises:
            TypeError: ``fn`` is not an async callable.
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        child, ref = self.node.spawn_process(
            fn, args, self._entry, monitor=True, trap_exits=trap_exits, name=name
        )
        assert ref is not None
        return child.pid, ref

    def spawn_for(
        self, owner: Pid, ref: Ref, fn: ProcessFunction, *args: Any, trap_exits: bool = False
    ) -> Pid:
        """Start ``fn`` linked to ``owner`` and monitored by it under ``ref``, before it runs.

        This is how a starter starts a child on behalf of a supervisor, maybe of another
        node: ``owner`` reserved ``ref`` with ``reserve_monitor`` and binds it to the returned
        pid with ``bind_monitor``; a ``Down`` that arrives before the bind is still accepted.
        If ``owner`` is a dead local process, the new process exits at once with ``NoProc``.

        Args:
            owner: The process to link the new one to and to monitor it (a supervisor).
            ref: The monitor reference ``owner`` reserved.
            fn: The async process function.
            *args: Its extra arguments.
            trap_exits: Whether exit signals arrive as ``ExitSignal`` messages.

        Raises:
            TypeError: ``fn`` is not an async callable, or ``owner``/``ref`` of the wrong type.
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        if type(owner) is not Pid or type(ref) is not Ref:
            raise TypeError(f"spawn_for takes the owner's Pid and a Ref, got {owner!r}, {ref!r}")
        return self.node.spawn_process(fn, args, self._entry, trap_exits=trap_exits, owner=(owner, ref))[
            0
        ].pid

    def reserve_monitor(self) -> Ref:
        """A fresh reference under which this process accepts a ``Down`` from a process that
        another process starts for it (see ``spawn_for``).

        Raises:
            ProcessNotAlive: This process has exited (its handle outlived it).
        """
        if self._entry.reason is not None:
            raise self._exited()
        return self._table.reserve_monitor(self._entry)

    def bind_monitor(self, ref: Ref, pid: Pid) -> None:
        """Tie a reserved reference to the pid it watches (if its ``Down`` has not come yet).

        Args:
            ref: The reference ``reserve_monitor`` returned.
            pid: The process it watches.
        """
        self._table.bind_monitor(self._entry, ref, pid)

    # -- registry ---------------------------------------------------------------------------

    def register(self, name: str) -> None:
        """Register this process under ``name`` on its node (released when it exits)."""
        self.node.register(name, self.pid)

    def whereis(self, name: str) -> Pid | None:
        """The pid registered under ``name`` on this node, or ``None``.

        Raises:
            TypeError: ``name`` is not a str.
        """
        return self.node.whereis(name)


class _Messages:
    """The iterator behind ``Process.messages()``."""

    __slots__ = ("_mailbox",)

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    def __aiter__(self) -> _Messages:
        return self

    def __anext__(self) -> Awaitable[Any]:
        return self._mailbox._receive(None)
