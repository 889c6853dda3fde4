"""The wire codec: round trips of every registered type, and refusal of bad input."""

from __future__ import annotations

import contextlib
import enum
import math
import re
import sys
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
    if attrs.has(type(a)):  # field by field, so that a NaN inside compares as NaN
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
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


# -- refusing what cannot travel: one error, naming where and why ---------------------------


def nested_lists(depth: int) -> Any:
    value: Any = None
    for _ in range(depth):
        value = [value]
    return value


@attrs.define(eq=False)
class Cell:
    name: str
    next: Any = None


register_type(Cell, "tests.remote.Cell")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class SurrogateRepr:
    def __repr__(self) -> str:
        return "SurrogateRepr(\udcff)"


def _cycle_list() -> list[Any]:
    cycle: list[Any] = [1]
    cycle.append({"back": cycle})
    return cycle


def _cycle_cells() -> Cell:
    head = Cell("head", Cell("tail"))
    head.next.next = head
    return head


@pytest.mark.parametrize(
    ("value", "path", "type_name", "why"),
    [
        (["ok", "bad \udc80 name"], "value[1]", "str", r"lone surrogate '\\udc80' at index 4"),
        ({"k": ("x", {"\udcff": 1})}, "value['k'][1]<key 0>", "str", "lone surrogate"),
        (Pid("n\udc80", 1, 2), "value.node", "str", "lone surrogate"),
        (Crashed("OSError", "no such file: b'\udce9t\udce9'"), "value.message", "str", "lone surrogate"),
        (nested_lists(codec.MAX_DEPTH + 1), "...", "list", f"nest at most {codec.MAX_DEPTH}"),
        (_cycle_list(), "value[1]['back']", "list", r"same object as value \(a cycle\)"),
        (_cycle_cells(), "value.next.next", "tests.remote.test_codec.Cell", r"same object as value \(a"),
        ([2**codec.MAX_INT_BITS], "value[0]", "int", "14,285 bits; ints cross nodes up to 14,284"),
        ({1: bytearray(b"x")}, "value[1]", "bytearray", "not registered.*register_type"),
        ((memoryview(b"x"),), "value[0]", "memoryview", "not registered"),
        ([BadRepr()], "value[0]", "tests.remote.test_codec.BadRepr", r"The value: <BadRepr"),
        ([SurrogateRepr()], "value[0]", "tests.remote.test_codec.SurrogateRepr", r"SurrogateRepr\(\\udcff\)"),
        (
            object.__new__(Cell),
            "value",
            "tests.remote.test_codec.Cell",
            "reading its field 'name'.*AttributeError",
        ),
    ],
    ids=[
        "surrogate",
        "surrogate-key",
        "surrogate-pid",
        "surrogate-reason",
        "too-deep",
        "cycle",
        "cycle-of-objects",
        "huge-int",
        "bytearray",
        "memoryview",
        "repr-raises",
        "repr-surrogate",
        "missing-field",
    ],
)
def test_what_cannot_travel_is_refused_with_one_error_naming_where_and_why(
    value: Any, path: str, type_name: str, why: str
) -> None:
    """Whatever a value holds, encoding it raises ``Unencodable`` (a ``TypeError``) naming the
    part, its type and why; its text is itself encodable, and so is the error."""
    with pytest.raises(codec.Unencodable, match=why) as raised:
        encode(value)
    error = raised.value
    assert isinstance(error, TypeError)
    assert error.type_name == type_name
    if path == "...":  # a deep one: the path is shortened in the middle
        assert error.path.startswith("value[0][0]") and "..." in error.path
    else:
        assert error.path == path
    assert str(error).startswith(f"{error.path} (type {type_name}) cannot cross nodes: ")
    assert decode(encode(str(error))) == str(error)
    copy = decode(encode(error))
    assert type(copy) is codec.Unencodable and str(copy) == str(error)
    with pytest.raises(codec.Unencodable):
        codec.to_wire(value)


def test_a_type_whose_name_holds_a_surrogate_is_named_escaped() -> None:
    """Even the type's name in the message is escaped."""
    odd = type("Odd", (), {"__module__": "odd\udc80"})
    with pytest.raises(codec.Unencodable) as raised:
        encode([odd()])
    assert raised.value.type_name == "odd\\udc80.Odd"
    encode(str(raised.value))


