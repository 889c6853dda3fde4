"""The NATS transport: nodes in many OS processes and machines, through a NATS server.

Subjects (``P`` is ``subject_prefix``, ``rs`` by default):

* ``P.node.<name>.<incarnation>.s``: the envelopes for one node incarnation. The node reads
  them through one wildcard subscription (``P.node.<name>.<incarnation>.>``), so what one
  peer sends arrives in the order sent;
* ``P.whois.<name>``: request/reply, answered with the node's current incarnation;
* ``P.presence``: every node announces ``hello`` (name, incarnation) when it connects;
* the server's ``$SYS.ACCOUNT.<account>.DISCONNECT`` advisories, where the server's
  configuration lets the node account see them (see ADR-0007).

An envelope is the msgpack array ``[1, kind, node, incarnation, epoch, seq, body]``; the
session layer (``session.py``) accepts exactly the next one of each session and ends the
session on anything else. See ADR-0006 (transport), ADR-0007 (failure detection) and ADR-0008
(codec).

nats-py runs its reader, its flusher and each subscription in asyncio tasks of its own; so
does this transport (a heartbeat task, and a publishing task while nats-py must wait). All of them run on the node's event
loop and call the node's hooks from there: the node's state is touched by one thread only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import msgspec

from ..runtime.reasons import Crashed, NoConnection
from ..runtime.signals import (
    CallSignal,
    DemonitorSignal,
    DownSignal,
    ExitSignalSent,
    LinkSignal,
    MessageSignal,
    MonitorSignal,
    NamedMessageSignal,
    ReplySignal,
    Signal,
    UnlinkSignal,
    destination_node,
)
from ..runtime.transport import NodeHooks
from .codec import DecodeError, decode, encode
from .errors import NatsAuthenticationError, NatsConnectError, TransportNeedsAsyncio
from .session import Peer, PeerState

__all__ = ["NatsTransport", "TransportStatistics"]

_log = logging.getLogger("refcount_starter.remote.natstransport")

WIRE_VERSION = 1
KIND_SIGNAL = 0
KIND_HEARTBEAT = 1
KIND_BYE = 2
# Several envelopes for one node, in one NATS message: what queued up for the same subject
# during one loop iteration (a burst of sends, a process's exit signals) is packed together.
# The header's session fields are 0; each inner envelope carries its own. See ADR-0006.
KIND_BATCH = 3

_TOP_KINDS = (KIND_SIGNAL, KIND_HEARTBEAT, KIND_BYE, KIND_BATCH)

# What nats-py adds to a message in its buffer ("PUB <subject> <size>\r\n...\r\n"), at most.
_PUB_OVERHEAD = 32
# A publish not started yet (see _publish_slowly).
_NOT_STARTED: Any = object()

_SIGNAL_TYPES = (
    MessageSignal,
    NamedMessageSignal,
    LinkSignal,
    UnlinkSignal,
    ExitSignalSent,
    MonitorSignal,
    DemonitorSignal,
    DownSignal,
    CallSignal,
    ReplySignal,
)

# nats-py's default for connect(pending_size=...).
_DEFAULT_PENDING_SIZE = 2 * 1024 * 1024

_Header = tuple[int, int, str, int, int, int, msgspec.Raw]
_header_decoder = msgspec.msgpack.Decoder(_Header)
_batch_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_hello_decoder = msgspec.msgpack.Decoder(tuple[int, str, str, int])
_whois_decoder = msgspec.msgpack.Decoder(tuple[int, str, int])
_encoder = msgspec.msgpack.Encoder()
_NIL = _encoder.encode(None)


class _Advisory(msgspec.Struct):
    client: dict[str, Any] = {}


_advisory_decoder = msgspec.json.Decoder(_Advisory)


@attrs.frozen
class TransportStatistics:
    """Counters of one NATS transport, since it was attached.

    Args:
        sent: Envelopes handed to the NATS client (signals, heartbeats, goodbyes).
        received: Envelopes accepted and delivered or acted on.
        decode_errors: Inputs dropped because they could not be decoded (malformed bytes,
            unregistered types, invalid values), logged each time.
        stale: Envelopes dropped because their session was already over.
        sessions_ended: Sessions that ended (gaps, heartbeats missed, advisories, peer
            restarts, reconnects): each fired ``NoConnection`` across it.
        gaps: Sessions ended because an envelope was missing.
        undeliverable: Signals reported undeliverable to the node.
        peers_up: Peers with a live session now.
        batches: NATS messages that carried several envelopes (``sent`` counts each one).
    """

    sent: int
    received: int
    decode_errors: int
    stale: int
    sessions_ended: int
    gaps: int
    undeliverable: int
    peers_up: int
    batches: int = 0


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number > 0, got {value!r}")


class NatsTransport:
    """Connects a node to its peers through a NATS server (asyncio only).

    Example::

        transport = NatsTransport("nats://127.0.0.1:4222", token="s3cret")
        async with Node("a", transport=transport) as node:
            ...

    Args:
        servers: One NATS URL or several (a cluster).
        token: Token authentication.
        user: User name (with ``password``).
        password: Password.
        nkeys_seed: Path of an nkey seed file (needs the ``nkeys`` package).
        nkeys_seed_str: An nkey seed, as text.
        user_credentials: Path of a ``.creds`` file (JWT + nkey).
        tls: An ``ssl.SSLContext`` (with a client certificate for mutual TLS).
        tls_hostname: The server name to verify, if not the URL's host.
        heartbeat_interval: Seconds between heartbeats to each peer with a live session.
        heartbeat_misses: A peer heard from for ``heartbeat_interval * heartbeat_misses``
            seconds is declared down (its session ends: ``NoConnection``). The defaults (1 s,
            5) bound the detection of a hung peer to about 5 to 6 s; see ADR-0007.
        advisory_subject: Where the server's disconnect advisories are read, or ``None``.
        subject_prefix: The first token of every subject this transport uses.
        resolve_timeout: Seconds a ``whois`` (the first contact with a peer) may take.
        connect_timeout: Seconds one connection attempt may take.
        attach_timeout: Seconds the first connection may take, all attempts together.
        ping_interval: Seconds between the client's pings to its server; with
            ``max_outstanding_pings`` it bounds how soon the node notices that its own
            server hangs (and then ends every session).
        max_outstanding_pings: Unanswered pings before the client reconnects.
        reconnect_time_wait: Seconds between reconnection attempts.
        max_reconnect_attempts: Reconnection attempts per server; -1 for ever.
        pending_msgs_limit: Envelopes the client may hold unread before it drops some (a
            drop ends the sessions it hits; it is never silent).
        connect_options: Further keyword arguments for ``nats.connect``.

    Raises:
        ValueError: A timing parameter is not a positive number, or no server is given.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        nkeys_seed: str | None = None,
        nkeys_seed_str: str | None = None,
        user_credentials: str | None = None,
        tls: ssl.SSLContext | None = None,
        tls_hostname: str | None = None,
        heartbeat_interval: float = 1.0,
        heartbeat_misses: int = 5,
        advisory_subject: str | None = "$SYS.ACCOUNT.*.DISCONNECT",
        subject_prefix: str = "rs",
        resolve_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        attach_timeout: float = 10.0,
        ping_interval: float = 2.0,
        max_outstanding_pings: int = 2,
        reconnect_time_wait: float = 0.5,
        max_reconnect_attempts: int = -1,
        pending_msgs_limit: int = 512 * 1024,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        if not self._servers or not all(isinstance(url, str) and url for url in self._servers):
            raise ValueError(f"servers must be a NATS URL or a list of them, got {servers!r}")
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("resolve_timeout", resolve_timeout),
            ("connect_timeout", connect_timeout),
            ("attach_timeout", attach_timeout),
            ("ping_interval", ping_interval),
            ("reconnect_time_wait", reconnect_time_wait),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if type(heartbeat_misses) is not int or heartbeat_misses < 1:
            raise ValueError(f"heartbeat_misses must be an int >= 1, got {heartbeat_misses!r}")
        if (
            not isinstance(subject_prefix, str)
            or not subject_prefix
            or any(c in subject_prefix for c in " *>")
        ):
            raise ValueError(f"subject_prefix must be a subject token such as 'rs', got {subject_prefix!r}")
        self._auth: dict[str, Any] = {
            key: value
            for key, value in (
                ("token", token),
                ("user", user),
                ("password", password),
                ("nkeys_seed", nkeys_seed),
                ("nkeys_seed_str", nkeys_seed_str),
                ("user_credentials", user_credentials),
                ("tls", tls),
                ("tls_hostname", tls_hostname),
            )
            if value is not None
        }
        self.heartbeat_interval = float(heartbeat_interval)
        self.heartbeat_misses = heartbeat_misses
        self._advisory_subject = advisory_subject
        self._prefix = subject_prefix
        self._resolve_timeout = float(resolve_timeout)
        self._connect_timeout = float(connect_timeout)
        self._attach_timeout = float(attach_timeout)
        self._ping_interval = ping_interval
        self._max_outstanding_pings = max_outstanding_pings
        self._reconnect_time_wait = reconnect_time_wait
        self._max_reconnect_attempts = max_reconnect_attempts
        self._pending_msgs_limit = pending_msgs_limit
        self._connect_options = dict(connect_options or {})
        # nats-py's buffer limit: past it a publish flushes by force and waits (0: no limit).
        limit = self._connect_options.get("pending_size", _DEFAULT_PENDING_SIZE)
        self._pending_limit: float = limit if isinstance(limit, int) and limit > 0 else math.inf

        self._node: NodeHooks | None = None
        self._nc: Any = None
        self._peers: dict[str, Peer] = {}
        self._queue: deque[tuple[str, bytes, Signal | None, str]] = deque()
        # Invariant: _flushing is true from the moment an envelope is queued until the queue
        # is empty again (published by _flush, or by _publish_slowly when nats-py must wait).
        self._flushing = False
        self._slow: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._resolvers: set[asyncio.Task[None]] = set()
        self._refused: asyncio.Future[Any] | None = None
        self._closing = False
        self._connected = False
        self._connect_error: BaseException | None = None
        self._sent = 0
        self._batches = 0
        self._received = 0
        self._decode_errors = 0
        self._stale = 0
        self._sessions_ended = 0
        self._gaps = 0
        self._undeliverable = 0
        self._slow_consumer_drops = 0
        self._slow_consumer_logged = -1e9

    # -- public -----------------------------------------------------------------------------

    @property
    def detection_bound(self) -> float:
        """Seconds after which a silent peer is declared down (interval x misses)."""
        return self.heartbeat_interval * self.heartbeat_misses

    def statistics(self) -> TransportStatistics:
        """The transport's counters now."""
        return TransportStatistics(
            sent=self._sent,
            batches=self._batches,
            received=self._received,
            decode_errors=self._decode_errors,
            stale=self._stale,
            sessions_ended=self._sessions_ended,
            gaps=self._gaps,
            undeliverable=self._undeliverable,
            peers_up=sum(1 for peer in self._peers.values() if peer.state is PeerState.UP),
        )

    def node_subject(self, name: str, incarnation: int) -> str:
        """The subject a node incarnation reads its envelopes from.

        Args:
            name: The node's name.
            incarnation: The node's incarnation.
        """
        return f"{self._prefix}.node.{name}.{incarnation}.s"

    def peers(self) -> dict[str, int | None]:
        """The peers this node has heard of, with the incarnation it knows."""
        return {name: peer.incarnation for name, peer in self._peers.items()}

    # -- Transport: attach ------------------------------------------------------------------

    async def attach(self, node: NodeHooks) -> None:
        """Connect to the NATS server and start serving ``node``.

        Raises:
            TransportNeedsAsyncio: The node runs on trio.
            NatsAuthenticationError: The server refused the credentials.
            NatsConnectError: No server could be reached within ``attach_timeout``.
            RuntimeError: The transport is already attached.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise TransportNeedsAsyncio(
                "the NATS transport needs the asyncio event loop (nats-py is built on asyncio); "
                "this node runs on another one (trio?). Run it with anyio.run(main) or "
                "anyio.run(main, backend='asyncio'), or use the in-memory transport"
            ) from None
        if self._node is not None:
            raise RuntimeError("this NatsTransport is already attached to a node; make one per node")
        from nats.aio.client import Client

        self._flushing = False
        self._slow = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._node = node
        self._closing = False
        self._connect_error = None
        nc = Client()
        self._nc = nc
        options: dict[str, Any] = {
            "servers": self._servers,
            "name": f"{node.name}/{node.incarnation}",
            "no_echo": True,
            "connect_timeout": self._connect_timeout,
            "ping_interval": self._ping_interval,
            "max_outstanding_pings": self._max_outstanding_pings,
            "reconnect_time_wait": self._reconnect_time_wait,
            "max_reconnect_attempts": self._max_reconnect_attempts,
            "allow_reconnect": True,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            **self._auth,
            **self._connect_options,
        }
        connecting: asyncio.Future[Any] = asyncio.get_running_loop().create_task(nc.connect(**options))
        refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._refused = refused
        try:
            done, _ = await asyncio.wait(
                {connecting, refused}, timeout=self._attach_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if connecting in done:
                connecting.result()
            else:
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                if refused in done:
                    raise NatsAuthenticationError(self._safe_servers(), str(refused.result()))
                cause = self._connect_error or "no answer"
                raise NatsConnectError(
                    self._safe_servers(), f"{cause} (gave up after {self._attach_timeout} s)"
                )
            await self._subscribe(nc, node)
        except BaseException as exc:
            self._node = None
            self._closing = True
            await self._close_quietly(nc)
            if isinstance(exc, NatsConnectError) or not isinstance(exc, Exception):
                raise
            if _is_auth_error(exc):
                raise NatsAuthenticationError(self._safe_servers(), str(exc)) from exc
            raise NatsConnectError(self._safe_servers(), f"{type(exc).__name__}: {exc}") from exc
        finally:
            if not refused.done():
                refused.cancel()
        self._connected = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeats(), name="refcount_starter.nats.heartbeats")]
        await self._publish_hello()
        _log.info("node %s.%s attached to %s", node.name, node.incarnation, self._safe_servers())

    async def _subscribe(self, nc: Any, node: NodeHooks) -> None:
        prefix = self._prefix
        await nc.subscribe(
            f"{prefix}.node.{node.name}.{node.incarnation}.>",
            cb=self._on_envelope,
            pending_msgs_limit=self._pending_msgs_limit,
        )
        await nc.subscribe(f"{prefix}.whois.{node.name}", cb=self._on_whois)
        await nc.subscribe(f"{prefix}.presence", cb=self._on_presence)
        if self._advisory_subject:
            await nc.subscribe(self._advisory_subject, cb=self._on_advisory)
        await nc.flush(timeout=self._connect_timeout)

    def _safe_servers(self) -> list[str]:
        # Server URLs without any credentials they may carry.
        safe = []
        for url in self._servers:
            scheme, sep, rest = url.partition("://")
            safe.append(f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url.rpartition("@")[2])
        return safe

    async def _publish_hello(self) -> None:
        node = self._node
        if node is None or self._nc is None:
            return
        data = _encoder.encode([WIRE_VERSION, "hello", node.name, node.incarnation])
        try:
            await self._nc.publish(f"{self._prefix}.presence", data)
        except Exception as exc:
            _log.debug("could not announce %s: %r", node.name, exc)

    # -- Transport: detach ------------------------------------------------------------------

    async def detach(self) -> None:
        """Say goodbye to every peer with a live session, flush, and close the connection."""
        node, nc = self._node, self._nc
        if node is None:
            return
        for peer in self._peers.values():
            if peer.state is PeerState.UP:
                self._enqueue(peer, KIND_BYE, _NIL, None)
        self._closing = True
        try:
            with _suppress_all():
                await asyncio.wait_for(self._idle.wait(), timeout=self._connect_timeout)
            with _suppress_all():
                await nc.flush(timeout=self._connect_timeout)
        finally:
            tasks = [*self._tasks, *self._resolvers, *([self._slow] if self._slow else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks = []
            await self._close_quietly(nc)
            self._connected = False
            self._node = None
            self._nc = None
            for peer in self._peers.values():
                peer.end_session()
                for signal, _ in peer.pending:
                    self._undeliverable += 1
                    node.undeliverable(signal, NoConnection(peer.name))
                peer.pending.clear()
                peer.resolving = False
            _log.info("node %s.%s detached", node.name, node.incarnation)

    @staticmethod
    async def _close_quietly(nc: Any) -> None:
        with _suppress_all():
            await asyncio.wait_for(nc.close(), timeout=5.0)

    # -- Transport: send --------------------------------------------------------------------

    def send(self, signal: Signal) -> None:
        """Queue ``signal`` for its node; never blocks.

        Raises:
            TypeError: The signal holds a value of an unregistered type (for an exit reason
                the node sends by itself, the reason is replaced by a ``Crashed`` describing
                it instead, so that the link or monitor still fires).
        """
        node = self._node
        name = destination_node(signal)
        if node is None or self._closing:
            self._undeliverable += 1
            if node is not None:
                node.undeliverable(signal, NoConnection(name))
            return
        body = self._encode_signal(signal)
        peer = self._peers.get(name)
        if peer is None:
            peer = self._peers[name] = Peer(name)
        if peer.resolving:
            peer.pending.append((signal, body))
        elif peer.state is PeerState.UP and _target_incarnation(signal) <= (peer.incarnation or 0):
            self._enqueue(peer, KIND_SIGNAL, body, signal)
        else:
            peer.pending.append((signal, body))
            peer.resolving = True
            task = asyncio.get_running_loop().create_task(
                self._resolve(peer), name="refcount_starter.nats.whois"
            )
            self._resolvers.add(task)
            task.add_done_callback(self._resolvers.discard)

    def _encode_signal(self, signal: Signal) -> bytes:
        try:
            return encode(signal)
        except TypeError:
            if type(signal) is DownSignal or (type(signal) is ExitSignalSent and signal.linked):
                # Sent by the node as a process exits: the watcher must still learn of it.
                reason = signal.reason
                stand_in = Crashed(
                    "refcount_starter.remote.UnencodableReason",
                    f"the exit reason {reason!r:.500} cannot cross nodes: its type is not registered",
                )
                _log.warning("exit reason %r cannot be encoded; sending %r instead", reason, stand_in)
                return encode(attrs.evolve(signal, reason=stand_in))
            raise

    def _enqueue(self, peer: Peer, kind: int, body: bytes, signal: Signal | None) -> None:
        node = self._node
        assert node is not None and peer.incarnation is not None
        epoch, seq = peer.next_out()
        data = _encoder.encode(
            [WIRE_VERSION, kind, node.name, node.incarnation, epoch, seq, msgspec.Raw(body)]
        )
        self._queue.append((self.node_subject(peer.name, peer.incarnation), data, signal, peer.name))
        if not self._flushing:
            # The first envelope of a loop iteration goes out at once; what queues up behind
            # it during the iteration goes at its end, packed into batches.
            self._flushing = True
            self._idle.clear()
            asyncio.get_running_loop().call_soon(self._flush)
            self._publish_next()

    # Publishing. nats-py's publish is a coroutine that, unless its buffer is full or it is
    # reconnecting, only appends to its buffer and wakes its own flusher: it is driven to its
    # end at once, from the send that queued the envelope or from a callback at the end of
    # the loop iteration, with no task switch. Should it have to wait, a task finishes that
    # publish and then publishes the rest, in order.

    def _flush(self) -> None:
        if self._slow is not None:
            return  # a publish is waiting: its task publishes the rest, in order
        while self._queue:
            if not self._publish_next():
                return
        self._flushing = False
        self._idle.set()

    def _publish_next(self) -> bool:
        """Publish the next envelope (or batch) now; False if a task must finish it."""
        nc = self._nc
        if nc is None:
            self._queue.clear()  # detached meanwhile
            return True
        subject, data, signals, name = self._next_batch()
        publishing = nc.publish(subject, data)
        if nc.pending_data_size + len(subject) + len(data) + _PUB_OVERHEAD > self._pending_limit:
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
                asyncio.get_running_loop().call_soon(self._publish_failed, name, signals, exc)
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
                self._publish_failed(name, signals, exc)
            else:
                if waiting is _NOT_STARTED:
                    self._published(signals)
            finally:
                publishing.close()
            while self._queue and self._nc is not None:
                subject, data, signals, name = self._next_batch()
                try:
                    await self._nc.publish(subject, data)
                except Exception as exc:
                    self._publish_failed(name, signals, exc)
                else:
                    self._published(signals)
        finally:
            self._slow = None
            if self._queue and self._nc is not None and not self._closing:
                # Stopped early by something that is not an Exception: go on from the loop.
                asyncio.get_running_loop().call_soon(self._flush)
            else:
                self._queue.clear()
                self._flushing = False
                self._idle.set()

    def _next_batch(self) -> tuple[str, bytes, list[Signal | None], str]:
        """The next envelope, with the ones queued right behind it for the same node."""
        queue = self._queue
        subject, data, signal, name = queue.popleft()
        signals = [signal]
        if queue and queue[0][0] == subject:
            envelopes = [msgspec.Raw(data)]
            while queue and queue[0][0] == subject:
                _, more, signal, _ = queue.popleft()
                envelopes.append(msgspec.Raw(more))
                signals.append(signal)
            node = self._node
            assert node is not None
            data = _encoder.encode([WIRE_VERSION, KIND_BATCH, node.name, node.incarnation, 0, 0, envelopes])
        return subject, data, signals, name

    def _published(self, signals: list[Signal | None]) -> None:
        self._sent += len(signals)
        self._batches += len(signals) > 1

    def _publish_failed(self, name: str, signals: list[Signal | None], exc: Exception) -> None:
        # These envelopes are lost, and with them the order of the session.
        _log.warning("could not publish to %s: %r; its session ends", name, exc)
        peer = self._peers.get(name)
        if peer is not None:
            self._end(peer, f"publish failed: {exc!r}")
        for lost in signals:
            if lost is not None:
                self._report_undeliverable(lost)

    def _report_undeliverable(self, signal: Signal) -> None:
        node = self._node
        self._undeliverable += 1
        if node is not None:
            node.undeliverable(signal, NoConnection(destination_node(signal)))

    # -- resolving peers --------------------------------------------------------------------

    async def _resolve(self, peer: Peer) -> None:
        import nats.errors

        incarnation: int | None = None
        why = "no answer"
        for attempt in range(3):
            if self._closing or self._nc is None:
                why = "the transport is closing"
                break
            try:
                reply = await self._nc.request(
                    f"{self._prefix}.whois.{peer.name}", b"", timeout=self._resolve_timeout
                )
                version, name, incarnation = _whois_decoder.decode(reply.data)
                if name != peer.name or version != WIRE_VERSION:
                    incarnation = None
                    why = f"a wrong whois answer {reply.data!r:.100}"
                break
            except nats.errors.NoRespondersError:
                # Nobody reads the subject; a single 503 has been seen under load for a live
                # subscriber, so ask again before concluding.
                why = "no node of that name is connected"
                await asyncio.sleep(0.02 * (attempt + 1))
            except (msgspec.DecodeError, ValueError, TypeError) as exc:
                why = f"an undecodable whois answer: {exc}"
                break
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                break
        if not peer.resolving:
            return  # the transport detached meanwhile
        peer.resolving = False
        pending, peer.pending = peer.pending, []
        if incarnation is None:
            _log.debug("could not reach node %s: %s", peer.name, why)
            for signal, _ in pending:
                self._report_undeliverable(signal)
            return
        if peer.resolved(incarnation, time.monotonic()):
            self._peer_down(peer, f"it restarted as incarnation {incarnation}")
        self._flush_pending(peer, pending)

    def _flush_pending(self, peer: Peer, pending: list[tuple[Signal, bytes]]) -> None:
        for signal, body in pending:
            if peer.state is PeerState.UP and _target_incarnation(signal) <= (peer.incarnation or 0):
                self._enqueue(peer, KIND_SIGNAL, body, signal)
            else:
                self._report_undeliverable(signal)

    # -- receiving --------------------------------------------------------------------------

    async def _on_envelope(self, msg: Any) -> None:
        node = self._node
        if node is None:
            return
        self._on_data(node, msg.subject, msg.data, batched=False)

    def _on_data(self, node: NodeHooks, subject: str, data: bytes, *, batched: bool) -> None:
        try:
            version, kind, name, incarnation, epoch, seq, raw = _header_decoder.decode(data)
            kinds = (KIND_SIGNAL, KIND_HEARTBEAT, KIND_BYE) if batched else _TOP_KINDS
            if version != WIRE_VERSION or kind not in kinds:
                raise DecodeError(f"unknown envelope version {version} or kind {kind}")
            if name == node.name:
                raise DecodeError("an envelope that claims to come from this node itself")
            if kind == KIND_BATCH:
                envelopes = _batch_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, DecodeError) as exc:
            self._decode_errors += 1
            _log.warning(
                "node %s dropped undecodable input on %s (%d bytes): %s",
                node.name,
                subject,
                len(data),
                exc,
            )
            return
        if kind == KIND_BATCH:
            for envelope in envelopes:
                if self._node is not node:
                    return  # detached meanwhile
                self._on_data(node, subject, bytes(envelope), batched=True)
            return
        peer = self._peers.get(name)
        if peer is None:
            peer = self._peers[name] = Peer(name)
        verdict = peer.received(incarnation, epoch, seq, time.monotonic())
        if verdict.ended:
            self._session_ended(peer, "it ended our session (new epoch or incarnation)")
        if verdict.gap:
            self._gaps += 1
            self._sessions_ended += 0 if verdict.ended else 1
        if verdict.restart:
            self._enqueue(peer, KIND_HEARTBEAT, _NIL, None)
        if not verdict.accept:
            self._stale += 1
            if peer.resolving and peer.state is PeerState.UP:
                self._resolved_by_contact(peer)
            return
        self._received += 1
        if peer.resolving and peer.state is PeerState.UP:
            self._resolved_by_contact(peer)
        if kind == KIND_SIGNAL:
            try:
                signal = decode(raw)
                if type(signal) not in _SIGNAL_TYPES:
                    raise DecodeError(f"an envelope body must be a signal, got {type(signal).__name__}")
            except DecodeError as exc:
                # The peer is alive but speaks a type this node does not know: the signal is
                # lost, so the session must end (nothing is lost silently). See ADR-0008.
                self._decode_errors += 1
                _log.error(
                    "node %s could not decode a signal from %s.%s: %s; the session ends",
                    node.name,
                    name,
                    incarnation,
                    exc,
                )
                self._end(peer, "an undecodable signal")
                peer.start_session(time.monotonic())
                self._enqueue(peer, KIND_HEARTBEAT, _NIL, None)
                return
            try:
                node.deliver(signal)
            except Exception:
                _log.exception("node %s failed to apply %r", node.name, signal)
        elif kind == KIND_BYE:
            self._end(peer, "it is leaving")

    def _resolved_by_contact(self, peer: Peer) -> None:
        # The peer spoke first while a whois was in flight: the session is live, so what
        # waited for the whois goes now, ahead of anything sent later (unless some of it is
        # for a later incarnation than the one that spoke: then the whois decides).
        known = peer.incarnation or 0
        if any(_target_incarnation(signal) > known for signal, _ in peer.pending):
            return
        peer.resolving = False
        pending, peer.pending = peer.pending, []
        self._flush_pending(peer, pending)

    async def _on_whois(self, msg: Any) -> None:
        node = self._node
        if node is None or not msg.reply:
            return
        with _suppress_all():
            await msg.respond(_encoder.encode([WIRE_VERSION, node.name, node.incarnation]))

    async def _on_presence(self, msg: Any) -> None:
        node = self._node
        if node is None:
            return
        try:
            version, what, name, incarnation = _hello_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._decode_errors += 1
            _log.warning("node %s dropped an undecodable presence message: %s", node.name, exc)
            return
        if version != WIRE_VERSION or what != "hello":
            return
        if name == node.name:
            if incarnation != node.incarnation:
                _log.error(
                    "another node named %r (incarnation %s) joined; node names must be unique",
                    name,
                    incarnation,
                )
            return
        peer = self._peers.get(name)
        if peer is not None and peer.learn_incarnation(incarnation):
            self._peer_down(peer, f"it restarted as incarnation {incarnation}")

    async def _on_advisory(self, msg: Any) -> None:
        try:
            client = _advisory_decoder.decode(msg.data).client
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        name, _, incarnation = str(client.get("name", "")).rpartition("/")
        peer = self._peers.get(name)
        if peer is None or not incarnation.isdigit():
            return
        if peer.disconnected(int(incarnation)):
            self._peer_down(peer, f"the server reports its connection closed ({client.get('reason', '')})")

    # -- failure detection ------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        interval = self.heartbeat_interval
        bound = self.detection_bound
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for peer in list(self._peers.values()):
                if peer.state is not PeerState.UP:
                    continue
                if peer.expired(now, bound):
                    self._end(peer, f"nothing heard for {now - peer.last_heard:.1f} s")
                else:
                    self._enqueue(peer, KIND_HEARTBEAT, _NIL, None)

    def _end(self, peer: Peer, why: str) -> None:
        if peer.end_session():
            self._peer_down(peer, why)

    def _session_ended(self, peer: Peer, why: str) -> None:
        self._peer_down(peer, why)

    def _peer_down(self, peer: Peer, why: str) -> None:
        node = self._node
        self._sessions_ended += 1
        if node is None:
            return
        _log.info("node %s: session with %s.%s ended: %s", node.name, peer.name, peer.incarnation, why)
        try:
            node.peer_down(peer.name)
        except Exception:
            _log.exception("node %s failed to apply peer_down(%s)", node.name, peer.name)

    def _end_all(self, why: str) -> None:
        for peer in list(self._peers.values()):
            self._end(peer, why)

    # -- the connection's callbacks ---------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self._connect_error = exc
        if not self._connected and _is_auth_error(exc):
            refused = self._refused
            if refused is not None and not refused.done():
                refused.set_result(exc)
            return
        if type(exc).__name__ == "SlowConsumerError":
            # One per dropped message: say it once a second at most. The gap it leaves ends
            # the session with the sender (it is never silent).
            self._slow_consumer_drops += 1
            now = time.monotonic()
            if now - self._slow_consumer_logged < 1.0:
                return
            self._slow_consumer_logged = now
            _log.warning("this node reads too slowly: %d messages dropped so far", self._slow_consumer_drops)
            return
        _log.warning("NATS client error: %r", exc)

    async def _on_disconnected(self) -> None:
        if self._connected and not self._closing:
            # What was sent to this node meanwhile is lost: every session is over.
            _log.warning("node lost its NATS connection; every session ends")
            self._end_all("this node lost its connection to the server")

    async def _on_reconnected(self) -> None:
        if self._closing:
            return
        _log.warning("node reconnected to NATS; sessions start afresh")
        self._end_all("this node reconnected to the server")
        await self._publish_hello()

    async def _on_closed(self) -> None:
        if self._connected and not self._closing:
            _log.error("the NATS connection closed for good; every session ends")
            self._closing = True
            self._end_all("this node's connection closed")


def _target_incarnation(signal: Signal) -> int:
    # The incarnation a signal is addressed to: a pid's, or 0 (any) for a registered name.
    if type(signal) is NamedMessageSignal:
        return 0
    return signal.to.incarnation  # type: ignore[union-attr]


def _is_auth_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        "authorization violation" in text
        or "authentication" in text
        or type(exc).__name__
        in (
            "AuthorizationError",
            "InvalidUserCredentialsError",
        )
    )


class _suppress_all:
    """Swallow any exception (not cancellation) in best-effort clean-up."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, Exception)
