"""The process table of one node, and the signal rules as operations over it.

Every piece of per-process state (links, monitors, watchers, the pending kill, the mailbox,
the registered name) lives in an ``Entry``, and only this module changes it. The rules of
ADR-0010 are the ``Table``'s methods: what an exit does to linked processes and watchers
(``exit``), what an exit signal does to its target (``exit_signal``), how a ``Down`` is
delivered, how a signal from another node is applied (``deliver``) and what a lost peer
does (``peer_down``). ``Node`` owns a table and its lifetime; ``Process`` is a facade over
one entry; the runners (``runners.py``) run an entry's function and report its exit here.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import NameNotRegistered, NameTaken
from .info import ProcessInfo, Status, log_fields
from .mailbox import Mailbox
from .pid import Pid, Ref
from .reasons import Down, ExitReason, ExitSignal, Kill, Killed, NoConnection, NoProc, Normal
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
)

if TYPE_CHECKING:
    import anyio

__all__ = ["UNBOUND", "Entry", "Table"]

_log = logging.getLogger("refcount_starter.runtime.node")

#: How many abandoned calls a node remembers, to drop their late replies (ADR-0010).
MAX_ABANDONED_CALLS = 10_000

#: The target of a reserved monitor that is not bound to a pid yet.
UNBOUND = Pid("<unbound>", 0, 0)

KILLED = Killed()

#: The links of a process that has none (shared, never changed).
NO_LINKS: frozenset[Pid] = frozenset()

# Makes a Pid or a Ref of the node's own parts, which need no validation (one per spawn,
# call and monitor).
_new_identifier = tuple.__new__


class Entry:
    """One process's state. Invariant: ``monitors`` holds the monitors this process set
    (ref -> target), ``watchers`` the monitors set on it (ref -> watcher); a ``Down`` is
    queued in a mailbox only by taking its monitor out of ``monitors``."""

    # A hand-written slotted class: one is made per spawn, and spawn is a hot path.
    __slots__ = (
        "exited",
        "fn",
        "foreign",
        "links",
        "mailbox",
        "monitors",
        "name",
        "parent",
        "pending",
        "pid",
        "reason",
        "scope",
        "started",
        "task",
        "trap_exits",
        "watchers",
    )

    def __init__(self, pid: Pid, parent: Pid | None, mailbox: Mailbox, trap_exits: bool, fn: Any) -> None:
        self.pid = pid
        self.parent = parent
        self.mailbox = mailbox
        self.trap_exits = trap_exits
        self.fn = fn
        self.reason: ExitReason | None = None
        self.pending: ExitReason | None = None
        # Shared and empty until the first link: most processes have none, and an empty
        # set costs 216 bytes.
        self.links: set[Pid] | frozenset[Pid] = NO_LINKS
        self.monitors: dict[Ref, Pid] = {}
        self.watchers: dict[Ref, Pid] = {}
        self.name: str | None = None
        self.exited: anyio.Event | None = None
        # A node.process() block rather than a spawned function.
        self.foreign = False
        # How to kill it: its bare task (a spawned process on asyncio) or its cancel scope.
        self.task: Any = None
        self.scope: Any = None
        self.started = False

    def link_to(self, pid: Pid) -> None:
        """Add ``pid`` to the links (a set of its own from the first one)."""
        links = self.links
        if links is NO_LINKS:
            self.links = {pid}
        else:
            links.add(pid)  # type: ignore[union-attr]

    def unlink_from(self, pid: Pid) -> None:
        """Remove ``pid`` from the links, if it is there."""
        if pid in self.links:
            self.links.discard(pid)  # type: ignore[union-attr]

    def info(self) -> ProcessInfo:
        """A frozen picture of this process now."""
        status: Status
        if self.reason is not None:
            status = "exited"
        elif self.pending is not None:
            status = "exiting"
        elif self.mailbox.waiting:
            status = "waiting"
        else:
            status = "runnable"
        fn = self.fn
        return ProcessInfo(
            pid=self.pid,
            status=status,
            mailbox_size=len(self.mailbox),
            links=tuple(sorted(self.links)),
            monitors=tuple(self.monitors.items()),
            monitored_by=tuple(self.watchers.items()),
            trap_exits=self.trap_exits,
            function=None if fn is None else _qualified_name(fn),
            registered_name=self.name,
            parent=self.parent,
            reason=self.reason,
        )


def _qualified_name(fn: Any) -> str:
    inner = getattr(fn, "func", fn)  # a functools.partial names its function
    module = getattr(inner, "__module__", None)
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    return name if module is None else f"{module}.{name}"


class Table:
    """The live processes of one node, its registry and its recently dead, and the rules
    that change them.

    Args:
        name: The node's name.
        incarnation: The node's incarnation.
        dead_table_size: How many recently dead pids to remember.
        transport_send: Sends a signal to another node (or reports it undeliverable).
        cancel: Makes a killed entry stop at its next checkpoint (the runner's).
    """

    def __init__(
        self,
        name: str,
        incarnation: int,
        dead_table_size: int,
        transport_send: Callable[[Signal], None],
    ) -> None:
        self.name = name
        self.incarnation = incarnation
        self.dead_table_size = dead_table_size
        self.transport_send = transport_send
        self.cancel: Callable[[Entry], None] = _cannot_cancel
        # Invariant: procs holds exactly the live processes, in spawn order.
        self.procs: dict[int, Entry] = {}
        self.names: dict[str, Entry] = {}
        # An OrderedDict: forgetting the oldest is popitem(last=False), O(1); a dict's
        # del d[next(iter(d))] slows down as deleted slots pile up at its front.
        self.dead: OrderedDict[Pid, tuple[ExitReason, float]] = OrderedDict()
        self.serials = itertools.count(1)
        self.refs = itertools.count(1)
        # Calls from other nodes not answered yet: ref -> the callee, whose watcher entry the
        # reply removes (ReplySignal). Invariant: each entry's ref is in its callee's watchers.
        self.inbound_calls: dict[Ref, Entry] = {}
        # Calls their callers gave up on (a timeout, a cancellation): ref -> caller. Their
        # late replies are dropped, as OTP 24 drops a reply to a deactivated alias; bounded,
        # the oldest forgotten (a reply to one of those lands as a plain Reply).
        self.abandoned: OrderedDict[Ref, Pid] = OrderedDict()

    def log_fields(self, pid: Pid | None = None) -> dict[str, str]:
        """The ``extra`` of a log record about ``pid`` (the node's own pid by default)."""
        if pid is None:
            pid = _new_identifier(Pid, (self.name, self.incarnation, 0))
        return log_fields(pid)

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, pid: Pid) -> Entry | None:
        """The live local entry of ``pid``, or ``None``."""
        if pid.node != self.name or pid.incarnation != self.incarnation:
            return None
        return self.procs.get(pid.serial)

    def noproc(self, pid: Pid) -> NoProc:
        """``NoProc`` for ``pid``, with when and why it died where remembered."""
        known = self.dead.get(pid)
        if known is None:
            return NoProc(pid)
        return NoProc(pid, known[0], known[1])

    def new_ref(self) -> Ref:
        """A fresh reference of this node."""
        # The node's own parts are valid: skip Ref's validators (one Ref per call and monitor).
        return _new_identifier(Ref, (self.name, self.incarnation, next(self.refs)))

    def new_entry(self, parent: Pid | None, mailbox: Mailbox, trap_exits: bool, fn: Any) -> Entry:
        """Add a process to the table (it runs once its runner starts it)."""
        serial = next(self.serials)
        # The node's own parts are valid: skip Pid's validators (one Pid per spawn).
        pid = _new_identifier(Pid, (self.name, self.incarnation, serial))
        entry = Entry(pid, parent, mailbox, trap_exits, fn)
        self.procs[serial] = entry
        return entry

    def adopt(self, entry: Entry, owner: Pid, ref: Ref) -> None:
        """Link a new ``entry`` to ``owner`` (maybe of another node) and let ``owner`` monitor
        it under ``ref``, before it runs (``Process.spawn_for``). A dead local owner takes
        the new process with it, as a linked one would."""
        entry.parent = owner
        entry.link_to(owner)
        entry.watchers[ref] = owner
        local_owner = self.lookup(owner)
        if local_owner is not None:
            local_owner.link_to(entry.pid)
            local_owner.monitors[ref] = entry.pid
        elif owner.node != self.name:
            self.transport_send(LinkSignal(entry.pid, owner))
        else:
            entry.unlink_from(owner)
            del entry.watchers[ref]
            self.kill(entry, self.noproc(owner))

    # -- registry ---------------------------------------------------------------------------

    def named(self, name: str) -> Entry:
        """The entry registered under ``name``; ``NameNotRegistered`` if none."""
        entry = self.names.get(name)
        if entry is None:
            raise NameNotRegistered(name, self.name)
        return entry

    def check_name(self, name: object) -> None:
        """Refuse a name that is not a non-empty str, or is taken."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered name must be a non-empty str, got {name!r}")
        holder = self.names.get(name)
        if holder is not None:
            raise NameTaken(name, holder.pid)

    def register(self, name: str, entry: Entry) -> None:
        """Register ``entry`` under ``name``."""
        self.check_name(name)
        if entry.name is not None:
            raise ValueError(f"process {entry.pid} is already registered as {entry.name!r}")
        self.names[name] = entry
        entry.name = name

    def unregister(self, name: str) -> None:
        """Release ``name``; ``NameNotRegistered`` if no live process holds it."""
        entry = self.named(name)
        del self.names[name]
        entry.name = None

    def resolve(self, target: object) -> Pid:
        """The pid an address names (a pid, a local name, or ``(name, this node)``)."""
        if type(target) is Pid:
            return target
        if isinstance(target, str):
            return self.named(target).pid
        if isinstance(target, tuple) and len(target) == 2 and all(isinstance(p, str) for p in target):
            if target[1] == self.name:
                return self.named(target[0]).pid
            raise TypeError(f"a remote name {target!r} cannot be monitored or called; use its pid")
        raise TypeError(f"expected a Pid, a registered name or a (name, node) pair, got {target!r}")

    # -- messages ---------------------------------------------------------------------------

    def send(self, sender: Pid | None, to: object, message: Any) -> None:
        """Deliver ``message`` to an address (dropped for a dead pid, as in Erlang)."""
        if type(to) is Pid:
            if to.node == self.name:
                if to.incarnation == self.incarnation:
                    entry = self.procs.get(to.serial)
                    if entry is not None:
                        entry.mailbox.put(message)
                # A dead pid, or one of an earlier incarnation: dropped, as in Erlang.
                return
            self.transport_send(MessageSignal(sender, to, message))
        elif isinstance(to, str):
            self.named(to).mailbox.put(message)
        elif isinstance(to, tuple) and len(to) == 2 and all(isinstance(part, str) for part in to):
            name, node = to
            if node == self.name:
                self.named(name).mailbox.put(message)
            else:
                self.transport_send(NamedMessageSignal(sender, node, name, message))
        else:
            raise TypeError(f"a message goes to a Pid, a registered name or a (name, node) pair, got {to!r}")

    # -- links and monitors -----------------------------------------------------------------

    def link(self, entry: Entry, pid: object) -> None:
        """Link ``entry`` and ``pid`` (``NoProc`` at once for a dead local pid)."""
        if type(pid) is not Pid:
            raise TypeError(f"link takes a Pid, got {pid!r}")
        if pid == entry.pid or pid in entry.links:
            return
        target = self.lookup(pid)
        if target is not None:
            entry.link_to(pid)
            target.link_to(entry.pid)
        elif pid.node != self.name:
            entry.link_to(pid)
            self.transport_send(LinkSignal(entry.pid, pid))
        else:
            self.exit_signal(entry, pid, self.noproc(pid), linked=True)

    def unlink(self, entry: Entry, pid: object) -> None:
        """Remove the link between ``entry`` and ``pid``, if any."""
        if type(pid) is not Pid:
            raise TypeError(f"unlink takes a Pid, got {pid!r}")
        if pid not in entry.links:
            return
        entry.unlink_from(pid)
        target = self.lookup(pid)
        if target is not None:
            target.unlink_from(entry.pid)
        elif pid.node != self.name:
            self.transport_send(UnlinkSignal(entry.pid, pid))

    def monitor(self, entry: Entry, pid: Pid) -> Ref:
        """``entry`` watches ``pid``; a dead local pid gives ``Down(NoProc)`` at once."""
        # new_ref and lookup, written out: every call monitors its callee.
        ref = _new_identifier(Ref, (self.name, self.incarnation, next(self.refs)))
        local = pid.node == self.name
        watched = self.procs.get(pid.serial) if local and pid.incarnation == self.incarnation else None
        if watched is not None:
            watched.watchers[ref] = entry.pid
            entry.monitors[ref] = pid
        elif not local:
            entry.monitors[ref] = pid
            self.transport_send(MonitorSignal(entry.pid, pid, ref))
        else:
            entry.mailbox.put(Down(ref, pid, self.noproc(pid)))
        return ref

    def demonitor(self, entry: Entry, ref: object, flush: bool) -> None:
        """End a monitor; with ``flush`` also remove its ``Down`` if one is queued."""
        if type(ref) is not Ref:
            raise TypeError(f"demonitor takes the Ref that monitor returned, got {ref!r}")
        target = entry.monitors.pop(ref, None)
        if target is not None:
            # A Down is queued only by taking its monitor out of the table: none is queued.
            self.drop_watch(entry.pid, target, ref)
        elif flush and len(entry.mailbox):
            entry.mailbox.remove_all(lambda m: type(m) is Down and m.ref == ref)

    def reserve_monitor(self, entry: Entry) -> Ref:
        """A reference under which ``entry`` accepts a ``Down`` from a process not yet known."""
        ref = self.new_ref()
        entry.monitors[ref] = UNBOUND
        return ref

    def bind_monitor(self, entry: Entry, ref: Ref, pid: Pid) -> None:
        """Tie a reserved reference to the pid it watches (if its ``Down`` has not come)."""
        if entry.monitors.get(ref) is UNBOUND:
            entry.monitors[ref] = pid

    def drop_watch(self, watcher: Pid, target: Pid, ref: Ref) -> None:
        """Remove the watcher side of a monitor ``watcher`` set on ``target``."""
        if target is UNBOUND:
            return
        if target.node != self.name:
            self.transport_send(DemonitorSignal(watcher, target, ref))
        elif target.incarnation == self.incarnation:  # lookup, written out (a hot path)
            entry = self.procs.get(target.serial)
            if entry is not None:
                entry.watchers.pop(ref, None)

    # -- call and reply ---------------------------------------------------------------------

    def call(self, entry: Entry, pid: Pid, request: Any) -> Ref:
        """Monitor ``pid`` and send it ``Call``; return the call's ref.

        To another node the two travel as one ``CallSignal``.
        """
        if pid.node != self.name:
            ref = self.new_ref()
            entry.monitors[ref] = pid  # before the send: an undeliverable call fires it
            try:
                self.transport_send(CallSignal(entry.pid, pid, ref, request))
            except BaseException:
                del entry.monitors[ref]  # the request cannot be encoded: no call was made
                raise
            return ref
        # monitor() and send(), written out with one lookup: every call takes this path.
        ref = _new_identifier(Ref, (self.name, self.incarnation, next(self.refs)))
        me = entry.pid
        callee = self.procs.get(pid.serial) if pid.incarnation == self.incarnation else None
        if callee is not None:
            callee.watchers[ref] = me
            entry.monitors[ref] = pid
            callee.mailbox.put(Call(me, ref, request))
        else:  # dead: its Down at once, and the request dropped
            entry.mailbox.put(Down(ref, pid, self.noproc(pid)))
        return ref

    def end_call(self, entry: Entry, ref: Ref, marker: int) -> None:
        """The reply came: drop the call's monitor. A ``Down`` right behind the reply can be
        queued (after ``marker``) only if the monitor is already gone."""
        target = entry.monitors.pop(ref, None)
        if target is not None:
            self.drop_watch(entry.pid, target, ref)
        elif len(entry.mailbox) > marker:
            entry.mailbox.remove_all(lambda m: type(m) is Down and m.ref == ref, marker)

    def abandon_call(self, entry: Entry, ref: Ref, marker: int) -> None:
        """``entry`` gave up waiting for the answer to its call ``ref``: end the call's
        monitor, take away an answer already queued (after ``marker``), and drop the reply
        still to come (OTP 24's alias, deactivated). ADR-0010."""
        target = entry.monitors.pop(ref, None)
        if target is not None:
            self.drop_watch(entry.pid, target, ref)
        mailbox = entry.mailbox
        if len(mailbox) > marker and mailbox.remove_all(
            lambda m: (type(m) is Reply or type(m) is Down) and m.ref == ref, marker
        ):
            return  # the answer had come: nothing more will
        if target is not None:  # the callee still lives: its reply may yet come
            abandoned = self.abandoned
            abandoned[ref] = entry.pid
            if len(abandoned) > MAX_ABANDONED_CALLS:
                abandoned.popitem(last=False)

    def _late(self, ref: Ref, to: Pid) -> bool:
        """Whether a reply to ``to`` under ``ref`` answers a call ``to`` gave up on (it is
        then forgotten: a call has one reply)."""
        abandoned = self.abandoned
        if abandoned.get(ref) != to:
            return False
        del abandoned[ref]
        return True

    def reply(self, sender: Pid, call: Call, value: Any) -> None:
        """Answer ``call``: a ``ReplySignal`` to a call from another node (it ends the monitor
        on both nodes), else a ``Reply`` message."""
        ref = call.ref
        inbound = self.inbound_calls
        callee = inbound.get(ref) if inbound and type(ref) is Ref else None
        if callee is not None and type(call.sender) is Pid:
            self.transport_send(ReplySignal(sender, call.sender, ref, value))
            # After the send: if the value cannot be encoded, the call is still open.
            del inbound[ref]
            callee.watchers.pop(ref, None)
            return
        to = call.sender
        if type(to) is Pid and to.node == self.name:
            # send(), written out for the common case: a caller of this node.
            if to.incarnation == self.incarnation:
                caller = self.procs.get(to.serial)
                if caller is not None and not (self.abandoned and self._late(ref, to)):
                    caller.mailbox.put(Reply(ref, value))
            return
        self.send(sender, to, Reply(ref, value))

    # -- exits ------------------------------------------------------------------------------

    def exit_from(self, sender: Pid, pid: object, reason: object) -> None:
        """``sender`` sends ``pid`` an exit signal (``Process.exit``, ``Node.exit``)."""
        if type(pid) is not Pid:
            raise TypeError(f"exit takes a Pid, got {pid!r}")
        if not isinstance(reason, ExitReason):
            raise TypeError(
                f"an exit signal carries an ExitReason (Normal(), Shutdown(), ...), got {reason!r}"
            )
        if pid.node != self.name:
            self.transport_send(ExitSignalSent(sender, pid, reason, False))
        elif pid.incarnation == self.incarnation:
            target = self.procs.get(pid.serial)
            if target is not None:
                self.exit_signal(target, sender, reason, linked=False)

    def exit_signal(self, target: Entry, sender: Pid, reason: ExitReason, *, linked: bool) -> None:
        """What an exit signal does to its target (ADR-0010)."""
        if type(reason) is Kill and not linked:
            self.kill(target, KILLED)
        elif target.trap_exits:
            target.mailbox.put(ExitSignal(sender, reason))
        elif type(reason) is Normal:
            if sender == target.pid and not linked:
                self.kill(target, reason)
        else:
            self.kill(target, reason)

    def kill(self, entry: Entry, reason: ExitReason) -> None:
        """Make ``entry`` exit with ``reason`` at its next checkpoint (the first kill wins)."""
        if entry.pending is None and entry.reason is None:
            entry.pending = reason
            entry.mailbox.exhaust()  # a process that keeps finding messages notices at once
            self.cancel(entry)

    def exit(self, entry: Entry, reason: ExitReason) -> None:
        """``entry`` has exited: its links get exit signals, then its watchers ``Down``s.

        Nothing here may fail half-way: a signal another node cannot take is reported to
        the log, and the rest still go out.
        """
        pid = entry.pid
        del self.procs[pid.serial]
        entry.reason = reason
        if entry.name is not None:
            del self.names[entry.name]
            entry.name = None
        if self.dead_table_size:
            dead = self.dead
            if len(dead) >= self.dead_table_size:
                dead.popitem(last=False)
            dead[pid] = (reason, time.time())
        # Each step below changes the other processes' tables, never this one's: its own are
        # read, then emptied.
        links = entry.links
        for other in links:
            try:
                self.link_exit(pid, other, reason)
            except Exception:
                self._not_passed_on(pid, other)
        entry.links = NO_LINKS
        watchers = entry.watchers
        inbound = self.inbound_calls
        for ref, watcher in watchers.items():
            if inbound:
                inbound.pop(ref, None)
            try:
                self.down(watcher, ref, pid, reason)
            except Exception:
                self._not_passed_on(pid, watcher)
        watchers.clear()
        monitors = entry.monitors
        for ref, target in monitors.items():
            try:
                self.drop_watch(pid, target, ref)
            except Exception:
                self._not_passed_on(pid, target)
        monitors.clear()
        if entry.exited is not None:
            entry.exited.set()

    def _not_passed_on(self, pid: Pid, to: Pid) -> None:
        _log.exception(
            "node %s could not pass on the exit of %s to %s", self.name, pid, to, extra=self.log_fields(pid)
        )

    def link_exit(self, sender: Pid, to: Pid, reason: ExitReason) -> None:
        """The exit signal a link carries from ``sender`` to ``to``."""
        target = self.lookup(to)
        if target is not None:
            target.unlink_from(sender)
            self.exit_signal(target, sender, reason, linked=True)
        elif to.node != self.name:
            self.transport_send(ExitSignalSent(sender, to, reason, True))

    def down(self, watcher: Pid, ref: Ref, pid: Pid, reason: ExitReason) -> None:
        """``Down(ref, pid, reason)`` to ``watcher``, if its monitor is still set."""
        entry = self.lookup(watcher)
        if entry is not None:
            if entry.monitors.pop(ref, None) is not None:
                entry.mailbox.put(Down(ref, pid, reason))
        elif watcher.node != self.name:
            self.transport_send(DownSignal(watcher, ref, pid, reason))

    # -- other nodes ------------------------------------------------------------------------

    def deliver(self, signal: Signal) -> None:
        """Apply a signal that arrived from another node.

        A ``Down`` or a reply ends a monitor only when it comes from the node of the
        monitored process (a ``Down`` for a reserved monitor not bound yet is taken from any
        node): a node cannot fire another node's monitors, nor answer calls made to it,
        by naming one of its own processes. A ``Down`` is never passed on to another node.
        The transport has already checked that every pid the signal presents as its source
        is of the node that sent it (``remote.origin``).
        """
        # The commonest first: calls and their replies, then messages.
        if type(signal) is CallSignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                entry.watchers[signal.ref] = signal.sender
                self.inbound_calls[signal.ref] = entry
                entry.mailbox.put(Call(signal.sender, signal.ref, signal.request))
            else:
                self.transport_send(DownSignal(signal.sender, signal.ref, signal.to, self.noproc(signal.to)))
        elif type(signal) is ReplySignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                # The replier's node has dropped the call's monitor: drop this side too.
                target = entry.monitors.pop(signal.ref, None)
                if target is not None and target.node != signal.sender.node:
                    entry.monitors[signal.ref] = target
                    self._refused(signal, target)
                    return
                if target is None and self.abandoned and self._late(signal.ref, signal.to):
                    return
                entry.mailbox.put(Reply(signal.ref, signal.value))
        elif type(signal) is MessageSignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                message = signal.message
                # A reply to an abandoned call travels as a plain message once the callee's
                # node has forgotten the call (the caller's demonitor reached it first).
                if type(message) is Reply and self.abandoned and self._late(message.ref, signal.to):
                    return
                entry.mailbox.put(message)
        elif type(signal) is NamedMessageSignal:
            named = self.names.get(signal.name)
            if named is not None:
                named.mailbox.put(signal.message)
        elif type(signal) is LinkSignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                entry.link_to(signal.sender)
            else:
                self.transport_send(ExitSignalSent(signal.to, signal.sender, self.noproc(signal.to), True))
        elif type(signal) is UnlinkSignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                entry.unlink_from(signal.sender)
        elif type(signal) is ExitSignalSent:
            entry = self.lookup(signal.to)
            if entry is None:
                return
            if signal.linked:
                if signal.sender not in entry.links:
                    return  # unlinked meanwhile: Erlang drops it too
                entry.unlink_from(signal.sender)
            self.exit_signal(entry, signal.sender, signal.reason, linked=signal.linked)
        elif type(signal) is MonitorSignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                entry.watchers[signal.ref] = signal.sender
            else:
                self.transport_send(DownSignal(signal.sender, signal.ref, signal.to, self.noproc(signal.to)))
        elif type(signal) is DemonitorSignal:
            entry = self.lookup(signal.to)
            if entry is not None:
                entry.watchers.pop(signal.ref, None)
                self.inbound_calls.pop(signal.ref, None)
        elif type(signal) is DownSignal:
            # down(), for a local watcher only: a Down from another node is never relayed.
            entry = self.lookup(signal.to)
            if entry is None:
                return
            target = entry.monitors.pop(signal.ref, None)
            if target is None:
                return
            if target.node != signal.pid.node and target is not UNBOUND:
                entry.monitors[signal.ref] = target
                self._refused(signal, target)
                return
            entry.mailbox.put(Down(signal.ref, signal.pid, signal.reason))
        else:
            _log.warning("node %s dropped an unknown signal %r", self.name, signal, extra=self.log_fields())

    def _refused(self, signal: DownSignal | ReplySignal, target: Pid) -> None:
        source = signal.pid if isinstance(signal, DownSignal) else signal.sender
        _log.warning(
            "node %s dropped a %s from %s for a monitor on %s: only the node of the monitored "
            "process may end it",
            self.name,
            type(signal).__name__,
            source,
            target,
            extra=self.log_fields(),
        )

    def undeliverable(self, signal: Signal, reason: NoConnection) -> None:
        """A signal this node sent could not reach its node: links and monitors fire."""
        if type(signal) is LinkSignal:
            entry = self.lookup(signal.sender)
            if entry is not None and signal.to in entry.links:
                entry.unlink_from(signal.to)
                self.exit_signal(entry, signal.to, reason, linked=True)
        elif type(signal) is MonitorSignal or type(signal) is CallSignal:
            self.down(signal.sender, signal.ref, signal.to, reason)
        else:
            _log.debug("node %s could not deliver %r: %r", self.name, signal, reason, extra=self.log_fields())

    def peer_down(self, node: str) -> None:
        """Every link and monitor across to ``node`` fires ``NoConnection``."""
        reason = NoConnection(node)
        for entry in list(self.procs.values()):
            lost_links = [pid for pid in entry.links if pid.node == node]
            for pid in lost_links:
                entry.unlink_from(pid)
                self.exit_signal(entry, pid, reason, linked=True)
            lost_monitors = [(ref, pid) for ref, pid in entry.monitors.items() if pid.node == node]
            for ref, pid in lost_monitors:
                del entry.monitors[ref]
                entry.mailbox.put(Down(ref, pid, reason))
            lost_watchers = [ref for ref, pid in entry.watchers.items() if pid.node == node]
            for ref in lost_watchers:
                del entry.watchers[ref]
                self.inbound_calls.pop(ref, None)


def _cannot_cancel(entry: Entry) -> None:
    raise RuntimeError(f"the node of {entry.pid} is not running")
