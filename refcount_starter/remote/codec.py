"""The wire codec: msgpack (through msgspec) with an explicit registry of message types.

No pickle crosses the wire: a value is encoded only if it is made of primitives (``None``,
``bool``, ``int``, ``float``, ``str``, ``bytes``), containers (``list``, ``tuple``, ``dict``,
``set``, ``frozenset``) and instances of classes registered by a stable name with
``register_type`` (``registry.py``). Decoding builds nothing else, so a payload cannot make
this node import or call anything. See ADR-0008.

Errors: ``encode`` raises ``Unencodable`` (a ``TypeError``) and nothing else, whatever the
value holds (an unregistered type, a lone surrogate, an int beyond ``MAX_INT_BITS``, nesting
beyond ``MAX_DEPTH``, a cycle), naming the part and why; ``stand_in`` makes the ``Crashed``
that goes in place of an exit reason that cannot travel. ``decode`` raises ``DecodeError``
and nothing else, whatever the bytes.

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
import reprlib
from typing import Any

import msgspec

from ..runtime.errors import RefcountStarterError
from ..runtime.pid import Pid, Ref
from ..runtime.reasons import Crashed, ExitReason, NoProc, Shutdown
from .errors import Unencodable
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
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "UNENCODABLE",
    "DecodeError",
    "Unencodable",
    "stand_in",
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

#: How many containers and registered objects a value may nest inside one another, the
#: signal that carries it included: more than any message needs, and few enough that every
#: node decodes it well within Python's stack.
MAX_DEPTH = 100
#: The most bits of an int (sign aside): such an int has at most 4,300 decimal digits,
#: Python's default limit for converting an int to text and back
#: (``sys.get_int_max_str_digits()``; decoding longer text is quadratic).
MAX_INT_BITS = 14_284
# The longest decimal text of an int beyond 64 bits that decoding accepts (with its sign).
_BIGINT_TEXT = 4301


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
_SEQUENCE_CODES: dict[type, int] = {tuple: EXT_TUPLE, frozenset: EXT_FROZENSET, set: EXT_SET}
_pid_wire: dict[Pid, msgspec.msgpack.Ext] = {}
_pid_decoded: dict[bytes, Pid] = {}
# Only the encodings of pids with short node names are kept, so that input from the network
# cannot fill the cache with large keys.
_PID_KEY_LIMIT = 256


def _wire(value: Any, room: int) -> Any:
    # The hot path: every signal goes through here. It only refuses (any exception will
    # do); ``_unencodable`` walks the value again to say where and why.
    kind = type(value)
    if kind is Pid:
        cached = _pid_wire.get(value)
        if cached is None:
            if len(_pid_wire) >= _CACHE_LIMIT:
                _pid_wire.clear()
            cached = _pid_wire[value] = _ext(
                EXT_OBJECT, [_PID_NAME, value.node, _wire(value.incarnation, 0), _wire(value.serial, 0)]
            )
        return cached
    if kind is str or kind is float or kind is bool or value is None or kind is bytes:
        return value
    if kind is Ref:
        # A new one in every call and monitor: written out, like a Pid, without the cache.
        return _ext(EXT_OBJECT, [_REF_NAME, value.node, _wire(value.incarnation, 0), _wire(value.serial, 0)])
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        if value.bit_length() > MAX_INT_BITS:
            raise ValueError("int too large")
        return _Ext(EXT_BIGINT, str(value).encode("ascii"))
    # Containers and registered objects: each takes one of the MAX_DEPTH levels. Loops, not
    # comprehensions: a comprehension that reads ``room`` makes it a closure cell, which
    # every call, a str's too, would pay for.
    if not room:
        raise RecursionError("nested too deeply")
    room -= 1
    items: list[Any] = []
    if kind is list or kind is tuple or kind is frozenset or kind is set:
        for item in value:
            items.append(_wire(item, room))
        if kind is list:
            return items
        return _Ext(_SEQUENCE_CODES[kind], _encoder.encode(items))
    if kind is dict:
        if all(type(key) is str for key in value):
            mapping = {}
            for key, item in value.items():
                mapping[key] = _wire(item, room)
            return mapping
        for key, item in value.items():
            items.append(_wire(key, room))
            items.append(_wire(item, room))
        return _Ext(EXT_DICT, _encoder.encode(items))
    entry = by_type[kind]  # a KeyError for a type that is not registered
    items.append(entry.name)
    if entry.fields is None:
        items.append(value.name)
    elif entry.positional:
        for item in value.args:
            items.append(_wire(item, room))
    else:
        for field, _ in entry.fields:
            items.append(_wire(getattr(value, field), room))
    return _Ext(EXT_OBJECT, _encoder.encode(items))


def encode(value: Any) -> bytes:
    """Encode ``value`` for another node.

    Raises:
        Unencodable: ``value`` cannot cross nodes (a ``TypeError``; the one error encoding
            raises, whatever ``value`` holds): the message names the offending part, its
            type, and why.
    """
    try:
        return _encoder.encode(_wire(value, MAX_DEPTH))
    except Exception as exc:
        raise _unencodable(value, exc) from exc


def to_wire(value: Any) -> Any:
    """``value`` as a tree msgspec can encode (for embedding in a larger document).

    The tree is checked as ``encode`` checks ``value``, so that encoding it cannot fail.

    Raises:
        Unencodable: As ``encode``.
    """
    try:
        tree = _wire(value, MAX_DEPTH)
        _encoder.encode(tree)
    except Exception as exc:
        raise _unencodable(value, exc) from exc
    return tree


# -- why a value cannot travel ---------------------------------------------------------------
# Only on the error path: the walk need not be fast, but it must not fail (no recursion, no
# repr that raises) and its text must itself be encodable.

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = 120
_repr.maxother = 120


def _printable(text: str) -> str:
    """``text`` with each lone surrogate written out as an escape, ``\\udcXX``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(value: object) -> str:
    """A short, encodable repr of ``value`` that never raises."""
    try:
        return _printable(_repr.repr(value))
    except Exception:
        return f"<{_type_name(type(value))} object>"


