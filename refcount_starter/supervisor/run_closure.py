"""``RunClosure``: a child start named in the remote table, with encodable arguments."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from ..remote.closures import REMOTE_TABLE, RemoteTable, UnknownClosure
from ..runtime import Pid, Process, ProcessFunction, Ref
from .errors import BadClosure
from .start import ChildKey, ChildStart, acknowledges_itself, run_child

__all__ = ["RunClosure"]


def _check_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"name must be a non-empty str naming a @remotable function, got {value!r}")


@attrs.frozen
class RunClosure(ChildStart):
    """Start the function registered as ``name`` with ``args``, on the supervisor's node.

    The spec travels as a name and arguments (serializable); the name is looked up when the
    spec is added (an unknown name is ``BadClosure`` then, not at some later restart) and
    again at each start.

    Args:
        name: The function's name in the remote table (see ``remotable``).
        args: Its extra arguments; they must be encodable to travel between nodes.
        table: The table to look the name up in; ``REMOTE_TABLE`` by default (not encoded).

    Raises:
        TypeError: ``name`` is not a non-empty str.
    """

    acknowledges: ClassVar[bool] = True

    name: str = attrs.field(validator=_check_name)
    args: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    table: RemoteTable = attrs.field(default=REMOTE_TABLE, eq=False, repr=False)

    @classmethod
    def of(cls, name: str, *args: Any) -> RunClosure:
        """``RunClosure(name, args)`` with the arguments passed as ``*args``."""
        return cls(name, args)

    def _resolve(self, key: ChildKey) -> ProcessFunction:
        try:
            return self.table.lookup(self.name)
        except UnknownClosure as exc:
            raise BadClosure(key, self.name, str(exc)) from None

    async def acquire(self, sup: Process, key: ChildKey) -> Any:
        """Check that the name resolves.

        Args:
            sup: The supervisor process that adds the spec.
            key: The child's key.

        Raises:
            BadClosure: The name is not in the remote table.
        """
        self._resolve(key)
        return None

    async def start(self, sup: Process, key: ChildKey, lease: Any) -> tuple[Pid, Ref]:
        """Start the function linked to and monitored by ``sup``.

        Args:
            sup: The supervisor process.
            key: The child's key.
            lease: What ``acquire`` returned (unused).

        Raises:
            BadClosure: The name is no longer in the remote table.
        """
        fn = self._resolve(key)
        ref = sup.reserve_monitor()
        me = sup.pid
        pid = sup.spawn_for(me, ref, run_child, me, ref, fn, self.args, acknowledges_itself(fn))
        sup.bind_monitor(ref, pid)
        return pid, ref

    @property
    def serializable(self) -> bool:
        return True