def test_limits_are_inclusive_and_what_encodes_decodes_even_deep_in_the_stack() -> None:
    """A value at the nesting limit and an int at the bit limit encode, and decode even from
    a deep stack: every node can read what any node may send."""
    deepest: Any = 2**codec.MAX_INT_BITS - 1
    for level in range(codec.MAX_DEPTH - 1):
        # The costliest levels to decode: objects and tuples, each a nested document.
        deepest = Reply(Ref("n", 1, level), deepest) if level % 2 else (deepest,)
    signal = sig.MessageSignal(None, Pid("n", 1, 1), deepest)
    data = encode(signal)
    with pytest.raises(codec.Unencodable, match="nest at most"):
        encode(sig.MessageSignal(None, Pid("n", 1, 1), [deepest]))

    def decode_at(depth: int) -> Any:
        return decode(data) if depth == 0 else decode_at(depth - 1)

    assert decode_at(300) == signal
    assert decode(encode(-(2**codec.MAX_INT_BITS) + 1)) == -(2**codec.MAX_INT_BITS) + 1


def test_a_value_too_deep_for_the_callers_stack_is_refused_the_same_way() -> None:
    """Called from a deep stack, encoding a value within the limit still raises only
    ``Unencodable`` (the stack, not the value, ran out)."""
    value = nested_lists(codec.MAX_DEPTH - 1)

    def encode_at(depth: int) -> bytes:
        return encode(value) if depth == 0 else encode_at(depth - 1)

    limit = sys.getrecursionlimit()
    with pytest.raises(codec.Unencodable, match="RecursionError"):
        encode_at(limit - 50)


surrogate_text = st.text(st.characters() | st.characters(codec=None, categories=["Cs"]), max_size=8)
hostile_leaves = (
    primitives
    | surrogate_text
    | st.builds(
        lambda bits, sign: sign * (2**bits - 1),
        st.integers(60, codec.MAX_INT_BITS + 2),
        st.sampled_from([1, -1]),
    )
    | st.floats()
    | pids
    | st.builds(bytearray, st.binary(max_size=4))
    | st.builds(BadRepr)
    | st.builds(Crashed, surrogate_text, surrogate_text)
    | st.builds(Shutdown, surrogate_text)
)
hostile = st.recursive(
    hostile_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(surrogate_text, inner, max_size=3)
        | st.builds(Shutdown, inner)
        | st.builds(Reply, refs, inner)
    ),
    max_leaves=10,
)


@given(hostile)
def test_encoding_anything_succeeds_or_raises_unencodable_only(value: Any) -> None:
    """Any value encodes and comes back equal, or is refused with ``Unencodable`` whose text
    is encodable; its stand-in always encodes."""
    try:
        data = encode(value)
    except codec.Unencodable as error:
        encode(str(error))
        assert error.path.startswith("value")
    else:
        assert same(decode(data), value)
    replacement = codec.stand_in(value)
    assert decode(encode(replacement)) == replacement


# -- the stand-in for an exit reason that cannot travel -------------------------------------


def test_a_crashed_reason_keeps_its_type_and_text_escaped_in_its_stand_in() -> None:
    """A ``Crashed`` with lone surrogates (a non-UTF-8 file name) stands in as the same crash,
    the surrogates escaped."""
    reason = Crashed("FileNotFoundError", "no file 'caf\udce9'", "Traceback...\n  caf\udce9\n")
    with pytest.raises(codec.Unencodable):
        encode(reason)
    replacement = codec.stand_in(reason)
    assert replacement == Crashed("FileNotFoundError", "no file 'caf\\udce9'", "Traceback...\n  caf\\udce9\n")
    assert decode(encode(replacement)) == replacement
    long = codec.stand_in(Crashed("E", "\udc80" + "x" * 100_000, "y" * 100_000))
    assert len(long.message) == len(long.traceback) == 65_536
    assert long.message.startswith("\\udc80xxx")


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (Shutdown(nested_lists(5000)), "lies 100 levels deep"),
        (Shutdown(_cycle_list()), "a cycle"),
        (Shutdown(BadRepr()), "not registered"),
        (Shutdown("\udc80"), r"value\.detail \(type str\).*lone surrogate"),
    ],
    ids=["deep", "cycle", "repr-raises", "surrogate"],
)
def test_a_shutdown_stays_a_normal_shutdown_whose_detail_says_why(reason: Shutdown, text: str) -> None:
    """A ``Shutdown`` stands in as a ``Shutdown`` (still a normal exit for restart policies)
    whose detail is a text: a short repr of the original and why it cannot travel."""
    replacement = codec.stand_in(reason)
    assert type(replacement) is Shutdown and replacement.normal
    assert isinstance(replacement.detail, str) and re.search(text, replacement.detail)
    assert decode(encode(replacement)) == replacement


