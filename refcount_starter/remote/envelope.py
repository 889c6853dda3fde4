"""The NATS transport's wire framing: envelopes, batches, fragments, subjects (pure).

An envelope is the msgpack array ``[version, kind, node, incarnation, epoch, seq, body]``:
who sends it (``node`` in its ``incarnation``), its place in the session (``epoch``,
``seq``), and what it carries. Several envelopes for one node travel together as a batch,
never larger than the connection's ``max_payload``; a signal whose envelope would be larger
is cut into fragments, each an envelope of its own with the next ``seq``, which the session
layer puts back together in order (``session.Peer.reassemble``). See ADR-0006.

Nothing here does I/O, awaits or reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

__all__ = [
    "BATCH_OVERHEAD",
    "FRAGMENT_OVERHEAD",
    "KIND_BATCH",
    "KIND_BYE",
    "KIND_FRAGMENT",
    "KIND_HEARTBEAT",
    "KIND_LAST_FRAGMENT",
    "KIND_SIGNAL",
    "NIL",
    "WIRE_VERSION",
    "Header",
    "Subjects",
    "decode_batch",
    "decode_chunk",
    "decode_header",
    "decode_hello",
    "decode_whois",
    "decode_whois_answer",
    "encode_batch",
    "encode_envelope",
    "encode_hello",
    "encode_whois",
    "encode_whois_answer",
    "fragments",
]

#: Version 3: a heartbeat carries the seq of the next envelope without taking it (ADR-0013).
#: Version 2: subjects name the sender, incarnations are random, fragments (ADR-0006).
WIRE_VERSION = 3

KIND_SIGNAL = 0
KIND_HEARTBEAT = 1
KIND_BYE = 2
#: Several envelopes for one node in one NATS message; the header's session fields are 0 and
#: each inner envelope carries its own.
KIND_BATCH = 3
#: A piece of a signal's encoding, more to come; the body is a msgpack bin.
KIND_FRAGMENT = 4
#: The last piece: the pieces since the previous signal, joined, are one signal's encoding.
KIND_LAST_FRAGMENT = 5

#: Kinds an envelope may have inside a batch (a batch in a batch is refused).
INNER_KINDS = (KIND_SIGNAL, KIND_HEARTBEAT, KIND_BYE, KIND_FRAGMENT, KIND_LAST_FRAGMENT)
TOP_KINDS = (*INNER_KINDS, KIND_BATCH)

#: What an envelope's header can take beside the node's name and the body: the array
#: header, the version, the kind, three integers of up to 9 bytes each, a str header.
_HEADER_BYTES = 1 + 1 + 1 + 3 * 9 + 5
#: A batch's own header, plus the array header of its list of envelopes.
BATCH_OVERHEAD = _HEADER_BYTES + 5
#: A fragment's header, plus the bin header of its piece.
FRAGMENT_OVERHEAD = _HEADER_BYTES + 5

Header = tuple[int, int, str, int, int, int, msgspec.Raw]

_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(Header)
_batch_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_chunk_decoder = msgspec.msgpack.Decoder(memoryview)
_hello_decoder = msgspec.msgpack.Decoder(tuple[int, str, str, int])
_whois_decoder = msgspec.msgpack.Decoder(tuple[int, str, int])
_answer_decoder = msgspec.msgpack.Decoder(tuple[int, str, int, bool])

#: The body of a heartbeat or a goodbye.
NIL = _encoder.encode(None)


class Subjects:
    """The subjects of one prefix (``rs`` by default). Every subject a node publishes on
    ends with its own name, so that a NATS user per node can be allowed to publish only on
    its own (ADR-0006)::

        P.node.<to>.<to incarnation>.<from>   envelopes for one node incarnation
        P.whois.<name>.<from>                 request/reply: the incarnation of <name>
        P.presence.<from>                     hello: <from> connected, in this incarnation

    Args:
        prefix: The first token of every subject.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def node(self, to: str, incarnation: int, sender: str) -> str:
        """Where ``sender`` publishes envelopes for ``to`` in ``incarnation``."""
        return f"{self.prefix}.node.{to}.{incarnation}.{sender}"

    def inbox(self, name: str, incarnation: int) -> str:
        """What the node ``name`` in ``incarnation`` subscribes to for its envelopes."""
        return f"{self.prefix}.node.{name}.{incarnation}.*"

    def whois(self, name: str, sender: str) -> str:
        """Where ``sender`` asks for the incarnation of ``name``."""
        return f"{self.prefix}.whois.{name}.{sender}"

    def whois_inbox(self, name: str) -> str:
        """What the node ``name`` subscribes to, to answer who asks for it."""
        return f"{self.prefix}.whois.{name}.*"

    def presence(self, sender: str) -> str:
        """Where ``sender`` says hello."""
        return f"{self.prefix}.presence.{sender}"

    def presence_inbox(self) -> str:
        """What every node subscribes to, to hear hellos."""
        return f"{self.prefix}.presence.*"

    @staticmethod
    def sender(subject: str) -> str:
        """The last token of a subject: who published on it (the server checks it where each
        node has its own user; see docs/nats.md)."""
        return subject.rpartition(".")[2]


