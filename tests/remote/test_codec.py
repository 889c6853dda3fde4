"""The wire codec: round trips of every registered type, and refusal of bad input."""

from __future__ import annotations

import contextlib
import enum
import math
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcount_starter.remote import codec
from refcount_starter.remote.codec import DecodeError, decode, encode, register_type
from refcount_starter.runtime import (
    Call,
    Crashed,
    Down,
    ExitSignal,
    Kill,
    Killed,
    NoConnection,
    NoProc,
    Normal,
    Pid,
    Ref,
    Reply,
    Shutdown,
)
from refcount_starter.runtime import signals as sig

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
counts = st.integers(min_value=0, max_value=2**63 - 1)
pids = st.builds(Pid, names, counts, counts)
refs = st.builds(Ref, names, counts, counts)

primitives = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
hashables = st.recursive(
    primitives | pids | refs,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
reasons = st.one_of(
    st.builds(Normal),
    st.builds(Shutdown, hashables),
    st.builds(Killed),
    st.builds(Kill),
    st.builds(Crashed, st.text(max_size=10), st.text(max_size=20), st.text(max_size=20)),
    st.builds(NoProc, st.none() | pids, st.none() | st.builds(Normal), st.none() | st.floats(0, 2e9)),
    st.builds(NoConnection, st.none() | names),
)


def values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            | st.dictionaries(hashables, inner, max_size=3)
            | st.frozensets(hashables, max_size=3)
            | st.sets(hashables, max_size=3)
            | st.builds(Call, pids, refs, inner)
            | st.builds(Reply, refs, inner)
            | st.builds(ExitSignal, pids, reasons)
            | st.builds(Down, refs, pids, reasons)
        ),
        max_leaves=12,
    )


messages = values(primitives | pids | refs | reasons)
signals = st.one_of(
    st.builds(sig.MessageSignal, st.none() | pids, pids, messages),
    st.builds(sig.NamedMessageSignal, st.none() | pids, names, names, messages),
    st.builds(sig.LinkSignal, pids, pids),
    st.builds(sig.UnlinkSignal, pids, pids),
    st.builds(sig.ExitSignalSent, pids, pids, reasons, st.booleans()),
    st.builds(sig.MonitorSignal, pids, pids, refs),
    st.builds(sig.DemonitorSignal, pids, pids, refs),
    st.builds(sig.DownSignal, pids, refs, pids, reasons),
    st.builds(sig.CallSignal, pids, pids, refs, messages),
    st.builds(sig.ReplySignal, pids, pids, refs, messages),
)


def same(a: Any, b: Any) -> bool:
    """Equality that also checks container types (a tuple must not come back as a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@given(messages)
def test_messages_round_trip(value: Any) -> None:
    """Every encodable message decodes to an equal value of the same types."""
    assert same(decode(encode(value)), value)


@given(signals)
def test_signals_round_trip(signal: Any) -> None:
    """Every signal that crosses nodes decodes to an equal signal."""
    assert decode(encode(signal)) == signal


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    """Arbitrary bytes either decode or raise ``DecodeError``, never anything else."""
    with contextlib.suppress(DecodeError):
        decode(data)


@given(signals, st.data())
def test_truncated_or_corrupted_input_raises_decode_error_only(signal: Any, data: st.DataObject) -> None:
    """A signal's encoding cut short or with a byte changed decodes or raises ``DecodeError``."""
    raw = bytearray(encode(signal))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        decode(bytes(raw[:cut]))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        decode(bytes(raw))


def test_big_ints_and_nan_survive() -> None:
    """Ints beyond 64 bits and NaN round-trip."""
    assert decode(encode([2**100, -(2**80)])) == [2**100, -(2**80)]
    assert math.isnan(decode(encode(float("nan"))))


def test_encoding_an_unregistered_type_names_it() -> None:
    """Encoding a value of an unregistered class raises a TypeError naming the class."""

    class Unregistered:
        pass

    with pytest.raises(TypeError, match=r"Unregistered.*register_type"):
        encode({"x": [Unregistered()]})


def test_subclasses_of_primitives_are_not_silently_accepted() -> None:
    """A str subclass is refused (it would come back as a plain str)."""

    class Name(str):
        pass

    with pytest.raises(TypeError, match="Name"):
        encode(Name("x"))


def test_decoding_an_unregistered_name_raises_decode_error() -> None:
    """An object whose type name this node does not know is a ``DecodeError`` naming it."""
    raw = msgspec.msgpack.encode(
        msgspec.msgpack.Ext(codec.EXT_OBJECT, msgspec.msgpack.encode(["app.Nope", 1]))
    )
    with pytest.raises(DecodeError, match=r"app\.Nope"):
        decode(raw)