def _type_name(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _str_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"it holds the lone surrogate {text[exc.start]!r} at index {exc.start}, which no "
            "UTF-8 text can hold (a file name that is not UTF-8?); send such names as bytes "
            "(os.fsencode)"
        )
    return None


def _int_problem(number: int) -> str | None:
    if _INT_MIN <= number <= _INT_MAX:
        return None
    limit = f"ints cross nodes up to {MAX_INT_BITS:,} bits (4,300 decimal digits)"
    if number.bit_length() > MAX_INT_BITS:
        return f"it has {number.bit_length():,} bits; {limit}"
    try:
        str(number)
    except ValueError:
        return f"this interpreter refuses its decimal text (sys.set_int_max_str_digits); {limit}"
    return None


_Walk = tuple[Any, str, int, dict[int, str]]
_PATH_TEXT = 200


def _parts(value: Any, path: str) -> list[tuple[Any, str]] | str:
    """The parts of a container or registered object, each with its path, in the order
    ``_wire`` encodes them; or why ``value`` cannot travel at all."""
    kind = type(value)
    if kind is list or kind is tuple:
        return [(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind is set or kind is frozenset:
        return [(item, f"{path}<item {index}>") for index, item in enumerate(value)]
    if kind is dict:
        parts: list[tuple[Any, str]] = []
        for index, (key, item) in enumerate(value.items()):
            parts.append((key, f"{path}<key {index}>"))
            parts.append((item, f"{path}[{_describe(key)}]"))
        return parts
    entry = by_type.get(kind)
    if entry is None:
        why = refused.get(kind)
        if why is not None:
            return why
        return (
            f"its class is not registered; only None, bool, int, float, str, bytes, "
            "list, tuple, dict, set, frozenset and classes registered with "
            "refcount_starter.remote.codec.register_type(cls, name) cross nodes (no pickle on "
            f"the wire). The value: {_describe(value)}"
        )
    if entry.fields is None:
        return [(value.name, f"{path}.name")]
    if entry.positional:
        return [(item, f"{path}.args[{index}]") for index, item in enumerate(value.args)]
    parts = []
    for field, _ in entry.fields:
        try:
            parts.append((getattr(value, field), f"{path}.{field}"))
        except Exception as exc:
            return (
                f"reading its field {field!r} (its wire type {entry.name!r} sends it) raised "
                f"{type(exc).__name__}: {_printable(str(exc))}"
            )
    return parts


def _find_unencodable(value: Any) -> Unencodable | None:
    """The first part of ``value``, in encoding order, that cannot travel, as an error."""
    # Depth-first, by hand: the value may nest deeper than the stack allows.
    stack: list[_Walk] = [(value, "value", 0, {})]
    while stack:
        part, path, depth, ancestors = stack.pop()
        kind = type(part)
        why: str | None
        if kind is str:
            why = _str_problem(part)
        elif kind is int:
            why = _int_problem(part)
        elif kind is bool or kind is float or kind is bytes or part is None:
            why = None
        elif id(part) in ancestors:
            why = f"it holds itself: it is the same object as {ancestors[id(part)]} (a cycle)"
        elif depth >= MAX_DEPTH:
            why = (
                f"it lies {MAX_DEPTH} levels deep; values nest at most {MAX_DEPTH} containers "
                "or registered objects inside one another (the signal that carries them counts)"
            )
        else:
            parts = _parts(part, path)
            if isinstance(parts, str):
                why = parts
            else:
                inside = {**ancestors, id(part): path}
                stack.extend((item, where, depth + 1, inside) for item, where in reversed(parts))
                continue
        if why is not None:
            if len(path) > _PATH_TEXT:  # a deep one: its start and its end say enough
                path = f"{path[: _PATH_TEXT // 2]}...{path[-_PATH_TEXT // 2 :]}"
            return Unencodable(path, _printable(_type_name(kind)), _printable(why))
    return None


def _unencodable(value: Any, exc: Exception) -> Unencodable:
    try:
        found = _find_unencodable(value)
    except Exception:  # a value odd enough to break the walk is still refused the same way
        found = None
    if found is not None:
        return found
    # Nothing the rules refuse: the stack ran out, or msgspec refused something.
    if isinstance(exc, RecursionError):
        why = "it nests too deeply for what is left of the stack of this call (RecursionError)"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return Unencodable("value", _printable(_type_name(type(value))), _printable(why))


#: The ``exc_type`` of the ``Crashed`` that ``stand_in`` makes for a value it cannot keep
#: the kind of: the qualified name of ``Unencodable``, as in the ``Crashed`` of a process
#: that let an ``Unencodable`` escape.
UNENCODABLE = "refcount_starter.remote.errors.Unencodable"
# Each text of a stand-in is cut to this many characters.
_STAND_IN_TEXT = 65_536


def _text(value: object) -> str:
    text = value if type(value) is str else _describe(value)
    return _printable(text)[:_STAND_IN_TEXT]


def _explain(value: object, why: str | None = None) -> str:
    """A short repr of ``value`` and why it cannot travel, as encodable text."""
    if why is None:
        try:
            found = _find_unencodable(value)
        except Exception:  # a value odd enough to break the walk still gets its stand-in
            found = None
        why = "it cannot be encoded" if found is None else str(found)
    return _text(f"{_describe(value)}: {why}")


def _travels(value: object) -> bool:
    try:
        encode(value)
    except Unencodable:
        return False
    return True


def stand_in(value: object, why: str | None = None) -> ExitReason:
    """An exit reason that crosses nodes in place of ``value``, which cannot (``encode`` raised,
    or its encoding is larger than the transport takes: ``why`` then says so).

    For an exit reason the node sends as a process exits (a link's exit signal, a ``Down``),
    so that the watcher on the other node still learns of the exit, and of what it acts on:
    whether the exit was normal (for restart policies) and what kind it was.

    * A ``Crashed`` stays a ``Crashed`` with its type name, message and traceback, each lone
      surrogate written out as an escape (``\\udcXX``).
    * A ``Shutdown`` stays a ``Shutdown`` (a normal exit), its ``detail`` replaced by a text
      holding a short repr of it and why it cannot travel.
    * A ``NoProc`` stays a ``NoProc``, its ``last_reason`` replaced by its own stand-in.
    * Anything else becomes ``Crashed(UNENCODABLE, text)``, the text a short repr of the
      value and why it cannot travel (a replier whose ``reply`` raised ``Unencodable`` may
      answer with it too).

    Each text is cut to 65,536 characters. Never raises; the result always encodes.

    Args:
        value: The exit reason that cannot travel.
        why: Why, when the codec cannot tell (a reason too large for the transport).

    Example::

        try:
            body = encode(signal)
        except Unencodable:
            body = encode(attrs.evolve(signal, reason=stand_in(signal.reason)))
    """
    if isinstance(value, Crashed):
        message = value.message if why is None else f"{value.message} ({why})"
        return Crashed(_text(value.exc_type), _text(message), _text(value.traceback))
    if isinstance(value, Shutdown):
        return Shutdown(_explain(value, why))
    if isinstance(value, NoProc):
        last = value.last_reason
        kept = NoProc(
            value.pid, last if last is None or _travels(last) else stand_in(last, why), value.died_at
        )
        if _travels(kept):
            return kept
    return Crashed(UNENCODABLE, _explain(value, why))


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
        if entry.cls is Pid and len(key) <= _PID_KEY_LIMIT:
            if len(_pid_decoded) >= _CACHE_LIMIT:
                _pid_decoded.clear()
            _pid_decoded[key] = value
        return value
    if code == EXT_BIGINT:
        if len(data) > _BIGINT_TEXT:
            raise DecodeError(f"a big int of {len(data):,} digits: at most 4,300 cross nodes")
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
    except Exception as exc:  # whatever the input makes msgspec or a hook raise
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, DecodeError):
            raise DecodeError(str(cause)) from exc
        raise DecodeError(f"undecodable input ({len(data)} bytes): {exc}") from exc
