"""One NATS user per node, allowed to publish only on its own subjects (docs/nats.md): the
server itself stops anyone holding one node's credentials from speaking as another.

Authentication by password and by nkey; token authentication is tested in
``test_processes.py`` (``test_wrong_token_is_refused_clearly``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest

from refcount_starter.remote.codec import encode
from refcount_starter.remote.errors import NatsAuthenticationError
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.runtime import Down, ExitSignal, Node, Normal

from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES, server_binary
from .natsserver import NatsServer, password_of
from .nodeproc import ROOT, url_with_credentials
from .test_two_nodes import echo

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(60)]

NODES = ("a", "b", "c")


def new_seed() -> str:
    nkeys = pytest.importorskip("nkeys")
    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode())


def public_key(seed: str) -> str:
    import nkeys

    return str(nkeys.from_seed(seed.encode()).public_key.decode())


@pytest.fixture(params=["password", "nkey"])
def auth(request: pytest.FixtureRequest) -> Iterator[tuple[NatsServer, Callable[[str], dict[str, Any]]]]:
    """A server with one user per node (by password or by nkey), and the credentials of each."""
    if request.param == "password":
        server = NatsServer(server_binary(), node_users=NODES)

        def credentials(name: str) -> dict[str, Any]:
            return {"user": name, "password": password_of(name)}

    else:
        seeds = {name: new_seed() for name in NODES}
        server = NatsServer(server_binary(), nkey_users={name: public_key(seeds[name]) for name in NODES})

        def credentials(name: str) -> dict[str, Any]:
            return {"nkeys_seed_str": seeds[name]}

    server.start()
    try:
        yield server, credentials
    finally:
        server.close()


def transport(server: NatsServer, credentials: dict[str, Any]) -> NatsTransport:
    return NatsTransport(
        server.url, heartbeat_interval=HEARTBEAT_INTERVAL, heartbeat_misses=HEARTBEAT_MISSES, **credentials
    )


async def test_nodes_with_their_own_users_work(
    auth: tuple[NatsServer, Callable[[str], dict[str, Any]]],
) -> None:
    """Nodes under per-node users call, link and monitor each other, and see a peer leave."""
    server, credentials = auth
    async with (
        Node("a", transport=transport(server, credentials("a"))) as a,
        a.process(trap_exits=True) as me,
        Node("b", transport=transport(server, credentials("b"))) as b,
    ):
        pid = b.spawn(echo)
        assert await me.call(pid, "hello", timeout=10) == ("echo", "hello")
        ref = me.monitor(pid)
        me.link(pid)
        me.send(pid, "stop")
        assert await me.receive(Down, timeout=10) == Down(ref, pid, Normal())


async def test_another_nodes_credentials_cannot_forge_its_presence_or_messages(
    auth: tuple[NatsServer, Callable[[str], dict[str, Any]]],
) -> None:
    """Holding c's credentials, one cannot say hello as a, send envelopes or a handshake as
    a, nor read b's subject: the server refuses each; and what c may publish, claiming to be
    a, is dropped by b. The session between a and b goes on untouched."""
    server, credentials = auth
    b_transport = transport(server, credentials("b"))
    async with (
        Node("a", transport=transport(server, credentials("a"))) as a,
        Node("b", transport=b_transport) as b,
        a.process(trap_exits=True) as me,
    ):
        pid = b.spawn(echo)
        me.link(pid)
        assert await me.call(pid, "warm", timeout=10) == ("echo", "warm")
        before = b_transport.statistics()
        refused: list[str] = []
        all_refused = anyio.Event()

        async def on_error(exc: Exception) -> None:
            refused.append(str(exc))
            if len(refused) == 4:
                all_refused.set()

        c_raw = await nats.connect(server.url, error_cb=on_error, **credentials("c"))
        try:
            huge = 2**63 - 1
            gap = msgspec.msgpack.encode([3, 0, "a", a.incarnation, 1, 1_000, msgspec.Raw(encode(None))])
            await c_raw.publish("rs.presence.a", msgspec.msgpack.encode([3, "hello", "a", huge]))
            await c_raw.publish(b_transport.node_subject("b", b.incarnation, "a"), gap)
            await c_raw.publish("rs.whois.b.a", msgspec.msgpack.encode([3, "a", huge]), reply="_INBOX.c.1")
            await c_raw.subscribe("rs.node.b.>")
            # Allowed for c, but it claims to be a: b drops it.
            await c_raw.publish(b_transport.node_subject("b", b.incarnation, "c"), gap)
            await c_raw.flush()
            with anyio.fail_after(10):
                await all_refused.wait()
        finally:
            await c_raw.close()
        assert all("permissions violation" in text.lower() for text in refused), refused
        with anyio.fail_after(10):
            while b_transport.statistics().decode_errors == before.decode_errors:
                await anyio.sleep(0.01)
        assert await me.call(pid, "untouched", timeout=10) == ("echo", "untouched")
        stats = b_transport.statistics()
        assert stats.sessions_ended == before.sessions_ended and stats.gaps == 0
        with pytest.raises(TimeoutError):
            await me.receive(ExitSignal, timeout=0)


async def test_a_node_with_another_nodes_credentials_does_not_start(
    auth: tuple[NatsServer, Callable[[str], dict[str, Any]]], tmp_path: Path
) -> None:
    """Node a, started with c's credentials, may not read a's subjects: it refuses to start
    (``NatsAuthenticationError``; the node command exits 2)."""
    server, credentials = auth
    with pytest.raises(NatsAuthenticationError, match="may not use the subjects of node 'a'"):
        async with Node("a", transport=transport(server, credentials("c"))):
            pass
    if "user" in credentials("c"):
        url = url_with_credentials(server, "c", password_of("c"))
        command = [sys.executable, "-m", "refcount_starter", "node", "--nats", url, "--name", "a"]
        result = await anyio.run_process(command, check=False, cwd=ROOT)
        assert result.returncode == 2
        assert b"may not use the subjects of node 'a'" in result.stderr
