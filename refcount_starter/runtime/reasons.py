"""Exit reasons, and the messages a process receives about other processes' exits.

Erlang's reasons, as frozen values: ``Normal`` and ``Shutdown`` are the normal exits (for
restart policies); only ``Normal`` is ignored by a linked process that does not trap exits.
``Kill`` is not a reason a process exits with but an instruction: an exit signal carrying it
cannot be trapped, and its target exits ``Killed``.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .pid import Pid, Ref

__all__ = [
    "Crashed",
    "Down",
    "ExitReason",
    "ExitSignal",
    "Kill",
    "Killed",
    "NoConnection",
    "NoProc",
    "Normal",
    "Shutdown",
    "is_normal",
]


class ExitReason:
    """Base class of every exit reason."""

    __slots__ = ()

    #: Whether restart policies count this reason as a normal exit.
    normal: bool = False


@attrs.frozen
class Normal(ExitReason):
    """The process returned from its function."""

    normal = True


@attrs.frozen
class Shutdown(ExitReason):
    """The process was asked to stop (by its supervisor, its node or a ``delete_child``).

    Args:
        detail: Any encodable value that says why; the starter's release signal carries
            ``(child_key, seq)`` here (see ADR-0004).
    """

    detail: object = None
    normal = True


@attrs.frozen
class Killed(ExitReason):
    """The process was killed by an untrappable ``Kill`` signal."""


@attrs.frozen
class Kill(ExitReason):
    """The untrappable kill instruction; its target exits ``Killed``."""


@attrs.frozen
class Crashed(ExitReason):
    """The process raised an exception it did not catch.

    Args:
        exc_type: The qualified name of the exception's type.
        message: ``str()`` of the exception.
        traceback: The formatted traceback, as text (so it can cross nodes).
    """

    exc_type: str
    message: str
    traceback: str = attrs.field(default="", repr=False)

    @classmethod
    def from_exception(cls, exc: BaseException) -> Crashed:
        """Describe ``exc`` as a reason, keeping its traceback as text."""
        kind = type(exc)
        name = (
            kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        )
        return cls(name, str(exc), _frames_text(exc, name))


def _frames_text(exc: BaseException, name: str) -> str:
    # The frames only, without source lines: formatting a full traceback reads source files
    # and costs more than a restart. The crash log (logging's exc_info) has the full one.
    lines = ["Traceback (most recent call last):\n"]
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
    lines.append(f"{name}: {exc}\n")
    return "".join(lines)


@attrs.frozen
class NoProc(ExitReason):
    """The pid was unknown or already dead (Cloud Haskell's ``DiedUnknownId``).

    Args:
        pid: The pid that was looked up, where known.
        last_reason: Why it died, where its node still remembers.
        died_at: When it died (``time.time()``), where its node still remembers.
    """

    pid: Pid | None = None
    last_reason: ExitReason | None = None
    died_at: float | None = None


@attrs.frozen
class NoConnection(ExitReason):
    """The connection to the process's node was lost (``DiedDisconnect``/``DiedNodeDown``).

    Args:
        node: The name of the node that can no longer be reached.
    """

    node: str | None = None


def is_normal(reason: ExitReason) -> bool:
    """Return whether ``reason`` is a normal exit for restart policies (Normal, Shutdown)."""
    return reason.normal


@attrs.frozen
class ExitSignal:
    """The message a process that traps exits receives for an exit signal.

    Args:
        sender: The process that sent the signal, or that died (for a link).
        reason: The exit reason it carried.
    """

    sender: Pid
    reason: ExitReason


@attrs.frozen
class Down:
    """The message a monitoring process receives when the monitored process exits.

    Args:
        ref: The reference ``monitor`` returned.
        pid: The monitored process.
        reason: Its exit reason (``NoProc`` when it was unknown or already dead).
    """

    ref: Ref
    pid: Pid
    reason: ExitReason
