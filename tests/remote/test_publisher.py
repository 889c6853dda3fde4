"""The publisher: envelopes go out in order, in batches that never exceed ``max_payload``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcount_starter.remote import envelope as wire
from refcount_starter.remote.publisher import Publisher

pytestmark = pytest.mark.anyio


class RecordingClient:
    """Stands in for nats-py's client: takes every publish at once and records it."""

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self.pending_data_size = 0
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, data: bytes) -> None:
        if len(data) > self.max_payload:
            raise AssertionError(f"a message of {len(data)} bytes over max_payload {self.max_payload}")
        self.published.append((subject, data))


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
