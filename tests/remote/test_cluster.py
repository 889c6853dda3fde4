"""Nodes on a three-server NATS cluster: the test cluster itself, reconnecting to another
server, and a peer behind a dead or stopped server (ADR-0007, ADR-0013)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import nats
import nats.errors
import pytest

from refcount_starter.cli import main
from refcount_starter.remote.localcluster import LocalCluster
from refcount_starter.remote.service import spawn_remote
from refcount_starter.runtime import CallFailed, Down, ExitSignal, NoConnection, Node

from .cluster import cluster_transport, cluster_url
from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES
from .nodeproc import ROOT, node_process, wait_until_subscribed
from .test_processes import DETECTION_LIMIT, statistics_of

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(90)]

BOUND = HEARTBEAT_INTERVAL * HEARTBEAT_MISSES


async def _echo_responder(nc: nats.aio.client.Client, subject: str) -> None:
    async def answer(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=answer)
    await nc.flush()


async def _until_answered(nc: nats.aio.client.Client, subject: str) -> bytes:
    with anyio.fail_after(10):
        while True:
            try:
                return bytes((await nc.request(subject, b"ping", timeout=1)).data)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await anyio.sleep(0.02)


async def test_the_cluster_forms_a_mesh_that_a_cut_splits_and_a_heal_joins(cluster: LocalCluster) -> None:
    """A request on server 0 reaches a responder on server 2 through the routes; isolating
    server 0 leaves it with no route and no responder (NoResponders, at once); healing
    joins it again."""
    assert all(cluster.routes(i) == cluster.expected_routes(i) for i in range(3))
    assert cluster.routes(0) == {cluster.server_name(1), cluster.server_name(2)}
    one = await nats.connect(cluster.url(0))
    three = await nats.connect(cluster.url(2))
    try:
        await _echo_responder(three, "mesh.echo")
        assert await _until_answered(one, "mesh.echo") == b"ping"
        cluster.isolate(0)
        assert cluster.routes(0) == set()
        assert cluster.routes(1) == {cluster.server_name(2)}
        with pytest.raises(nats.errors.NoRespondersError):
            await one.request("mesh.echo", b"ping", timeout=2)
        cluster.heal()
        assert await _until_answered(one, "mesh.echo") == b"ping"
        cluster.kill(1)
        cluster.wait_for_mesh()
        assert cluster.routes(0) == {cluster.server_name(2)}
        assert await _until_answered(one, "mesh.echo") == b"ping"
    finally:
        await one.close()
        await three.close()


async def test_a_node_whose_server_dies_reconnects_to_another_and_keeps_its_session(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """A node process on server 1 (knowing servers 1 and 2): server 1 is killed, the node
    reconnects to server 2 well within the bound, and its session with a node on server 0
    goes on (nothing was in flight), links and monitors included."""
    transport = cluster_transport(cluster, 0)
    async with (
        Node("t", transport=transport) as t,
        t.process(trap_exits=True) as me,
        node_process(None, "w1", tmp_path, url=cluster_url(cluster, 1, 2)),
    ):
        echo, ref = await spawn_remote(me, "w1", "test.echo")
        assert (await statistics_of(me, "w1"))["server"].endswith(f":{cluster.client_ports[1]}")
        started = time.monotonic()
        cluster.kill(1)
        await wait_until_subscribed(cluster.url(0), "w1")
        assert time.monotonic() - started < BOUND
        stats = await statistics_of(me, "w1")
        assert stats["server"].endswith(f":{cluster.client_ports[2]}")
        assert stats["reconnects"] == 1 and stats["sessions_ended"] == 0
        assert await me.call(echo, "after the move", timeout=10) == ("echo", "after the move")
        assert transport.statistics().sessions_ended == 0
        me.send(echo, "crash")
        assert (await me.receive(Down, timeout=10)).ref == ref
        assert (await me.receive(ExitSignal, timeout=10)).sender == echo


@pytest.mark.parametrize("fault", ["kill", "sigstop"])
async def test_a_peer_behind_a_dead_server_is_detected_within_the_bound(
    cluster: LocalCluster, tmp_path: Path, fault: str
) -> None:
    """A node process that knows only server 1: server 1 is killed (no advisory comes from a
    dead server) or stopped; a node on server 0 sees its links and monitors fire
    NoConnection within the heartbeat bound, and a call to it fails instead of hanging."""
    async with (
        Node("t", transport=cluster_transport(cluster, 0)) as t,
        t.process(trap_exits=True) as me,
        node_process(None, "w1", tmp_path, url=cluster_url(cluster, 1)),
    ):
        pid, ref = await spawn_remote(me, "w1", "test.echo")
        started = time.monotonic()
        if fault == "kill":
            cluster.kill(1)
        else:
            cluster.pause(1)
        assert await me.receive(ExitSignal, timeout=DETECTION_LIMIT) == ExitSignal(pid, NoConnection("w1"))
        elapsed = time.monotonic() - started
        assert await me.receive(Down, timeout=1) == Down(ref, pid, NoConnection("w1"))
        assert BOUND * 0.9 < elapsed < BOUND + 4 * HEARTBEAT_INTERVAL + 1.0, elapsed
        with pytest.raises(CallFailed) as failed:
            await me.call(pid, "anyone there?", timeout=DETECTION_LIMIT)
        assert failed.value.reason == NoConnection("w1")
        cluster.resume(1)


async def test_the_node_command_takes_a_clusters_servers(cluster: LocalCluster, tmp_path: Path) -> None:
    """``python -m refcount_starter node --nats URL2,URL0 --servers-in-order`` connects to the
    first server given, and reconnects to the next one when it goes away."""
    command = [
        sys.executable,
        "-m",
        "refcount_starter",
        "node",
        "--nats",
        cluster_url(cluster, 2, 0),
        "--servers-in-order",
        "--name",
        "w9",
        "--import",
        "tests.remote.closures_for_tests",
        "--heartbeat-interval",
        str(HEARTBEAT_INTERVAL),
        "--heartbeat-misses",
        str(HEARTBEAT_MISSES),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = await anyio.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env=env
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        assert line.split()[:2] == [b"READY", b"w9"], line
        async with Node("t", transport=cluster_transport(cluster, 0)) as t, t.process() as me:
            assert (await statistics_of(me, "w9"))["server"].endswith(f":{cluster.client_ports[2]}")
            cluster.kill(2)
            await wait_until_subscribed(cluster.url(0), "w9")
            assert (await statistics_of(me, "w9"))["server"].endswith(f":{cluster.client_ports[0]}")
    finally:
        process.terminate()
        with anyio.fail_after(15):
            await process.wait()
        await process.aclose()


def test_the_command_line_refuses_a_bad_url_among_several(capsys: pytest.CaptureFixture[str]) -> None:
    """Every URL of a comma-separated list is checked: one bad part is named and refused."""
    with pytest.raises(SystemExit) as info:
        main(["node", "--nats", "nats://127.0.0.1:4222,http://127.0.0.1:4223", "--name", "n"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "expected a NATS server URL" in err and "http://127.0.0.1:4223" in err
