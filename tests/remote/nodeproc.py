"""Run a node in its own OS process (``python -m refcount_starter.node_main``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc

from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES
from .natsserver import PASSWORD, USER, NatsServer

ROOT = Path(__file__).resolve().parents[2]


class NodeProcess:
    """A node process: its name, incarnation and OS pid; stopped by pid."""

    def __init__(self, process: anyio.abc.Process, name: str, incarnation: int, log: Path) -> None:
        self.process = process
        self.name = name
        self.incarnation = incarnation
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            os.kill(self.process.pid, signum)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def _given(server: NatsServer | None) -> NatsServer:
    if server is None:
        raise ValueError("node_process needs a server or a url")
    return server


def url_with_credentials(server: NatsServer, user: str = USER, password: str = PASSWORD) -> str:
    host = server.url.split("://", 1)[1]
    return f"nats://{user}:{password}@{host}"


@asynccontextmanager
async def node_process(
    server: NatsServer | None,
    name: str,
    tmp_path: Path,
    *,
    url: str | None = None,
    heartbeat_misses: int = HEARTBEAT_MISSES,
    imports: Sequence[str] = (),
) -> AsyncIterator[NodeProcess]:
    """Start a node process and wait for its READY line; stop it (SIGCONT, SIGTERM, SIGKILL).
    ``url`` (several URLs separated by commas for a cluster) replaces ``server``'s;
    ``imports`` are more modules for it to import (after ``closures_for_tests``)."""
    log = tmp_path / f"{name}.stderr"
    command = [
        sys.executable,
        "-m",
        "refcount_starter.node_main",
        "--nats",
        url or url_with_credentials(_given(server)),
        "--name",
        name,
        "--import",
        "tests.remote.closures_for_tests",
        "--heartbeat-interval",
        str(HEARTBEAT_INTERVAL),
        "--heartbeat-misses",
        str(heartbeat_misses),
        "--servers-in-order",
        *(word for module in imports for word in ("--import", module)),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with log.open("wb") as stderr:
        process = await anyio.open_process(command, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, env=env)
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive(1)
                line += chunk
        words = line.decode().split()
        assert words[:2] == ["READY", name], (line, log.read_text())
        yield NodeProcess(process, name, int(words[2]), log)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                os.kill(process.pid, signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                with anyio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await process.aclose()


async def wait_until_subscribed(url: str, name: str, timeout: float = 10.0) -> None:
    """Wait until node ``name`` reads its subjects through the server at ``url`` (its whois
    is answered there; the node subscribes to it and to its envelopes together, also when it
    reconnects). The question comes from a name of its own, ``outsider``, as a handshake."""
    import nats
    import nats.errors

    from refcount_starter.remote import envelope

    nc = await nats.connect(url)
    try:
        with anyio.fail_after(timeout):
            while True:
                try:
                    await nc.request(
                        f"rs.whois.{name}.outsider", envelope.encode_whois("outsider", 1), timeout=1
                    )
                    return
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    await anyio.sleep(0.02)
    finally:
        await nc.close()
