"""The wire codec: msgpack (through msgspec) with an explicit registry of message types.

No pickle crosses the wire: a value is encoded only if it is made of primitives (``None``,
``bool``, ``int``, ``float``, ``str``, ``bytes``), containers (``list``, ``tuple``, ``dict``,
``set``, ``frozenset``) and instances of classes registered by a stable name with
``register_type`` (``registry.py``). Decoding builds nothing else, so a payload cannot make this node import or
call anything. See ADR-0008.

Wire format: plain msgpack for primitives, lists and dicts; msgpack extension types for the
rest, each holding a nested msgpack document:

* ``EXT_TUPLE`` (1): the items, as an array;
* ``EXT_OBJECT`` (2): ``[name, field values...]`` for an attrs class, ``[name, member name]``
  for an ``enum.Enum``;
* ``EXT_BIGINT`` (3): the decimal text of an int beyond 64 bits;
* ``EXT_FROZENSET`` (4) and ``EXT_SET`` (5): the items, as an array;
* ``EXT_DICT`` (6): a dict with a key that is not a str, as ``[key, value, key, value...]``
  (a dict with str keys only is a plain msgpack map).

Example::

    @attrs.frozen
    class Order:
        item: str
        quantity: int

    register_type(Order, "shop.Order")
    assert decode(encode(Order("tea", 2))) == Order("tea", 2)
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from ..runtime.errors import RefcountStarterError
from ..runtime.pid import Pid, Ref
from .registry import (
    Entry,
    by_name,
    by_type,
    is_registered,
    refuse_type,
    refused,
    register_type,
    registered_name,
    registered_types,
    registers,
)

__all__ = [
    "DecodeError",
    "registers",
    "to_wire",
    "decode",
    "encode",
    "is_registered",
    "refuse_type",
    "register_type",
    "registered_name",
    "registered_types",
]

_log = logging.getLogger("refcount_starter.remote.codec")

EXT_TUPLE = 1
EXT_OBJECT = 2
EXT_BIGINT = 3
EXT_FROZENSET = 4
EXT_SET = 5
EXT_DICT = 6

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class DecodeError(RefcountStarterError, ValueError):
    """Input that is not a valid encoding of a registered value.

    The transport counts, logs and drops such input; the node keeps running.

    Args:
        message: What was wrong, naming the offending part.
    """


# -- encoding -------------------------------------------------------------------------------

_encoder = msgspec.msgpack.Encoder()
_Ext = msgspec.msgpack.Ext
_PID_NAME = by_type[Pid].name
_REF_NAME = by_type[Ref].name


def _ext(code: int, items: list[Any]) -> msgspec.msgpack.Ext:
    return _Ext(code, _encoder.encode(items))


# Pids recur in almost every signal (sender, destination, the pid inside a Call): their
# encodings, and the pids decoded from them, are kept in small caches that are cleared when
# full. A Pid is frozen and validated once, so a cached one is as good as a new one.
_CACHE_LIMIT = 4096
_pid_wire: dict[Pid, msgspec.msgpack.Ext] = {}
_pid_decoded: dict[bytes, Pid] = {}


def _wire(value: Any) -> Any:
    kind = type(value)
    if kind is Pid:
        cached = _pid_wire.get(value)
        if cached is None:
            if len(_pid_wire) >= _CACHE_LIMIT:
                _pid_wire.clear()
            cached = _pid_wire[value] = _ext(
                EXT_OBJECT, [_PID_NAME, value.node, _wire(value.incarnation), _wire(value.serial)]
            )
        return cached
    if kind is str or kind is float or kind is bool or value is None or kind is bytes:
        return value
    if kind is Ref:
        # A new one in every call and monitor: written out, like a Pid, without the cache.
        return _ext(EXT_OBJECT, [_REF_NAME, value.node, _wire(value.incarnation), _wire(value.serial)])
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        return _Ext(EXT_BIGINT, str(value).encode("ascii"))
    if kind is list:
        return [_wire(item) for item in value]
    if kind is tuple:
        return _ext(EXT_TUPLE, [_wire(item) for item in value])
    if kind is dict:
        if all(type(key) is str for key in value):
            return {key: _wire(item) for key, item in value.items()}
        flat: list[Any] = []
        for key, item in value.items():
            flat.append(_wire(key))
            flat.append(_wire(item))
        return _Ext(EXT_DICT, _encoder.encode(flat))
    if kind is frozenset:
        return _ext(EXT_FROZENSET, [_wire(item) for item in value])
    if kind is set:
        return _ext(EXT_SET, [_wire(item) for item in value])
    entry = by_type.get(kind)
    if entry is None:
        why = refused.get(kind)
        if why is not None:
            raise TypeError(
                f"a {kind.__module__}.{kind.__qualname__} cannot cross nodes: {why} ({value!r:.200})"
            )
        raise TypeError(
            f"cannot encode a value of type {kind.__module__}.{kind.__qualname__} for another "
            f"node: {value!r:.200}. Only primitives, list/tuple/dict/set/frozenset and classes "
            "registered with refcount_starter.remote.codec.register_type(cls, name) can cross "
            "nodes (no pickle on the wire)"
        )
    if entry.fields is None:
        return _ext(EXT_OBJECT, [entry.name, value.name])
    if entry.positional:
        return _ext(EXT_OBJECT, [entry.name, *(_wire(item) for item in value.args)])
    return _ext(EXT_OBJECT, [entry.name, *(_wire(getattr(value, field)) for field, _ in entry.fields)])


def encode(value: Any) -> bytes:
    """Encode ``value`` for another node.

    Raises:
        TypeError: ``value`` holds something of a type that is not registered (the message
            names it and says how to register it).
    """
    return _encoder.encode(_wire(value))


def to_wire(value: Any) -> Any:
    """``value`` as a tree msgspec can encode (for embedding in a larger document).

    Raises:
        TypeError: As ``encode``.
    """
    return _wire(value)


# -- decoding -------------------------------------------------------------------------------


def _build(entry: Entry, values: list[Any]) -> Any:
    if entry.fields is None:
        if len(values) != 1 or not isinstance(values[0], str):
            raise DecodeError(f"{entry.name}: expected one member name, got {values!r:.200}")
        try:
            return entry.cls[values[0]]  # type: ignore[index]
        except KeyError:
            raise DecodeError(f"{entry.name} has no member {values[0]!r}") from None
    if entry.positional:
        try:
            return entry.cls(*values)
        except Exception as exc:
            raise DecodeError(f"{entry.name}: the values do not make a valid instance: {exc}") from exc
    if len(values) != len(entry.fields):
        raise DecodeError(f"{entry.name}: expected {len(entry.fields)} field values, got {len(values)}")
    try:
        if entry.in_order:
            return entry.cls(*values)
        return entry.cls(**{alias: item for (_, alias), item in zip(entry.fields, values, strict=True)})
    except Exception as exc:
        # The class's own validators refused the values.
        raise DecodeError(f"{entry.name}: the values do not make a valid instance: {exc}") from exc


def _items(data: memoryview) -> list[Any]:
    items = _decoder.decode(data)
    if type(items) is not list:
        raise DecodeError(f"an extension value must hold an array, got {type(items).__name__}")
    return items


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == EXT_TUPLE:
        return tuple(_items(data))
    if code == EXT_OBJECT:
        key = bytes(data)
        pid = _pid_decoded.get(key)
        if pid is not None:
            return pid
        items = _items(data)
        if not items or not isinstance(items[0], str):
            raise DecodeError("an object must start with its registered name")
        entry = by_name.get(items[0])
        if entry is None:
            raise DecodeError(
                f"unknown type name {items[0]!r}: this node has not registered it "
                "(refcount_starter.remote.codec.register_type)"
            )
        value = _build(entry, items[1:])
        if entry.cls is Pid:
            if len(_pid_decoded) >= _CACHE_LIMIT:
                _pid_decoded.clear()
            _pid_decoded[key] = value
        return value
    if code == EXT_BIGINT:
        try:
            return int(bytes(data).decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise DecodeError("a big int must be decimal text") from None
    if code == EXT_FROZENSET:
        return frozenset(_items(data))
    if code == EXT_SET:
        return set(_items(data))
    if code == EXT_DICT:
        flat = _items(data)
        if len(flat) % 2:
            raise DecodeError("a dict must hold key, value pairs")
        return dict(zip(flat[::2], flat[1::2], strict=True))
    raise DecodeError(f"unknown msgpack extension code {code}")


_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode what ``encode`` made.

    Raises:
        DecodeError: ``data`` is not valid msgpack, names a type this node has not registered,
            or holds values a registered class refuses.
    """
    try:
        return _decoder.decode(data)
    except DecodeError:
        raise
    except (msgspec.DecodeError, TypeError, ValueError, RecursionError, MemoryError) as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, DecodeError):
            raise DecodeError(str(cause)) from exc
        raise DecodeError(f"undecodable input ({len(data)} bytes): {exc}") from exc
