"""Publishing envelopes through nats-py without blocking the sender: the one module that
relies on nats-py's internals (how its ``publish`` coroutine behaves, its buffer size).

nats-py's ``publish`` is a coroutine that, unless its buffer is full or it is reconnecting,
only appends to its buffer and wakes its own flusher: it is driven to its end at once, from
the ``send`` that queued the envelope or from a callback at the end of the loop iteration,
with no task switch. Should it have to wait, a task finishes that publish and then
publishes the rest, in order. What queues up for one node during a loop iteration is packed
into batches that never exceed the connection's ``max_payload``. An envelope with headers (a
trace context) goes in a message of its own, in its place in the queue. See ADR-0006.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..runtime.signals import Signal
from .envelope import BATCH_OVERHEAD

__all__ = ["DEFAULT_PENDING_SIZE", "Headers", "Publisher", "header_size"]

# nats-py's default for connect(pending_size=...).
DEFAULT_PENDING_SIZE = 2 * 1024 * 1024
# What nats-py adds to a message in its buffer ("HPUB <subject> <sizes>\r\n...\r\n"), at most.
_PUB_OVERHEAD = 32
# nats-py's header block: "NATS/1.0\r\n", then "<name>: <value>\r\n" each, then "\r\n".
_HEADER_LINE = len(b"NATS/1.0\r\n")
_HEADER_END = len(b"\r\n")
_HEADER_FIELD = len(b": \r\n")
# What a batch adds to each envelope it holds (a bin or array header inside a list), at most.
_ITEM_OVERHEAD = 5
# A publish not started yet (see _publish_slowly).
_NOT_STARTED: Any = object()

#: A NATS message's headers, by name.
Headers = Mapping[str, str]
#: One queued envelope: its subject, its bytes, the signal it carries (or None), the peer,
#: its headers (or None: it may share a batch).
Entry = tuple[str, bytes, Signal | None, str, Headers | None]
#: Packs envelopes for one node into one batch message.
Pack = Callable[[list[bytes]], bytes]
#: Told that these signals (None for a heartbeat or a goodbye) went out, in one message.
Published = Callable[[list[Signal | None]], None]
#: Told that publishing these signals, for this peer, failed.
Failed = Callable[[str, list[Signal | None], Exception], None]


def header_size(headers: Headers) -> int:
    """The bytes ``headers`` take in a NATS message (the server counts them in its
    ``max_payload``), as nats-py writes them."""
    fields = sum(len(name.encode()) + len(value.encode()) + _HEADER_FIELD for name, value in headers.items())
    return _HEADER_LINE + fields + _HEADER_END


def _publish(nc: Any, subject: str, data: bytes, headers: Headers | None) -> Any:
    """nats-py's publish coroutine for one message; headers only when there are some, so that
    an untraced message stays a plain PUB."""
    if headers is None:
        return nc.publish(subject, data)
    return nc.publish(subject, data, headers=dict(headers))


class Publisher:
    """The queue of envelopes of one connection, published in order, in batches.

    Args:
        nc: The nats-py client (connected).
        pack: Packs several envelopes for one node into a batch.
        published: Called after each message went to nats-py's buffer.
        failed: Called (from the loop, never inside ``enqueue``) when a publish failed.
        pending_size: nats-py's ``pending_size`` (0: no limit).
        sender: The node's name (it is in every batch's header).
    """

    def __init__(
        self, nc: Any, pack: Pack, published: Published, failed: Failed, pending_size: int, sender: str
    ) -> None:
        self._nc: Any = nc
        self._batch_overhead = BATCH_OVERHEAD + len(sender.encode())
        self._pack = pack
        self._published = published
        self._failed = failed
        # nats-py's buffer limit: past it a publish flushes by force and waits.
        self._pending_limit: float = pending_size if pending_size > 0 else math.inf
        self._queue: deque[Entry] = deque()
        # Invariant: _flushing is true from the moment an envelope is queued until the queue
        # is empty again (published by _flush, or by _publish_slowly when nats-py must wait).
        self._flushing = False
        self._slow: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (from its INFO; it may change on reconnect)."""
        max_payload: int = self._nc.max_payload
        return max_payload

    def enqueue(
        self, subject: str, data: bytes, signal: Signal | None, name: str, headers: Headers | None = None
    ) -> None:
        """Queue one envelope (at most ``max_payload`` bytes with its headers); the first of a
        loop iteration goes out at once, what queues up behind it at the iteration's end, in
        batches. An envelope with ``headers`` is never batched: it goes alone, with them,
        after what was queued before it and before what is queued after it."""
        self._queue.append((subject, data, signal, name, headers))
        if not self._flushing:
            self._flushing = True
            self.idle.clear()
            asyncio.get_running_loop().call_soon(self._flush)
            self._publish_next()

    async def close(self) -> None:
        """Stop publishing: drop what is queued, cancel a waiting publish."""
        self._nc = None
        self._queue.clear()
        slow, self._slow = self._slow, None
        if slow is not None:
            slow.cancel()
            await asyncio.gather(slow, return_exceptions=True)
        self._flushing = False
        self.idle.set()

    def _flush(self) -> None:
        if self._slow is not None:
            return  # a publish is waiting: its task publishes the rest, in order
        while self._queue:
            if not self._publish_next():
                return
        self._flushing = False
        self.idle.set()

    def _publish_next(self) -> bool:
        """Publish the next envelope (or batch) now; False if a task must finish it."""
        nc = self._nc
        if nc is None:
            self._queue.clear()  # closed meanwhile
            return True
        subject, data, signals, name, headers = self._next_batch(nc.max_payload)
        publishing = _publish(nc, subject, data, headers)
        size = len(subject) + len(data) + _PUB_OVERHEAD + (0 if headers is None else header_size(headers))
        if nc.pending_data_size + size > self._pending_limit:
            # nats-py's buffer would overflow: it flushes by force and waits, with a timeout
            # that needs a task of its own. A task publishes this one and then the rest.
            waiting: Any = _NOT_STARTED
        else:
            try:
                waiting = publishing.send(None)
            except StopIteration:
                self._published(signals)
                return True
            except Exception as exc:
                # Handled from the loop, not inside the send that queued the envelope.
                asyncio.get_running_loop().call_soon(self._failed, name, signals, exc)
                return True
        self._slow = asyncio.get_running_loop().create_task(
            self._publish_slowly(publishing, waiting, signals, name),
            name="refcount_starter.nats.publish",
        )
        return False

    async def _publish_slowly(
        self, publishing: Any, waiting: Any, signals: list[Signal | None], name: str
    ) -> None:
        try:
            try:
                if waiting is _NOT_STARTED:
                    await publishing
                else:
                    while True:
                        # Wait for what the publish waits for, then let it go on (it reads
                        # the outcome itself, as it would under a task).
                        if waiting is None:
                            await asyncio.sleep(0)
                        else:
                            await asyncio.wait((waiting,))
                        waiting = publishing.send(None)
            except StopIteration:
                self._published(signals)
            except Exception as exc:
                self._failed(name, signals, exc)
            else:
                if waiting is _NOT_STARTED:
                    self._published(signals)
            finally:
                publishing.close()
            while self._queue and self._nc is not None:
                subject, data, signals, name, headers = self._next_batch(self._nc.max_payload)
                try:
                    await _publish(self._nc, subject, data, headers)
                except Exception as exc:
                    self._failed(name, signals, exc)
                else:
                    self._published(signals)
        finally:
            self._slow = None
            if self._queue and self._nc is not None:
                # Stopped early by something that is not an Exception: go on from the loop.
                asyncio.get_running_loop().call_soon(self._flush)
            else:
                self._queue.clear()
                self._flushing = False
                self.idle.set()

    def _next_batch(self, max_payload: int) -> tuple[str, bytes, list[Signal | None], str, Headers | None]:
        """The next envelope, with the ones queued right behind it for the same node, as
        many as fit in ``max_payload``; an envelope with headers alone."""
        queue = self._queue
        subject, data, signal, name, headers = queue.popleft()
        signals = [signal]
        if headers is not None:
            return subject, data, signals, name, headers
        room = max_payload - self._batch_overhead
        size = len(data) + _ITEM_OVERHEAD
        # An envelope joins the batch if it is for the same node and has no headers.
        if (
            queue
            and queue[0][0] == subject
            and queue[0][4] is None
            and size + len(queue[0][1]) + _ITEM_OVERHEAD <= room
        ):
            envelopes = [data]
            while queue and queue[0][0] == subject and queue[0][4] is None:
                size += len(queue[0][1]) + _ITEM_OVERHEAD
                if size > room:
                    break
                _, more, signal, _, _ = queue.popleft()
                envelopes.append(more)
                signals.append(signal)
            data = self._pack(envelopes)
        return subject, data, signals, name, None