def encode_envelope(kind: int, node: str, incarnation: int, epoch: int, seq: int, body: Any) -> bytes:
    """One envelope; ``body`` is a ``msgspec.Raw`` (an encoded signal, ``NIL``) or a bin."""
    return _encoder.encode([WIRE_VERSION, kind, node, incarnation, epoch, seq, body])


def encode_batch(node: str, incarnation: int, envelopes: Sequence[bytes]) -> bytes:
    """Several envelopes for one node, as one message."""
    raw = [msgspec.Raw(envelope) for envelope in envelopes]
    return _encoder.encode([WIRE_VERSION, KIND_BATCH, node, incarnation, 0, 0, raw])


def fragments(encoded: bytes, piece: int) -> Iterator[tuple[int, memoryview]]:
    """Cut a signal's encoding into pieces of at most ``piece`` bytes, each with its kind
    (``KIND_FRAGMENT``, then ``KIND_LAST_FRAGMENT`` for the last).

    Raises:
        ValueError: ``piece`` is not positive.
    """
    if piece < 1:
        raise ValueError(f"a fragment must hold at least one byte, got {piece}")
    view = memoryview(encoded)
    size = len(view)
    for start in range(0, size, piece):
        end = start + piece
        yield (KIND_LAST_FRAGMENT if end >= size else KIND_FRAGMENT), view[start:end]


def decode_header(data: bytes, *, inner: bool = False) -> Header:
    """The header of an envelope, its body left encoded.

    Raises:
        ValueError: Not an envelope of this version, or of a kind not allowed here.
        msgspec.DecodeError, msgspec.ValidationError: Not an envelope at all.
    """
    header = _header_decoder.decode(data)
    version, kind = header[0], header[1]
    if version != WIRE_VERSION or kind not in (INNER_KINDS if inner else TOP_KINDS):
        where = "inside a batch" if inner else "here"
        raise ValueError(f"unknown envelope version {version} or kind {kind} {where}")
    return header


def decode_batch(body: msgspec.Raw) -> list[msgspec.Raw]:
    """The envelopes of a batch's body."""
    return _batch_decoder.decode(body)


def decode_chunk(body: msgspec.Raw) -> memoryview:
    """The piece of encoding a fragment carries."""
    return _chunk_decoder.decode(body)


def encode_hello(name: str, incarnation: int) -> bytes:
    """The presence message of a node that (re)connected."""
    return _encoder.encode([WIRE_VERSION, "hello", name, incarnation])


def decode_hello(data: bytes) -> tuple[str, int]:
    """(name, incarnation) of a hello.

    Raises:
        ValueError: Not a hello of this version.
        msgspec.DecodeError, msgspec.ValidationError: Not a hello at all.
    """
    version, what, name, incarnation = _hello_decoder.decode(data)
    if version != WIRE_VERSION or what != "hello":
        raise ValueError(f"not a hello of version {WIRE_VERSION}: {version}, {what!r}")
    return name, incarnation


def encode_whois(name: str, incarnation: int) -> bytes:
    """A whois request, naming who asks (the handshake, ADR-0007)."""
    return _encoder.encode([WIRE_VERSION, name, incarnation])


def decode_whois(data: bytes) -> tuple[str, int]:
    """(name, incarnation) of who asks.

    Raises:
        ValueError: Not a whois of this version.
        msgspec.DecodeError, msgspec.ValidationError: Not a whois at all.
    """
    version, name, incarnation = _whois_decoder.decode(data)
    if version != WIRE_VERSION:
        raise ValueError(f"a whois of version {version}, not {WIRE_VERSION}")
    return name, incarnation


def encode_whois_answer(name: str, incarnation: int, *, running: bool) -> bytes:
    """A node's answer: its name, its incarnation, and whether it runs (or still starts)."""
    return _encoder.encode([WIRE_VERSION, name, incarnation, running])


def decode_whois_answer(data: bytes) -> tuple[str, int, bool]:
    """(name, incarnation, running) of an answer.

    Raises:
        ValueError: Not an answer of this version.
        msgspec.DecodeError, msgspec.ValidationError: Not an answer at all.
    """
    version, name, incarnation, running = _answer_decoder.decode(data)
    if version != WIRE_VERSION:
        raise ValueError(f"a whois answer of version {version}, not {WIRE_VERSION}")
    return name, incarnation, running
