"""The publisher: envelopes go out in order, in batches that never exceed ``max_payload``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcount_starter.remote import envelope as wire
from refcount_starter.remote.publisher import Publisher, header_size

pytestmark = pytest.mark.anyio


class RecordingClient:
    """Stands in for nats-py's client: takes every publish at once and records it."""

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self.pending_data_size = 0
        self.published: list[tuple[str, bytes]] = []
        self.headers: list[dict[str, str] | None] = []

    async def publish(self, subject: str, data: bytes, **options: Any) -> None:
        headers = options.pop("headers", None)
        assert options == {}
        assert headers is None or headers, "empty headers: an untraced message must be a plain PUB"
        size = len(data) + (0 if headers is None else header_size(headers))
        if size > self.max_payload:
            raise AssertionError(f"a message of {size} bytes over max_payload {self.max_payload}")
        self.published.append((subject, data))
        self.headers.append(headers)


def unpack(data: bytes) -> list[bytes]:
    """The envelopes a published message carries (one, or a batch's)."""
    header = wire.decode_header(data)
    if header[1] == wire.KIND_BATCH:
        return [bytes(raw) for raw in wire.decode_batch(header[6])]
    return [data]


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=300),
    max_payload=st.integers(min_value=1_000, max_value=20_000),
)
async def test_batches_keep_the_order_and_never_exceed_max_payload(
    sizes: list[int], max_payload: int
) -> None:
    """Whatever is queued in one go, each message fits ``max_payload``, and the envelopes
    come out in the order queued."""
    client = RecordingClient(max_payload)
    sent: list[Any] = []
    failed: list[Any] = []
    publisher = Publisher(
        client,
        lambda envelopes: wire.encode_batch("a", 1, envelopes),
        sent.append,
        lambda *args: failed.append(args),
        0,
        "a",
    )
    queued = [
        wire.encode_envelope(
            wire.KIND_SIGNAL, "a", 1, 1, seq, msgspec.Raw(msgspec.msgpack.encode(b"x" * size))
        )
        for seq, size in enumerate(sizes)
    ]
    for seq, data in enumerate(queued):
        publisher.enqueue("rs.node.b.2.a", data, None, "b")
        assert seq == 0 or client.published  # the first goes out at once, from the send
    await publisher.idle.wait()
    assert failed == []
    assert [envelope for _, data in client.published for envelope in unpack(data)] == queued
    assert sum(len(signals) for signals in sent) == len(queued)
    if sum(len(d) for d in queued) > max_payload:
        assert len(client.published) > 1


@settings(max_examples=30, deadline=None)
@given(
    queued=st.lists(
        st.tuples(st.integers(min_value=0, max_value=900), st.booleans(), st.sampled_from(["b", "c"])),
        min_size=1,
        max_size=200,
    ),
    max_payload=st.integers(min_value=1_200, max_value=20_000),
)
async def test_an_envelope_with_headers_goes_alone_with_them_in_its_place(
    queued: list[tuple[int, bool, str]], max_payload: int
) -> None:
    """Among envelopes for two nodes, each one queued with headers is published in a message of
    its own, with those headers, and every envelope keeps its place in the order queued."""
    client = RecordingClient(max_payload)
    publisher = Publisher(
        client, lambda envelopes: wire.encode_batch("a", 1, envelopes), _ignore, _ignore, 0, "a"
    )
    expected: list[tuple[str, bytes, dict[str, str] | None]] = []
    for seq, (size, traced, to) in enumerate(queued):
        body = msgspec.Raw(msgspec.msgpack.encode(b"x" * size))
        data = wire.encode_envelope(wire.KIND_SIGNAL, "a", 1, 1, seq, body)
        headers = {"traceparent": f"00-{seq + 1:032x}-{seq + 1:016x}-01"} if traced else None
        publisher.enqueue(f"rs.node.{to}.2.a", data, None, to, headers)
        expected.append((to, data, headers))
    await publisher.idle.wait()
    got: list[tuple[str, bytes, dict[str, str] | None]] = []
    for (subject, data), headers in zip(client.published, client.headers, strict=True):
        envelopes = unpack(data)
        assert headers is None or len(envelopes) == 1, "an envelope with headers shared a message"
        got.extend((subject.split(".")[2], envelope, headers) for envelope in envelopes)
    assert got == expected


def _ignore(*args: Any) -> None:
    pass
