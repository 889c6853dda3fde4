"""Process and reference identifiers.

A pid names one process for the whole life of a cluster: ``Pid(node, incarnation, serial)``.
``serial`` is never reused within an incarnation, and a node that restarts under the same
name gets a new incarnation (random, so unique per start without trusting clocks; only
within one OS process are they also increasing), so a pid of an earlier incarnation is stale
everywhere.
See ADR-0005.
"""

from __future__ import annotations

import secrets
from operator import itemgetter
from typing import TYPE_CHECKING, Any

__all__ = ["Pid", "Ref", "new_incarnation"]


def _check(node: object, incarnation: object, serial: object) -> None:
    # A part of the wrong type is a TypeError, a part of the right type out of range a
    # ValueError, as everywhere in the library.
    if not isinstance(node, str):
        raise TypeError(f"node must be a non-empty str, got {node!r}")
    if not node:
        raise ValueError(f"node must be a non-empty str, got {node!r}")
    for part, value in (("incarnation", incarnation), ("serial", serial)):
        if type(value) is not int:
            raise TypeError(f"{part} must be a non-negative int, got {value!r}")
        if value < 0:
            raise ValueError(f"{part} must be a non-negative int, got {value!r}")


class _Identifier(tuple[str, int, int]):
    """``(node, incarnation, serial)``, hashed as that tuple (in C: pids and refs key most
    of the runtime's tables) but equal only to an identifier of its own class.

    It follows the named-tuple protocol (``_fields``), by which the codec encodes it.
    """

    __slots__ = ()
    _fields = ("node", "incarnation", "serial")
    __match_args__ = ("node", "incarnation", "serial")

    if TYPE_CHECKING:

        @property
        def node(self) -> str: ...
        @property
        def incarnation(self) -> int: ...
        @property
        def serial(self) -> int: ...

    else:
        node = property(itemgetter(0), doc="The node's name.")
        incarnation = property(itemgetter(1), doc="The node's incarnation.")
        serial = property(itemgetter(2), doc="The serial number within the incarnation.")

    def __new__(cls, node: str, incarnation: int, serial: int) -> Any:
        _check(node, incarnation, serial)
        return tuple.__new__(cls, (node, incarnation, serial))

    __hash__ = tuple.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is type(self) and tuple.__eq__(self, other))

    def __ne__(self, other: object) -> bool:
        return self is not other and not (type(other) is type(self) and tuple.__eq__(self, other))

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return tuple.__lt__(self, other)

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return tuple.__le__(self, other)

    def __gt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return tuple.__gt__(self, other)

    def __ge__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return tuple.__ge__(self, other)

    def __getnewargs__(self) -> tuple[str, int, int]:
        return (self[0], self[1], self[2])

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: object) -> Any:
        return self


class Pid(_Identifier):
    """The address of one process: its node's name, the node's incarnation and a serial.

    Pids are immutable, hashable, ordered and encodable; they compare equal only to a pid
    whose three parts are all equal (never to a ``Ref`` or a plain tuple).

    Args:
        node: The node's name.
        incarnation: The node's incarnation (see ``Node.incarnation``).
        serial: The process's serial number, never reused within an incarnation.

    Raises:
        TypeError: ``node`` is not a non-empty str, or ``incarnation``/``serial`` not an
            int >= 0.
    """

    __slots__ = ()

    def __new__(cls, node: str, incarnation: int, serial: int) -> Pid:
        _check(node, incarnation, serial)
        return tuple.__new__(cls, (node, incarnation, serial))

    def __repr__(self) -> str:
        return f"<{self[0]}.{self[1]}.{self[2]}>"

    __str__ = __repr__


class Ref(_Identifier):
    """A unique reference, made by a node: names one monitor or one call.

    Args:
        node: The name of the node that made it.
        incarnation: That node's incarnation.
        serial: Its serial number within the incarnation.

    Raises:
        TypeError: ``node`` is not a non-empty str, or ``incarnation``/``serial`` not an
            int >= 0.
    """

    __slots__ = ()

    def __new__(cls, node: str, incarnation: int, serial: int) -> Ref:
        _check(node, incarnation, serial)
        return tuple.__new__(cls, (node, incarnation, serial))

    def __repr__(self) -> str:
        return f"#Ref<{self[0]}.{self[1]}.{self[2]}>"

    __str__ = __repr__


_last_incarnation = 0


def new_incarnation() -> int:
    """Return a fresh incarnation number: random, and larger than any this OS process
    returned before.

    Incarnations are compared for equality only (ADR-0005): two starts of a node, on any
    host, with any clock, get different ones with overwhelming probability (62 random bits),
    so that a pid of one start is stale in every other. Within one OS process they also
    increase, so that two nodes made here one after the other never share one.
    """
    global _last_incarnation
    _last_incarnation = max(secrets.randbits(62), _last_incarnation + 1)
    return _last_incarnation
