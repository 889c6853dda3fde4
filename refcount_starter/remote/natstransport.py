"""The NATS transport: nodes in many OS processes and machines, through a NATS server.

Subjects (``P`` is ``subject_prefix``, ``rs`` by default; every subject a node publishes on
ends with its own name, so that the server can hold each node to its own, see
``envelope.Subjects`` and docs/nats.md):

* ``P.node.<to>.<incarnation>.<from>``: the envelopes for one node incarnation. The node
  reads them through one wildcard subscription, so what one peer sends arrives in the order
  sent;
* ``P.whois.<name>.<from>``: request/reply, answered with the node's current incarnation;
  the request names who asks, and is the handshake that lets it talk to the node;
* ``P.presence.<from>``: every node announces ``hello`` (name, incarnation) when it connects;
* the server's ``$SYS.ACCOUNT.<account>.DISCONNECT`` advisories, where the server's
  configuration lets the node account see them (see ADR-0007).

The framing is in ``envelope.py``, the sessions (order, epochs, fragments) in ``session.py``,
the publishing through nats-py in ``publisher.py``, the options in ``natsoptions.py``, the
connection in ``connection.py`` and the claim of the node's name in ``naming.py``; this
module wires them together: sending, receiving, peers and failure detection.

While ``tracing`` is instrumented, a call, an exit signal or a ``Down`` that continues a
trace travels in a NATS message of its own whose headers carry the trace context
(``tracing.signal_headers``); the receiver hands them to ``tracing.adopt_signal_headers``
before it delivers the signal. Untraced, nothing changes on the wire.
See ADR-0006 (transport), ADR-0007 (failure detection), ADR-0008 (codec) and ADR-0012
(unique names).

nats-py runs its reader, its flusher and each subscription in asyncio tasks of its own; so
does this transport (a heartbeat task, whois tasks, and a publishing task while nats-py
must wait). All of them run on the node's event loop and call the node's hooks from there:
the node's state is touched by one thread only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import attrs
import msgspec

from .. import tracing
from ..runtime.reasons import NoConnection
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
from . import envelope as wire
from .codec import DecodeError, decode, encode, stand_in
from .connection import close_quietly, connect, safe_servers, suppress_all
from .errors import (
    MessageTooLarge,
    NatsAuthenticationError,
    NatsConnectError,
    NodeNameTaken,
    TransportNeedsAsyncio,
)
from .naming import NameClaim
from .natsoptions import NatsOptions
from .origin import forgery
from .publisher import DEFAULT_PENDING_SIZE, Headers, Publisher, header_size
from .session import FragmentError, Peer, PeerState, Reassembly

__all__ = ["NatsTransport", "TransportStatistics"]

_log = logging.getLogger("refcount_starter.remote.natstransport")

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

#: Seconds between two checks of one peer's incarnation prompted by others' claims.
_VERIFY_COOLDOWN = 0.1
#: The largest piece of a fragmented signal. Smaller than the usual max_payload (1 MB): the
#: server forwards, and the receiver reads, the first pieces while the next are still being
#: written (measured: about 10 % faster for 8 MiB than pieces of 1 MB).
_FRAGMENT_SIZE = 512 * 1024
#: The most handshakes waiting for a check to answer; beyond, they are answered at once.
_MAX_WAITING_ANSWERS = 256
#: The most undecodable inputs logged a line each in a second; the rest are counted, and
#: told in one line when the next second's first one comes.
_MAX_UNDECODABLE_LOGS = 10
#: What decoding hostile input from the network may raise. RecursionError: msgspec skips a
#: field it keeps raw (an envelope's body, a batch's envelopes) by walking it, so a few
#: kilobytes nested ten thousand levels deep exhaust the stack.
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError)


class _LogBudget:
    """At most ``per_second`` log lines of one kind a second (a window opens with the first
    line after the last window's second is over)."""

    __slots__ = ("_per_second", "_unlogged", "_used", "_window")

    def __init__(self, per_second: int) -> None:
        self._per_second = per_second
        self._window = -1e9
        self._used = 0
        self._unlogged = 0

    def take(self) -> tuple[bool, int]:
        """Whether a line may be logged now, and how many were not logged in the window that
        just closed (non-zero only once, when a new window opens)."""
        unlogged = 0
        now = time.monotonic()
        if now - self._window >= 1.0:
            unlogged = self._unlogged
            self._window = now
            self._used = 0
            self._unlogged = 0
        if self._used >= self._per_second:
            self._unlogged += 1
            return False, unlogged
        self._used += 1
        return True, unlogged


class _Advisory(msgspec.Struct):
    client: dict[str, Any] = {}


_advisory_decoder = msgspec.json.Decoder(_Advisory)


@attrs.frozen
class TransportStatistics:
    """Counters of one NATS transport, since it was attached.

    Args:
        sent: Envelopes handed to the NATS client (signals, heartbeats, goodbyes, fragments).
        received: Envelopes accepted and delivered or acted on.
        decode_errors: Inputs dropped because they could not be decoded (malformed bytes,
            values nested too deep, unregistered types, invalid values; in envelopes,
            handshakes, hellos and disconnect advisories), logged (a line each, at most ten
            a second; the rest in one line).
        stale: Envelopes dropped because their session was already over.
        sessions_ended: Sessions that ended (gaps, heartbeats missed, advisories, peer
            restarts, reconnects): each fired ``NoConnection`` across it.
        gaps: Sessions ended because an envelope was missing.
        undeliverable: Signals reported undeliverable to the node.
        peers_up: Peers with a live session now.
        batches: NATS messages that carried several envelopes (``sent`` counts each one).
        fragments: Envelopes sent as pieces of a signal larger than ``max_payload``.
        strangers: Envelopes from nodes without a handshake, and handshakes refused because
            the peer table was full: dropped, never answered.
        forged: Signals dropped because they spoke for a process of another node than the
            one that sent them, or were for another node (see ``origin.forgery``); logged
            at most once a second.
        verifications: Checks of a claimed incarnation done (a whois to the peer itself).
        peers: Peers known now (with or without a session).
        reconnects: Times the client reconnected (to the same server or another one).
        reassembling: Bytes held now in unfinished fragmented signals, from all peers
            (at most ``NatsOptions.reassembly_limit``).
        reassembly_drops: Unfinished fragmented signals dropped to keep within that limit
            (the oldest first); each ended its session.
        server: The server the client is connected to now (its URL without credentials),
            or "" while it is not connected.
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
    fragments: int = 0
    strangers: int = 0
    forged: int = 0
    verifications: int = 0
    peers: int = 0
    reconnects: int = 0
    reassembling: int = 0
    reassembly_drops: int = 0
    server: str = ""


class NatsTransport:
    """Connects a node to its peers through a NATS server (asyncio only).

    Example::

        transport = NatsTransport("nats://127.0.0.1:4222", token="s3cret")
        async with Node("a", transport=transport) as node:
            ...

    Args:
        servers: One NATS URL or several (a cluster), or a whole ``NatsOptions``.
        options: The other fields of ``NatsOptions`` (not with a ``NatsOptions``).

    Raises:
        ValueError: An option is invalid (see ``NatsOptions``).
        TypeError: ``NatsOptions`` and further options together.
    """

    def __init__(self, servers: str | Sequence[str] | NatsOptions, **options: Any) -> None:
        if isinstance(servers, NatsOptions):
            if options:
                raise TypeError(f"give either a NatsOptions or keyword options, not both: {sorted(options)}")
            self.options = servers
        else:
            self.options = NatsOptions(servers=servers, **options)
        opts = self.options
        self.heartbeat_interval = opts.heartbeat_interval
        self.heartbeat_misses = opts.heartbeat_misses
        self._servers = list(opts.servers)
        self._subjects = wire.Subjects(opts.subject_prefix)
        pending = opts.connect_options.get("pending_size", DEFAULT_PENDING_SIZE)
        self._pending_size = pending if isinstance(pending, int) else DEFAULT_PENDING_SIZE

        self._node: NodeHooks | None = None
        self._nc: Any = None
        self._publisher: Publisher | None = None
        self._name_size = 0
        self._peers: dict[str, Peer] = {}
        self._reassembly = Reassembly(opts.reassembly_limit)
        self._reassembly_drops = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._resolvers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._connected = False
        self._claim = NameClaim("", 0)
        #: Set when the check of a peer's incarnation (by name) is over.
        self._checks: dict[str, asyncio.Event] = {}
        self._waiting_answers = 0
        #: The server's permission violations heard while attaching.
        self._violations: list[str] = []
        self._sent = 0
        self._batches = 0
        self._fragments = 0
        self._received = 0
        self._decode_errors = 0
        self._stale = 0
        self._sessions_ended = 0
        self._gaps = 0
        self._undeliverable = 0
        self._strangers = 0
        self._forged = 0
        # What the network can make happen as fast as it likes is logged within a budget.
        self._forged_lines = _LogBudget(1)
        self._undecodable_lines = _LogBudget(_MAX_UNDECODABLE_LOGS)
        self._slow_consumer_lines = _LogBudget(1)
        self._verifications = 0
        self._slow_consumer_drops = 0
        self._reconnects = 0
        self._disconnected_at = 0.0

    # -- public -----------------------------------------------------------------------------

    @property
    def detection_bound(self) -> float:
        """Seconds after which a silent peer is declared down (interval x misses)."""
        return self.options.detection_bound

    def statistics(self) -> TransportStatistics:
        """The transport's counters now."""
        return TransportStatistics(
            sent=self._sent,
            batches=self._batches,
            fragments=self._fragments,
            received=self._received,
            decode_errors=self._decode_errors,
            stale=self._stale,
            sessions_ended=self._sessions_ended,
            gaps=self._gaps,
            undeliverable=self._undeliverable,
            peers_up=sum(1 for peer in self._peers.values() if peer.state is PeerState.UP),
            strangers=self._strangers,
            forged=self._forged,
            verifications=self._verifications,
            peers=len(self._peers),
            reconnects=self._reconnects,
            reassembling=self._reassembly.held,
            reassembly_drops=self._reassembly_drops,
            server=self.connected_server(),
        )

    def connected_server(self) -> str:
        """The URL (without credentials) of the server the client is connected to now, or
        "" while it is not connected."""
        nc = self._nc
        if nc is None or not nc.is_connected or nc.connected_url is None:
            return ""
        url = nc.connected_url
        return f"{url.scheme}://{url.hostname}:{url.port}"

    def node_subject(self, name: str, incarnation: int, sender: str) -> str:
        """The subject ``sender`` publishes on for the node ``name`` in ``incarnation``."""
        return self._subjects.node(name, incarnation, sender)

    def peers(self) -> dict[str, int | None]:
        """The peers this node knows, with the incarnation it knows."""
        return {name: peer.incarnation for name, peer in self._peers.items()}

    # -- Transport: attach ------------------------------------------------------------------

    async def attach(self, node: NodeHooks) -> None:
        """Connect to the NATS server, claim the node's name and start serving ``node``.

        Raises:
            TransportNeedsAsyncio: The node runs on trio.
            NatsAuthenticationError: The server refused the credentials, or they may not use
                this node's subjects.
            NatsConnectError: No server could be reached within ``attach_timeout``.
            NodeNameTaken: A live node already has this name (ADR-0012).
            RuntimeError: The transport is already attached.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise TransportNeedsAsyncio(
                "the NATS transport needs the asyncio event loop (nats-py is built on asyncio); "
                "this node runs on another one (trio?). Run it with anyio.run(main) or "
                "anyio.run(main, backend='asyncio'), or use the in-memory transport"
            ) from None
        if self._node is not None:
            raise RuntimeError("this NatsTransport is already attached to a node; make one per node")
        self._node = node
        self._name_size = len(node.name.encode())
        self._closing = False
        self._violations = []
        self._claim = NameClaim(node.name, node.incarnation)
        callbacks = (self._on_error, self._on_disconnected, self._on_reconnected, self._on_closed)
        try:
            nc = await connect(self.options, node.name, node.incarnation, callbacks)
        except BaseException:
            self._node = None
            raise
        self._nc = nc
        try:
            self._publisher = Publisher(
                nc, self._pack, self._published, self._publish_failed, self._pending_size, node.name
            )
            await self._subscribe(nc, node)
            if self._violations:
                # The server takes a refused subscription without closing the connection;
                # a node that cannot read its own subjects must not start.
                raise NatsAuthenticationError(
                    safe_servers(self._servers),
                    f"this NATS user may not use the subjects of node {node.name!r}: "
                    f"{self._violations[0]} (see docs/nats.md for a node's permissions)",
                )
            await self._claim.claim(nc, self._subjects, self.options.resolve_timeout)
        except BaseException as exc:
            self._node = None
            self._closing = True
            if self._publisher is not None:
                await self._publisher.close()
                self._publisher = None
            await close_quietly(nc)
            self._nc = None
            if isinstance(exc, NatsConnectError | NodeNameTaken) or not isinstance(exc, Exception):
                raise
            raise NatsConnectError(safe_servers(self._servers), f"{type(exc).__name__}: {exc}") from exc
        self._connected = True
        self._tasks = [loop.create_task(self._heartbeats(), name="refcount_starter.nats.heartbeats")]
        await self._publish_hello()
        _log.info("node %s.%s attached to %s", node.name, node.incarnation, safe_servers(self._servers))

    async def _subscribe(self, nc: Any, node: NodeHooks) -> None:
        subjects = self._subjects
        await nc.subscribe(
            subjects.inbox(node.name, node.incarnation),
            cb=self._on_envelope,
            pending_msgs_limit=self.options.pending_msgs_limit,
        )
        await nc.subscribe(subjects.whois_inbox(node.name), cb=self._on_whois)
        await nc.subscribe(subjects.presence_inbox(), cb=self._on_presence)
        if self.options.advisory_subject:
            await nc.subscribe(self.options.advisory_subject, cb=self._on_advisory)
        # nats-py puts a flush's PING ahead of what is buffered, so its PONG may come before
        # the server has seen the subscriptions; the second one comes after any refusal.
        await nc.flush(timeout=self.options.connect_timeout)
        await nc.flush(timeout=self.options.connect_timeout)

    async def _publish_hello(self) -> None:
        node = self._node
        if node is None or self._nc is None:
            return
        try:
            await self._nc.publish(
                self._subjects.presence(node.name), wire.encode_hello(node.name, node.incarnation)
            )
        except Exception as exc:
            _log.debug("could not announce %s: %r", node.name, exc)

    # -- Transport: detach ------------------------------------------------------------------

    async def detach(self) -> None:
        """Say goodbye to every peer with a live session, flush, and close the connection."""
        node, nc, publisher = self._node, self._nc, self._publisher
        if node is None:
            return
        for peer in self._peers.values():
            if peer.state is PeerState.UP:
                self._enqueue(peer, wire.KIND_BYE, wire.NIL, None)
        self._closing = True
        timeout = self.options.connect_timeout
        try:
            if publisher is not None:
                with suppress_all():
                    await asyncio.wait_for(publisher.idle.wait(), timeout=timeout)
            with suppress_all():
                await nc.flush(timeout=timeout)
        finally:
            if publisher is not None:
                await publisher.close()
            tasks = [*self._tasks, *self._resolvers]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks = []
            await close_quietly(nc)
            self._connected = False
            self._node = None
            self._nc = None
            self._publisher = None
            for peer in self._peers.values():
                peer.end_session()
                for signal, _, _ in peer.pending:
                    self._undeliverable += 1
                    node.undeliverable(signal, NoConnection(peer.name))
                peer.pending.clear()
                peer.resolving = False
                peer.verifying = False
            _log.info("node %s.%s detached", node.name, node.incarnation)

    # -- Transport: send --------------------------------------------------------------------

    def send(self, signal: Signal) -> None:
        """Queue ``signal`` for its node; never blocks.

        For an exit reason the node sends by itself (a link's exit signal, a ``Down``),
        neither error below is raised: the reason is replaced by the codec's stand-in
        (``codec.stand_in``), so that the link or monitor still fires.

        Raises:
            Unencodable: The signal holds a value that cannot be encoded (a ``TypeError``).
            MessageTooLarge: Its encoding is larger than ``max_message_size``; nothing was
                sent.
        """
        node = self._node
        name = destination_node(signal)
        if node is None or self._closing:
            self._undeliverable += 1
            if node is not None:
                node.undeliverable(signal, NoConnection(name))
            return
        body = self._encode_signal(signal, name)
        # The trace it continues, taken now: the caller's context is the one of this call
        # even if the signal waits for a whois. See "Tracing" in docs/nats.md.
        headers = tracing.signal_headers(signal) if tracing.instrumented else None
        peer = self._peers.get(name)
        if peer is None:
            peer = self._peers[name] = Peer(name, touched=time.monotonic(), reassembly=self._reassembly)
        if peer.resolving:
            peer.pending.append((signal, body, headers))
        elif peer.state is PeerState.UP:
            target = _target_incarnation(signal)
            if target is not None and target != peer.incarnation:
                # A pid of another incarnation: stale, or of one this node has not heard of
                # yet. It goes to the current one (which answers NoProc), and the peer is
                # asked which is current.
                self._maybe_verify(peer)
            self._enqueue(peer, wire.KIND_SIGNAL, body, signal, headers)
        else:
            peer.pending.append((signal, body, headers))
            peer.resolving = True
            self._start(self._resolve(peer), "refcount_starter.nats.whois")

    def _encode_signal(self, signal: Signal, name: str) -> bytes:
        limit = self.options.max_message_size
        try:
            body = encode(signal)
        except (TypeError, ValueError, RecursionError):
            # The codec refuses what it cannot encode with a TypeError; the node's own exit
            # signals are guarded against anything it may raise on the way (a lone surrogate,
            # a value nested too deep): a watcher must learn of the exit in any case.
            if not _sent_by_node(signal):
                raise
            return self._stand_in(signal, None)
        if len(body) > limit:
            if _sent_by_node(signal):
                return self._stand_in(
                    signal, f"it is {len(body)} bytes encoded, more than max_message_size ({limit})"
                )
            raise MessageTooLarge(name, len(body), limit)
        return body

    @staticmethod
    def _stand_in(signal: DownSignal | ExitSignalSent, why: str | None) -> bytes:
        # Sent by the node as a process exits: the watcher must still learn of it. The codec's
        # stand-in keeps what it can of the reason (a Shutdown stays a Shutdown) and always
        # encodes; the original is not formatted here (it may be nested too deeply to repr).
        replacement = stand_in(signal.reason, why)
        _log.warning(
            "an exit reason cannot be sent (%s); sending %r instead", why or "unencodable", replacement
        )
        return encode(attrs.evolve(signal, reason=replacement))

    def _enqueue(
        self, peer: Peer, kind: int, body: bytes, signal: Signal | None, headers: Headers | None = None
    ) -> None:
        """Number and queue one envelope (or the fragments of a signal); ``headers`` (a trace
        context) go with the envelope that completes the signal, in a message of its own."""
        node, publisher = self._node, self._publisher
        assert node is not None and publisher is not None and peer.incarnation is not None
        subject = self._subjects.node(peer.name, peer.incarnation, node.name)
        room = publisher.max_payload - self._name_size
        if headers is not None:
            room -= header_size(headers)  # the server counts them in max_payload
        if len(body) + wire.FRAGMENT_OVERHEAD <= room:
            epoch, seq = peer.probe_out() if kind == wire.KIND_HEARTBEAT else peer.next_out()
            data = wire.encode_envelope(kind, node.name, node.incarnation, epoch, seq, msgspec.Raw(body))
            publisher.enqueue(subject, data, signal, peer.name, headers)
            return
        # Larger than a NATS message: fragments, each the next envelope of the session, all
        # queued now, so nothing else to this peer comes between them. See ADR-0006.
        assert kind == wire.KIND_SIGNAL
        piece_size = min(room - wire.FRAGMENT_OVERHEAD, _FRAGMENT_SIZE)
        for piece_kind, piece in wire.fragments(body, piece_size):
            epoch, seq = peer.next_out()
            data = wire.encode_envelope(piece_kind, node.name, node.incarnation, epoch, seq, piece)
            if piece_kind == wire.KIND_LAST_FRAGMENT:
                publisher.enqueue(subject, data, signal, peer.name, headers)
            else:
                publisher.enqueue(subject, data, None, peer.name)
            self._fragments += 1

    def _pack(self, envelopes: list[bytes]) -> bytes:
        node = self._node
        assert node is not None
        return wire.encode_batch(node.name, node.incarnation, envelopes)

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

    def _start(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._resolvers.add(task)
        task.add_done_callback(self._resolvers.discard)

    # -- resolving and checking peers -------------------------------------------------------

    async def _whois(self, name: str, attempts: int) -> tuple[int | None, str]:
        """Ask the node ``name`` for its incarnation (this is also the handshake).

        Returns:
            The incarnation (None without one) and why there is none.
        """
        import nats.errors

        node = self._node
        why = "no answer"
        for attempt in range(attempts):
            if self._closing or self._nc is None or node is None:
                return None, "the transport is closing"
            try:
                reply = await self._nc.request(
                    self._subjects.whois(name, node.name),
                    wire.encode_whois(node.name, node.incarnation),
                    timeout=self.options.resolve_timeout,
                )
                answered, incarnation, _ = wire.decode_whois_answer(reply.data)
                if answered != name:
                    return None, f"a wrong whois answer {reply.data!r:.100}"
                return incarnation, ""
            except nats.errors.NoRespondersError:
                # Nobody reads the subject; a single 503 has been seen under load for a live
                # subscriber, so ask again before concluding.
                why = "no node of that name is connected"
                await asyncio.sleep(0.02 * (attempt + 1))
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
                return None, f"an undecodable whois answer: {exc}"
            except Exception as exc:
                return None, f"{type(exc).__name__}: {exc}"
        return None, why

    async def _resolve(self, peer: Peer) -> None:
        incarnation, why = await self._whois(peer.name, 3)
        if not peer.resolving:
            return  # the transport detached meanwhile
        peer.resolving = False
        peer.touched = time.monotonic()
        pending, peer.pending = peer.pending, []
        if incarnation is None:
            _log.debug("could not reach node %s: %s", peer.name, why)
            for signal, _, _ in pending:
                self._report_undeliverable(signal)
            return
        if peer.resolved(incarnation, time.monotonic()):
            self._peer_down(peer, f"it restarted as incarnation {incarnation}")
        self._flush_pending(peer, pending)

    def _maybe_verify(self, peer: Peer) -> None:
        """Someone claims another incarnation of a peer with a live session: ask the peer,
        at most once per cool-down, and let its answer decide. See ADR-0007."""
        now = time.monotonic()
        if peer.verifying or now - peer.checked < _VERIFY_COOLDOWN:
            return
        peer.verifying = True
        peer.checked = now
        self._checks[peer.name] = asyncio.Event()
        self._start(self._verify(peer), "refcount_starter.nats.verify")

    async def _verify(self, peer: Peer) -> None:
        try:
            incarnation, why = await self._whois(peer.name, 1)
        finally:
            checked = self._checks.pop(peer.name, None)
            if checked is not None:
                checked.set()
        if not peer.verifying:
            return  # the transport detached meanwhile
        peer.verifying = False
        peer.touched = time.monotonic()
        self._verifications += 1
        if incarnation is None:
            if why == "no node of that name is connected":
                self._end(peer, "no node of that name answers any more")
            return
        if peer.learn_incarnation(incarnation):
            self._peer_down(peer, f"it says it is incarnation {incarnation} now")

    def _flush_pending(self, peer: Peer, pending: list[tuple[Signal, bytes, Headers | None]]) -> None:
        for signal, body, headers in pending:
            if peer.state is PeerState.UP:
                self._enqueue(peer, wire.KIND_SIGNAL, body, signal, headers)
            else:
                self._report_undeliverable(signal)

    # -- receiving --------------------------------------------------------------------------

    async def _on_envelope(self, msg: Any) -> None:
        node = self._node
        if node is None:
            return
        self._on_data(
            node, wire.Subjects.sender(msg.subject), msg.subject, msg.data, inner=False, headers=msg.headers
        )

    def _undecodable(self, node: NodeHooks, subject: str, data: bytes, exc: Exception) -> None:
        # Anyone who may publish on the node's subjects can send garbage as fast as it likes:
        # at most _MAX_UNDECODABLE_LOGS lines a second, then one line saying how many more.
        self._decode_errors += 1
        allowed, unlogged = self._undecodable_lines.take()
        if unlogged:
            _log.warning(
                "node %s dropped %d more undecodable inputs without a line each", node.name, unlogged
            )
        if not allowed:
            return
        _log.warning(
            "node %s dropped undecodable input on %s (%d bytes): %s", node.name, subject, len(data), exc
        )

    def _on_data(
        self,
        node: NodeHooks,
        sender: str,
        subject: str,
        data: bytes,
        *,
        inner: bool,
        headers: Mapping[str, object] | None = None,
    ) -> None:
        """Judge and act on one envelope (or each of a batch's). ``headers`` are the NATS
        message's, untrusted: a trace context, read only for the signal a message completes
        (a batch's are ignored)."""
        try:
            _, kind, name, incarnation, epoch, seq, raw = wire.decode_header(data, inner=inner)
            if name != sender:
                raise ValueError(f"an envelope that claims to come from {name!r}, published by {sender!r}")
            if name == node.name:
                raise ValueError("an envelope that claims to come from this node itself")
            if kind == wire.KIND_BATCH:
                envelopes = wire.decode_batch(raw)
        except _UNDECODABLE as exc:
            self._undecodable(node, subject, data, exc)
            return
        if kind == wire.KIND_BATCH:
            for inner_envelope in envelopes:
                if self._node is not node:
                    return  # detached meanwhile
                self._on_data(node, sender, subject, bytes(inner_envelope), inner=True)
            return
        peer = self._peers.get(name)
        if peer is None:
            # No handshake (whois) came from this node: a stranger. Nothing is kept for it.
            self._strangers += 1
            return
        verdict = peer.received(incarnation, epoch, seq, time.monotonic(), probe=kind == wire.KIND_HEARTBEAT)
        if verdict.verify:
            self._stale += 1
            self._maybe_verify(peer)
            return
        if verdict.ended:
            self._peer_down(peer, "it ended our session (new epoch or incarnation)")
        if verdict.gap:
            self._gaps += 1
            self._sessions_ended += 0 if verdict.ended else 1
        if verdict.restart:
            self._enqueue(peer, wire.KIND_HEARTBEAT, wire.NIL, None)
        if peer.resolving and peer.state is PeerState.UP:
            self._resolved_by_contact(peer)
        if not verdict.accept:
            self._stale += 1
            return
        self._received += 1
        signal: Any = None
        try:
            if kind in (wire.KIND_FRAGMENT, wire.KIND_LAST_FRAGMENT):
                piece = wire.decode_chunk(raw)
                if self._reassembly.full(len(piece)):
                    self._make_room(node, peer, len(piece))
                last = kind == wire.KIND_LAST_FRAGMENT
                whole = peer.reassemble(piece, last=last, limit=self.options.max_message_size)
                if whole is None:
                    return
                signal = decode(whole)
            else:
                if peer.fragments:
                    peer.unfragmented()  # raises: a whole envelope between pieces
                if kind == wire.KIND_SIGNAL:
                    signal = decode(raw)
            if signal is not None and type(signal) not in _SIGNAL_TYPES:
                raise DecodeError(f"an envelope body must be a signal, got {type(signal).__name__}")
        except (DecodeError, FragmentError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            # The peer is alive but sent what this node cannot read: a signal is lost, so
            # the session must end (nothing is lost silently). See ADR-0008.
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
            self._enqueue(peer, wire.KIND_HEARTBEAT, wire.NIL, None)
            return
        if kind == wire.KIND_BYE:
            self._end(peer, "it is leaving")
        elif signal is not None:
            # A node speaks only for its own processes (ADR-0006, "Protection").
            forged = forgery(signal, name, node.name)
            if forged is not None:
                self._drop_forged(node, name, forged)
                return
            if headers is not None and tracing.instrumented:
                self._adopt_trace(node, signal, headers)
            try:
                node.deliver(signal)
            except Exception:
                _log.exception("node %s failed to apply %r", node.name, signal)

    def _make_room(self, node: NodeHooks, peer: Peer, size: int) -> None:
        """Drop unfinished signals, the oldest first, until ``size`` more bytes fit; each
        ends its session, as a signal that cannot be read does. A sender queues all the
        pieces of a signal at once, so the oldest unfinished one is the likeliest to have
        stalled; and it is found in O(1). See ADR-0006.

        Raises:
            FragmentError: ``peer``'s own unfinished signal is the oldest (it is dropped).
        """
        reassembly = self._reassembly
        while reassembly.full(size):
            oldest = reassembly.oldest()
            if oldest is None:
                return  # a piece larger than the limit: reassemble refuses it
            self._reassembly_drops += 1
            why = (
                f"this node holds {reassembly.held} bytes of unfinished signals "
                f"(max_reassembly_bytes: {reassembly.limit}); the oldest, from {oldest.name}, is dropped"
            )
            if oldest is peer:
                raise FragmentError(why)
            _log.error("node %s: %s; the session ends", node.name, why)
            self._end(oldest, "its unfinished signal was dropped to make room")
            oldest.start_session(time.monotonic())
            self._enqueue(oldest, wire.KIND_HEARTBEAT, wire.NIL, None)

    def _drop_forged(self, node: NodeHooks, sender: str, what: str) -> None:
        # The envelope itself was in order, so the session goes on: nothing was lost, the
        # peer only claimed what it may not. One line a second at most: a forger may send
        # as fast as it likes.
        self._forged += 1
        if not self._forged_lines.take()[0]:
            return
        _log.warning(
            "node %s dropped a signal from node %s that speaks for another node (%d so far): %s",
            node.name,
            sender,
            self._forged,
            what,
        )

    @staticmethod
    def _adopt_trace(node: NodeHooks, signal: Signal, headers: Mapping[str, object]) -> None:
        # Whatever the headers hold, the signal is delivered: at worst untraced.
        try:
            tracing.adopt_signal_headers(signal, headers)
        except Exception:
            _log.exception(
                "node %s could not read the trace context of a %s", node.name, type(signal).__name__
            )

    def _resolved_by_contact(self, peer: Peer) -> None:
        # The peer spoke first while a whois was in flight: the session is live, so what
        # waited for the whois goes now, ahead of anything sent later (unless some of it is
        # for another incarnation than the one that spoke: then the whois decides).
        known = peer.incarnation
        if any(_target_incarnation(signal) not in (None, known) for signal, _, _ in peer.pending):
            return
        peer.resolving = False
        pending, peer.pending = peer.pending, []
        self._flush_pending(peer, pending)

    async def _on_whois(self, msg: Any) -> None:
        node = self._node
        if node is None or not msg.reply:
            return
        try:
            name, incarnation = wire.decode_whois(msg.data)
            if name != wire.Subjects.sender(msg.subject):
                raise ValueError(f"a whois from {name!r} published by {wire.Subjects.sender(msg.subject)!r}")
        except _UNDECODABLE as exc:
            self._undecodable(node, msg.subject, msg.data, exc)
            return
        if name == node.name:
            if incarnation == node.incarnation:
                return
            if not self._claim.asked_by(incarnation):
                _log.warning("a node named %s (incarnation %s) tried to start; refused", name, incarnation)
        else:
            peer = self._handshake(name, incarnation)
            if peer is None:
                return
            checked = self._checks.get(peer.name)
            if checked is not None and self._waiting_answers < _MAX_WAITING_ANSWERS:
                # It claims another incarnation than the one with a live session: answer once
                # the peer's own word decided, so that what it sends next is accepted.
                self._start(self._answer_when_checked(checked, msg), "refcount_starter.nats.handshake")
                return
        await self._answer(msg)

    async def _answer(self, msg: Any) -> None:
        node = self._node
        if node is None:
            return
        with suppress_all():
            await msg.respond(
                wire.encode_whois_answer(node.name, node.incarnation, running=not self._claim.starting)
            )

    async def _answer_when_checked(self, checked: asyncio.Event, msg: Any) -> None:
        self._waiting_answers += 1
        try:
            with suppress_all():
                await asyncio.wait_for(checked.wait(), timeout=self.options.resolve_timeout)
        finally:
            self._waiting_answers -= 1
        await self._answer(msg)

    def _handshake(self, name: str, incarnation: int) -> Peer | None:
        """A node asked who this node is: keep it as a peer (checking a claim that conflicts
        with a live session). Return None when the peer table is full of peers that cannot be
        forgotten (the whois is then not answered)."""
        now = time.monotonic()
        peer = self._peers.get(name)
        if peer is None:
            if len(self._peers) >= self.options.max_peers and not self._forget_one(now):
                self._strangers += 1
                return None
            peer = self._peers[name] = Peer(name, touched=now, reassembly=self._reassembly)
        if peer.claimed(incarnation):
            self._maybe_verify(peer)
        else:
            peer.touched = now
        return peer

    def _forget_one(self, now: float) -> bool:
        # The peer table is full: forget the peer idle for longest, if there is one.
        idle = [peer for peer in self._peers.values() if peer.idle(now, 0.0)]
        if not idle:
            return False
        del self._peers[min(idle, key=lambda peer: peer.touched).name]
        return True

    async def _on_presence(self, msg: Any) -> None:
        node = self._node
        if node is None:
            return
        try:
            name, incarnation = wire.decode_hello(msg.data)
            if name != wire.Subjects.sender(msg.subject):
                raise ValueError(f"a hello from {name!r} published by {wire.Subjects.sender(msg.subject)!r}")
        except _UNDECODABLE as exc:
            self._undecodable(node, msg.subject, msg.data, exc)
            return
        if name == node.name:
            if incarnation != node.incarnation and not self._claim.starting:
                # Only a node that took the name from one that did not answer (ADR-0012).
                _log.error(
                    "another node named %r (incarnation %s) joined; node names must be unique",
                    name,
                    incarnation,
                )
            return
        peer = self._peers.get(name)
        if peer is not None and peer.claimed(incarnation):
            self._maybe_verify(peer)

    async def _on_advisory(self, msg: Any) -> None:
        node = self._node
        if node is None:
            return
        try:
            client = _advisory_decoder.decode(msg.data).client
        except _UNDECODABLE as exc:
            self._undecodable(node, msg.subject, msg.data, exc)
            return
        name, _, incarnation = str(client.get("name", "")).rpartition("/")
        peer = self._peers.get(name)
        if peer is None or not incarnation.isdigit() or int(incarnation) != peer.incarnation:
            return
        if peer.state is PeerState.UP:
            # A client may pick any connection name: ask the peer before ending anything.
            # Its subscription is gone when the advisory comes, so the answer is quick.
            peer.checked = -math.inf
            self._maybe_verify(peer)

    # -- failure detection ------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        interval = self.heartbeat_interval
        bound = self.detection_bound
        idle_timeout = self.options.idle_timeout
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for peer in list(self._peers.values()):
                if peer.state is PeerState.UP:
                    if peer.expired(now, bound):
                        self._end(peer, f"nothing heard for {now - peer.last_heard:.1f} s")
                    else:
                        self._enqueue(peer, wire.KIND_HEARTBEAT, wire.NIL, None)
                elif peer.idle(now, idle_timeout):
                    del self._peers[peer.name]

    def _end(self, peer: Peer, why: str) -> None:
        if peer.end_session():
            peer.touched = time.monotonic()
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
        if "permissions violation" in str(exc).lower():
            if not self._connected:
                self._violations.append(str(exc))
                return
            _log.error("the NATS server refused an operation of this node: %s", exc)
            return
        if type(exc).__name__ == "SlowConsumerError":
            # One per dropped message: say it once a second at most. The gap it leaves ends
            # the session with the sender (it is never silent).
            self._slow_consumer_drops += 1
            if not self._slow_consumer_lines.take()[0]:
                return
            _log.warning("this node reads too slowly: %d messages dropped so far", self._slow_consumer_drops)
            return
        _log.warning("NATS client error: %r", exc)

    async def _on_disconnected(self) -> None:
        if self._connected and not self._closing:
            # Sessions are kept: if the client reconnects (to this server or another of the
            # cluster) within the detection bound and nothing across a session was lost,
            # it goes on; a lost envelope is a gap that ends it, and a longer outage ends
            # every session through the heartbeats. See ADR-0007 and ADR-0013.
            self._disconnected_at = time.monotonic()
            _log.warning("node lost its NATS connection; reconnecting")

    async def _on_reconnected(self) -> None:
        if self._closing:
            return
        self._reconnects += 1
        outage = time.monotonic() - self._disconnected_at
        _log.warning("node reconnected to NATS after %.2f s; live sessions go on", outage)
        # Tell every peer at once that this node is back (a heartbeat, which also shows
        # either side any envelope lost meanwhile), and announce it.
        for peer in list(self._peers.values()):
            if peer.state is PeerState.UP:
                self._enqueue(peer, wire.KIND_HEARTBEAT, wire.NIL, None)
        await self._publish_hello()

    async def _on_closed(self) -> None:
        if self._connected and not self._closing:
            _log.error("the NATS connection closed for good; every session ends")
            self._closing = True
            self._end_all("this node's connection closed")


def _target_incarnation(signal: Signal) -> int | None:
    # The incarnation a signal is addressed to: a pid's, or None (any) for a registered name.
    if type(signal) is NamedMessageSignal:
        return None
    return signal.to.incarnation  # type: ignore[union-attr]


def _sent_by_node(signal: Signal) -> TypeGuard[DownSignal | ExitSignalSent]:
    # Exit reasons the node sends by itself as a process exits: watchers must learn of it.
    return type(signal) is DownSignal or (type(signal) is ExitSignalSent and signal.linked)
