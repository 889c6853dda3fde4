"""The NATS transport's pure parts: envelope framing, fragments, subjects, and its options."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcount_starter.remote import envelope as wire
from refcount_starter.remote.natsoptions import DEFAULT_MAX_MESSAGE_SIZE, NatsOptions
from refcount_starter.remote.natstransport import NatsTransport


@given(st.binary(min_size=1, max_size=5_000), st.integers(min_value=1, max_value=700))
def test_fragments_cut_in_order_and_mark_the_last(data: bytes, piece: int) -> None:
    """Pieces are at most ``piece`` bytes, join back to the whole, and only the last is marked."""
    pieces = list(wire.fragments(data, piece))
    assert b"".join(bytes(p) for _, p in pieces) == data
    assert all(len(p) <= piece for _, p in pieces)
    kinds = [kind for kind, _ in pieces]
    assert kinds == [wire.KIND_FRAGMENT] * (len(pieces) - 1) + [wire.KIND_LAST_FRAGMENT]


@given(st.binary(max_size=2_000), st.integers(min_value=0, max_value=2**63 - 1))
def test_a_fragment_envelope_fits_its_overhead_and_round_trips(piece: bytes, number: int) -> None:
    """A fragment's envelope is its piece plus at most FRAGMENT_OVERHEAD and the name."""
    name = "node-with-a-long-name"
    data = wire.encode_envelope(wire.KIND_FRAGMENT, name, number, number, number, piece)
    assert len(data) <= len(piece) + wire.FRAGMENT_OVERHEAD + len(name)
    header = wire.decode_header(data)
    assert header[:6] == (wire.WIRE_VERSION, wire.KIND_FRAGMENT, name, number, number, number)
    assert bytes(wire.decode_chunk(header[6])) == piece


def test_a_batch_inside_a_batch_and_unknown_kinds_are_refused() -> None:
    """Only the inner kinds may be inside a batch; unknown versions and kinds are refused."""
    batch = wire.encode_batch(
        "a", 1, [wire.encode_envelope(wire.KIND_HEARTBEAT, "a", 1, 1, 0, msgspec.Raw(wire.NIL))]
    )
    with pytest.raises(ValueError, match="inside a batch"):
        wire.decode_header(batch, inner=True)
    assert wire.decode_header(batch)[1] == wire.KIND_BATCH
    with pytest.raises(ValueError, match="version 1"):
        wire.decode_header(msgspec.msgpack.encode([1, 0, "a", 1, 1, 0, None]))
    with pytest.raises(ValueError, match="kind 9"):
        wire.decode_header(msgspec.msgpack.encode([wire.WIRE_VERSION, 9, "a", 1, 1, 0, None]))


def test_every_subject_a_node_publishes_on_ends_with_its_name() -> None:
    """So a NATS user per node can be allowed exactly its own (docs/nats.md)."""
    subjects = wire.Subjects("rs")
    for subject in (subjects.node("b", 7, "a"), subjects.whois("b", "a"), subjects.presence("a")):
        assert wire.Subjects.sender(subject) == "a"
    assert subjects.inbox("b", 7) == "rs.node.b.7.*"
    assert subjects.whois_inbox("b") == "rs.whois.b.*"


def test_hello_whois_and_answers_round_trip_and_refuse_other_versions() -> None:
    assert wire.decode_hello(wire.encode_hello("a", 5)) == ("a", 5)
    assert wire.decode_whois(wire.encode_whois("a", 5)) == ("a", 5)
    assert wire.decode_whois_answer(wire.encode_whois_answer("a", 5, running=False)) == ("a", 5, False)
    with pytest.raises(ValueError, match="not a hello"):
        wire.decode_hello(msgspec.msgpack.encode([1, "hello", "a", 5]))


def test_options_from_the_environment_with_explicit_ones_winning() -> None:
    """``from_env`` reads ``RS_NATS_*``; options given (not None) override them."""
    environ = {
        "RS_NATS_URL": "nats://one:4222, nats://two:4222",
        "RS_NATS_USER": "a",
        "RS_NATS_PASSWORD": "pw",
        "RS_NATS_HEARTBEAT_INTERVAL": "0.5",
        "RS_NATS_MAX_MESSAGE_SIZE": "1000",
    }
    options = NatsOptions.from_env(environ, heartbeat_misses=None, max_message_size=2000)
    assert options.servers == ("nats://one:4222", "nats://two:4222")
    assert options.auth() == {"user": "a", "password": "pw"}
    assert options.heartbeat_interval == 0.5 and options.heartbeat_misses == 5
    assert options.max_message_size == 2000
    assert NatsOptions.from_env({}, servers="nats://x:1").max_message_size == DEFAULT_MAX_MESSAGE_SIZE
    assert "pw" not in repr(options)


def test_bad_options_are_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="no NATS server given"):
        NatsOptions.from_env({})
    with pytest.raises(ValueError, match="RS_NATS_HEARTBEAT_MISSES must be a number, got 'many'"):
        NatsOptions.from_env({"RS_NATS_URL": "nats://x:1", "RS_NATS_HEARTBEAT_MISSES": "many"})
    with pytest.raises(ValueError, match="max_message_size must be an int >= 1, got 0"):
        NatsOptions(servers="nats://x:1", max_message_size=0)
    with pytest.raises(ValueError, match="subject_prefix must be a subject token"):
        NatsOptions(servers="nats://x:1", subject_prefix="a.b")
    with pytest.raises(ValueError, match="heartbeat_interval must be a number of seconds > 0"):
        NatsTransport("nats://x:1", heartbeat_interval=-1)
    with pytest.raises(TypeError, match="either a NatsOptions or keyword options"):
        NatsTransport(NatsOptions(servers="nats://x:1"), token="t")
