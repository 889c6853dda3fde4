"""Process and reference identifiers.

A pid names one process for the whole life of a cluster: ``Pid(node, incarnation, serial)``.
``serial`` is never reused within an incarnation, and a node that restarts under the same
name gets a new, larger incarnation, so a pid of an earlier incarnation is stale everywhere.
See ADR-0005.
"""

from __future__ import annotations

import time

import attrs

__all__ = ["Pid", "Ref", "new_incarnation"]


def _check_node(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty str, got {value!r}")


def _check_non_negative_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 0:
        raise TypeError(f"{attribute.name} must be a non-negative int, got {value!r}")


@attrs.frozen(order=True, repr=False)
class Pid:
    """The address of one process: its node's name, the node's incarnation and a serial.

    Pids are frozen, hashable, ordered and encodable; they compare equal only when all three
    parts are equal.

    Args:
        node: The node's name.
        incarnation: The node's incarnation (see ``Node.incarnation``).
        serial: The process's serial number, never reused within an incarnation.

    Raises:
        TypeError: ``node`` is not a non-empty str, or ``incarnation``/``serial`` not an
            int >= 0.
    """

    node: str = attrs.field(validator=_check_node)
    incarnation: int = attrs.field(validator=_check_non_negative_int)
    serial: int = attrs.field(validator=_check_non_negative_int)

    def __repr__(self) -> str:
        return f"<{self.node}.{self.incarnation}.{self.serial}>"

    __str__ = __repr__


@attrs.frozen(order=True, repr=False)
class Ref:
    """A unique reference, made by a node: names one monitor or one call.

    Args:
        node: The name of the node that made it.
        incarnation: That node's incarnation.
        serial: Its serial number within the incarnation.

    Raises:
        TypeError: ``node`` is not a non-empty str, or ``incarnation``/``serial`` not an
            int >= 0.
    """

    node: str = attrs.field(validator=_check_node)
    incarnation: int = attrs.field(validator=_check_non_negative_int)
    serial: int = attrs.field(validator=_check_non_negative_int)

    def __repr__(self) -> str:
        return f"#Ref<{self.node}.{self.incarnation}.{self.serial}>"

    __str__ = __repr__


_last_incarnation = 0


def new_incarnation() -> int:
    """Return a fresh incarnation number, larger than any this OS process returned before.

    It is the wall clock in microseconds, so that a node restarted under the same name (in
    another OS process, later) gets a larger incarnation than its predecessor.
    """
    global _last_incarnation
    _last_incarnation = max(time.time_ns() // 1000, _last_incarnation + 1)
    return _last_incarnation