def test_values_a_class_refuses_raise_decode_error() -> None:
    """A registered class's validators run on decode: a negative pid serial is refused."""
    raw = msgspec.msgpack.encode(
        msgspec.msgpack.Ext(codec.EXT_OBJECT, msgspec.msgpack.encode(["rs.pid.Pid", "n", 1, -5]))
    )
    with pytest.raises(DecodeError, match=r"rs\.pid\.Pid"):
        decode(raw)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",
        b"\x92\x01",
        msgspec.msgpack.encode(msgspec.msgpack.Ext(99, b"\x90")),
        msgspec.msgpack.encode(msgspec.msgpack.Ext(codec.EXT_OBJECT, b"\x90")),
        msgspec.msgpack.encode(msgspec.msgpack.Ext(codec.EXT_DICT, msgspec.msgpack.encode([1]))),
        msgspec.msgpack.encode(msgspec.msgpack.Ext(codec.EXT_BIGINT, b"12x")),
        msgspec.msgpack.encode(msgspec.msgpack.Ext(codec.EXT_TUPLE, b"\x01")),
        msgspec.msgpack.encode(
            msgspec.msgpack.Ext(codec.EXT_OBJECT, msgspec.msgpack.encode(["rs.pid.Pid", "n"]))
        ),
    ],
)
def test_malformed_input_raises_decode_error(data: bytes) -> None:
    """Malformed msgpack, unknown extensions and wrong shapes are ``DecodeError``s."""
    with pytest.raises(DecodeError):
        decode(data)


@attrs.frozen
class Order:
    item: str
    quantity: int = attrs.field(validator=attrs.validators.ge(0))
    _note: str = ""


class Colour(enum.Enum):
    RED = 1
    BLUE = "b"


def test_registered_user_types_round_trip() -> None:
    """A registered attrs class (with a private field) and an Enum round-trip."""
    register_type(Order, "tests.remote.Order")
    register_type(Colour, "tests.remote.Colour")
    register_type(Order, "tests.remote.Order")  # again: no change
    value = [Order("tea", 2, note="green"), Colour.BLUE, (Colour.RED, Order("cup", 0))]
    assert decode(encode(value)) == value
    assert codec.registered_name(Order) == "tests.remote.Order"
    assert codec.registered_types()["tests.remote.Colour"] is Colour


def test_registration_conflicts_are_refused() -> None:
    """A wire name maps to one class and a class to one wire name."""
    register_type(Order, "tests.remote.Order")

    @attrs.frozen
    class Other:
        x: int

    with pytest.raises(ValueError, match="already registered"):
        register_type(Other, "tests.remote.Order")
    with pytest.raises(ValueError, match="already registered"):
        register_type(Order, "tests.remote.Order2")
    with pytest.raises(TypeError, match="attrs"):
        register_type(dict, "tests.remote.dict")
    with pytest.raises(TypeError, match="non-empty"):
        register_type(Other, "")


def test_every_runtime_signal_and_reason_is_registered() -> None:
    """Pids, refs, every exit reason, Call/Reply, ExitSignal/Down and every signal are registered."""
    for cls in (
        Pid,
        Ref,
        Normal,
        Shutdown,
        Killed,
        Kill,
        Crashed,
        NoProc,
        NoConnection,
        ExitSignal,
        Down,
        Call,
        Reply,
        sig.MessageSignal,
        sig.NamedMessageSignal,
        sig.LinkSignal,
        sig.UnlinkSignal,
        sig.ExitSignalSent,
        sig.MonitorSignal,
        sig.DemonitorSignal,
        sig.DownSignal,
        sig.CallSignal,
        sig.ReplySignal,
    ):
        assert codec.is_registered(cls), cls


@attrs.frozen
class WithLocalPart:
    name: str
    cache: dict[str, int] = attrs.field(factory=dict, eq=False)


def test_fields_that_do_not_travel_take_their_defaults() -> None:
    """With ``fields=``, only the named fields travel; the others take their defaults."""
    register_type(WithLocalPart, "tests.remote.WithLocalPart", fields=["name"])
    copy = decode(encode(WithLocalPart("x", {"local": 1})))
    assert copy == WithLocalPart("x") and copy.cache == {}

    @attrs.frozen
    class NoDefault:
        a: int
        b: int

    with pytest.raises(TypeError, match="no default"):
        register_type(NoDefault, "tests.remote.NoDefault", fields=["a"])


@attrs.frozen
class KeywordsOnly:
    first: int
    second: str = attrs.field(kw_only=True)


@attrs.frozen
class Pair:
    left: int
    right: str


def test_values_are_rebuilt_by_keyword_unless_the_fields_are_the_init_in_order() -> None:
    """A class with keyword-only fields, or registered with its fields in another order,
    comes back equal (it is rebuilt by keywords; the others positionally)."""
    register_type(KeywordsOnly, "tests.remote.KeywordsOnly")
    register_type(Pair, "tests.remote.Pair", fields=["right", "left"])
    assert decode(encode(KeywordsOnly(1, second="b"))) == KeywordsOnly(1, second="b")
    assert decode(encode(Pair(1, "r"))) == Pair(1, "r")
    assert codec.by_type[Pid].in_order and not codec.by_type[Pair].in_order


@attrs.frozen(init=False)
class OwnInit:
    number: int
    text: str

    def __init__(self, text: str, number: int) -> None:
        self.__attrs_init__(number, text)


def test_a_class_with_its_own_init_is_rebuilt_by_keywords() -> None:
    """attrs did not write its ``__init__``: its parameters may be in another order."""
    register_type(OwnInit, "tests.remote.OwnInit")
    assert not codec.by_type[OwnInit].in_order
    assert decode(encode(OwnInit("t", 1))) == OwnInit("t", 1)
