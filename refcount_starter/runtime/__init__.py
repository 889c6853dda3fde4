"""The process runtime: pids, exit reasons, mailboxes, processes, nodes and transports."""

from .errors import (
    CallFailed,
    CallTimeout,
    NameNotRegistered,
    NameTaken,
    NodeNotRunning,
    ProcessExit,
    ProcessNotAlive,
    RefcountStarterError,
)
from .info import ProcessInfo, log_fields
from .mailbox import BUDGET
from .node import Address, Node
from .pid import Pid, Ref
from .process import Process, ProcessFunction
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
    is_normal,
)
from .signals import Call, Reply
from .transport import InMemoryNetwork, InMemoryTransport, NodeHooks, Transport

__all__ = [
    "BUDGET",
    "Address",
    "Call",
    "CallFailed",
    "CallTimeout",
    "Crashed",
    "Down",
    "ExitReason",
    "ExitSignal",
    "InMemoryNetwork",
    "InMemoryTransport",
    "Kill",
    "Killed",
    "NameNotRegistered",
    "NameTaken",
    "NoConnection",
    "NoProc",
    "Node",
    "NodeHooks",
    "NodeNotRunning",
    "Normal",
    "Pid",
    "Process",
    "ProcessExit",
    "ProcessFunction",
    "ProcessInfo",
    "ProcessNotAlive",
    "Ref",
    "RefcountStarterError",
    "Reply",
    "Shutdown",
    "Transport",
    "is_normal",
    "log_fields",
]
