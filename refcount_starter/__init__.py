"""Erlang/OTP-style fault tolerance for anyio, with a reference-counted starter service.

The public names, each defined in one subpackage and re-exported here once:

- the runtime (``refcount_starter.runtime``): ``Node``, ``Process``, ``Pid``, exit reasons,
  ``Down``/``ExitSignal``, ``Call``/``Reply`` and the runtime's errors;
- supervisors (``refcount_starter.supervisor``, also reachable as ``supervisor.start``):
  ``ChildSpec`` and its policies, the strategies, child states and typed errors;
- the reference-counted starter (``refcount_starter.starter``): ``spawn_child_starter``,
  ``Starter``, ``StarterProcess``;
- several nodes (``refcount_starter.remote``): ``remotable`` and, with the ``nats`` extra,
  ``NatsTransport``: imported on first use, so it is not in ``__all__`` and
  ``from refcount_starter import *`` works without the extra;
- ``RefcountStarterError``, the root of every error the library raises (ADR-0010).
"""

import logging as _logging
from typing import Any as _Any

from . import supervisor
from .remote.closures import RemoteTable, remotable
from .runtime import (
    Address,
    Call,
    CallFailed,
    CallTimeout,
    Crashed,
    Down,
    ExitReason,
    ExitSignal,
    InMemoryNetwork,
    Kill,
    Killed,
    NameNotRegistered,
    NameTaken,
    NoConnection,
    Node,
    NodeNotRunning,
    NoProc,
    Normal,
    Pid,
    Process,
    ProcessExit,
    ProcessInfo,
    ProcessNotAlive,
    Ref,
    RefcountStarterError,
    Reply,
    Shutdown,
    Transport,
)
from .starter import (
    Starter,
    StarterLease,
    StarterProcess,
    StarterRefused,
    StarterStatistics,
    StarterUnresponsive,
    spawn_child_starter,
)
from .supervisor import (
    INTRINSIC,
    LEFT_TO_RIGHT,
    PERMANENT,
    RIGHT_TO_LEFT,
    SUPERVISOR,
    TEMPORARY,
    TRANSIENT,
    WORKER,
    WORKER_START_TIMEOUT,
    AlreadyRunning,
    BadClosure,
    Child,
    ChildInitIgnore,
    ChildNotFound,
    ChildNotStopped,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStart,
    ChildStartIgnored,
    ChildStatus,
    ChildStopped,
    ChildType,
    DuplicateChild,
    InitAck,
    InitTimeout,
    LocalStart,
    ParallelShutdown,
    ReachedMaxRestartIntensity,
    RestartAll,
    RestartEach,
    RestartInOrder,
    RestartLeft,
    RestartLimit,
    RestartOne,
    RestartPolicy,
    RestartRevOrder,
    RestartRight,
    RunClosure,
    SequentialShutdown,
    StarterGone,
    StartFailureDied,
    StopImmediately,
    StopTimeout,
    Supervisor,
    SupervisorError,
    SupervisorExited,
    SupervisorStart,
    SupervisorStatistics,
)

__version__ = "0.1.0"

__all__ = [
    "INTRINSIC",
    "LEFT_TO_RIGHT",
    "PERMANENT",
    "RIGHT_TO_LEFT",
    "SUPERVISOR",
    "TEMPORARY",
    "TRANSIENT",
    "WORKER",
    "WORKER_START_TIMEOUT",
    "Address",
    "AlreadyRunning",
    "BadClosure",
    "Call",
    "CallFailed",
    "CallTimeout",
    "Child",
    "ChildInitIgnore",
    "ChildNotFound",
    "ChildNotStopped",
    "ChildRestarting",
    "ChildRunning",
    "ChildSpec",
    "ChildStart",
    "ChildStartIgnored",
    "ChildStatus",
    "ChildStopped",
    "ChildType",
    "Crashed",
    "Down",
    "DuplicateChild",
    "ExitReason",
    "ExitSignal",
    "InMemoryNetwork",
    "InitAck",
    "InitTimeout",
    "Kill",
    "Killed",
    "LocalStart",
    "NameNotRegistered",
    "NameTaken",
    "NoConnection",
    "NoProc",
    "Node",
    "NodeNotRunning",
    "Normal",
    "ParallelShutdown",
    "Pid",
    "Process",
    "ProcessExit",
    "ProcessInfo",
    "ProcessNotAlive",
    "ReachedMaxRestartIntensity",
    "Ref",
    "RefcountStarterError",
    "RemoteTable",
    "Reply",
    "RestartAll",
    "RestartEach",
    "RestartInOrder",
    "RestartLeft",
    "RestartLimit",
    "RestartOne",
    "RestartPolicy",
    "RestartRevOrder",
    "RestartRight",
    "RunClosure",
    "SequentialShutdown",
    "Shutdown",
    "StartFailureDied",
    "Starter",
    "StarterGone",
    "StarterLease",
    "StarterProcess",
    "StarterRefused",
    "StarterStatistics",
    "StarterUnresponsive",
    "StopImmediately",
    "StopTimeout",
    "Supervisor",
    "SupervisorError",
    "SupervisorExited",
    "SupervisorStart",
    "SupervisorStatistics",
    "Transport",
    "__version__",
    "remotable",
    "spawn_child_starter",
    "supervisor",
]

# Quiet by default: the application decides where the library's log records go.
_logging.getLogger("refcount_starter").addHandler(_logging.NullHandler())


def __getattr__(name: str) -> _Any:
    # The NATS transport needs the ``nats`` extra; import it only when asked for. It is not
    # in __all__, so that ``from refcount_starter import *`` works without the extra.
    if name == "NatsTransport":
        try:
            from .remote import NatsTransport
        except ImportError as exc:
            raise ImportError(
                f"NatsTransport needs the nats extra (pip install 'refcount_starter[nats]'): {exc}"
            ) from exc
        return NatsTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
