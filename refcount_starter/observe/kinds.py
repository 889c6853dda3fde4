"""Which processes are supervisors and which are starters, by the function they run.

``ProcessInfo.function`` names the function a process runs; this registry maps such names to
a kind. The library's own supervisor and starter functions are known from the start; a
process function of another kind that answers the same requests can be added with
``register_kind``.
"""

from __future__ import annotations

from typing import Literal

from .model import ProcessKind

__all__ = ["SUPERVISOR_FUNCTION", "STARTER_FUNCTION", "kind_of", "register_kind"]

#: The qualified name of the supervisor's process function (a test checks it still is).
SUPERVISOR_FUNCTION = "refcount_starter.supervisor.server.supervisor_process"
#: The qualified name of the starter's process function (a test checks it still is).
STARTER_FUNCTION = "refcount_starter.starter.service.starter_process"

_kinds: dict[str, ProcessKind] = {
    SUPERVISOR_FUNCTION: "supervisor",
    STARTER_FUNCTION: "starter",
}


def register_kind(function: str, kind: Literal["supervisor", "starter"]) -> None:
    """Treat processes that run ``function`` as supervisors or as starters.

    A supervisor must answer the ``Supervisor`` client's ``list_children`` and
    ``statistics``; a starter, the starter's ``GetStatistics`` call.

    Args:
        function: A qualified function name, as ``ProcessInfo.function`` gives it.
        kind: ``"supervisor"`` or ``"starter"``.

    Raises:
        TypeError: ``function`` is not a non-empty str.
        ValueError: ``kind`` is neither ``"supervisor"`` nor ``"starter"``.
    """
    if not isinstance(function, str) or not function:
        raise TypeError(f"expected a qualified function name, got {function!r}")
    if kind not in ("supervisor", "starter"):
        raise ValueError(f"expected the kind 'supervisor' or 'starter', got {kind!r}")
    _kinds[function] = kind


def kind_of(function: str | None) -> ProcessKind:
    """The kind of a process that runs ``function`` (``"process"`` when unknown)."""
    if function is None:
        return "process"
    return _kinds.get(function, "process")
