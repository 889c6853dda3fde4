"""``ProcessInfo``: what ``Process.info()`` and ``Node.info(pid)`` tell of a process, as
Erlang's ``process_info`` does."""

from __future__ import annotations

from typing import Literal

import attrs

from .pid import Pid, Ref
from .reasons import ExitReason

__all__ = ["ProcessInfo", "Status", "log_fields"]

#: ``runnable``: running or ready to run; ``waiting``: parked in a receive; ``exiting``: an
#: exit signal killed it and it has not stopped yet; ``exited``: it is gone.
Status = Literal["runnable", "waiting", "exiting", "exited"]


@attrs.frozen(kw_only=True)
class ProcessInfo:
    """A frozen picture of one process.

    Attributes:
        pid: The process.
        status: ``"runnable"``, ``"waiting"`` (parked in a receive), ``"exiting"`` or
            ``"exited"``.
        mailbox_size: How many messages wait in its mailbox.
        links: The pids it is linked to, sorted.
        monitors: The monitors it set, as ``(ref, target)`` pairs, oldest first.
        monitored_by: The monitors set on it, as ``(ref, watcher)`` pairs, oldest first.
        trap_exits: Whether exit signals reach it as ``ExitSignal`` messages.
        function: The qualified name of the function it runs (``None`` for a
            ``node.process()`` block).
        registered_name: Its registered name, if any.
        parent: The process that spawned it (or its owner), if any.
        reason: Its exit reason once it has exited.
    """

    pid: Pid
    status: Status
    mailbox_size: int
    links: tuple[Pid, ...]
    monitors: tuple[tuple[Ref, Pid], ...]
    monitored_by: tuple[tuple[Ref, Pid], ...]
    trap_exits: bool
    function: str | None
    registered_name: str | None
    parent: Pid | None
    reason: ExitReason | None


def log_fields(pid: Pid) -> dict[str, str]:
    """The ``extra`` of a log record about the process ``pid``: its node as ``node`` and the
    pid as ``pid`` (a string), so that a handler or structlog can route the record."""
    return {"node": pid.node, "pid": str(pid)}