def test_a_noproc_stays_a_noproc_with_its_last_reason_stood_in() -> None:
    """A ``NoProc`` keeps its pid and time; only its last reason is stood in."""
    pid = Pid("b", 1, 2)
    replacement = codec.stand_in(NoProc(pid, Crashed("E", "\udc80" + "x" * 200_000), 1.5))
    assert type(replacement) is NoProc and replacement.pid == pid and replacement.died_at == 1.5
    last = replacement.last_reason
    assert type(last) is Crashed and last.exc_type == "E" and len(last.message) == 65_536
    assert codec.stand_in(NoProc(pid, Normal(), 1.5)) == NoProc(pid, Normal(), 1.5)
    assert decode(encode(replacement)) == replacement


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ExitSignal(Pid("b", 1, 2), Shutdown(BadRepr())), r"value\.reason\.detail \(type .*BadRepr\)"),
        (NoConnection("n\udc80"), r"NoConnection\(node='n\\udc80'\): value\.node \(type str\)"),
        ([1] * 100_000 + [BadRepr()], r"^\[1, 1, 1, 1, 1, 1, \.\.\.\]: value\[100000\] \(type .*BadRepr\)"),
    ],
    ids=["unregistered", "surrogate", "long"],
)
def test_anything_else_stands_in_as_a_crash_that_says_why(value: Any, text: str) -> None:
    """Any other value stands in as ``Crashed(UNENCODABLE, text)``: a short repr and why."""
    replacement = codec.stand_in(value)
    assert type(replacement) is Crashed and replacement.exc_type == codec.UNENCODABLE
    assert re.search(text, replacement.message), replacement.message
    assert decode(encode(replacement)) == replacement


# -- decoding hostile bytes: DecodeError and nothing else ------------------------------------


def _ext(code: int, payload: bytes) -> bytes:
    return msgspec.msgpack.encode(msgspec.msgpack.Ext(code, payload))


def _nested_tuples(depth: int) -> bytes:
    data = msgspec.msgpack.encode(None)
    for _ in range(depth):
        data = _ext(codec.EXT_TUPLE, b"\x91" + data)
    return data


@pytest.mark.parametrize(
    "data",
    [
        _nested_tuples(5000),
        b"\x91" * 200_000 + b"\xc0",
        b"\xdd\xff\xff\xff\xff",  # an array of 4 billion items, then nothing
        b"\xdf\xff\xff\xff\xff",  # a map of 4 billion pairs
        b"\xdb\xff\xff\xff\xff",  # a str of 4 GiB
        b"\xc9\xff\xff\xff\xff\x01",  # an extension of 4 GiB
        b"\xa2\xc3\x28",  # a str that is not UTF-8
        _ext(codec.EXT_BIGINT, b"9" * 5000),
        _ext(codec.EXT_BIGINT, b"\xff\xfe"),
        _ext(codec.EXT_SET, msgspec.msgpack.encode([[1]])),  # an unhashable member
        _ext(codec.EXT_DICT, msgspec.msgpack.encode([[1], 2])),  # an unhashable key
        _ext(codec.EXT_OBJECT, msgspec.msgpack.encode(["rs.supervisor.ChildType", "NOPE"])),
        _ext(codec.EXT_OBJECT, msgspec.msgpack.encode([1, 2])),
    ],
    ids=[
        "deep-extensions",
        "deep-arrays",
        "huge-array",
        "huge-map",
        "huge-str",
        "huge-ext",
        "bad-utf8",
        "long-bigint",
        "bigint-not-text",
        "unhashable-member",
        "unhashable-key",
        "unknown-member",
        "nameless-object",
    ],
)
def test_hostile_bytes_raise_decode_error_only(data: bytes) -> None:
    """Hostile input raises ``DecodeError``: never ``RecursionError``, ``MemoryError``,
    ``UnicodeDecodeError`` or ``TypeError``."""
    with pytest.raises(DecodeError):
        decode(data)


def test_pids_with_long_node_names_are_not_kept_in_the_decoding_cache() -> None:
    """Input from the network cannot fill the pid cache with large keys."""
    codec._pid_decoded.clear()
    decode(encode(Pid("n" * 1000, 1, 1)))
    assert not codec._pid_decoded
    decode(encode(Pid("n", 1, 1)))
    assert len(codec._pid_decoded) == 1
