"""Nodes in separate OS processes: remote spawn, send, link, monitor, call, and faults."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from refcount_starter.remote.codec import encode
from refcount_starter.remote.errors import NatsAuthenticationError
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.remote.service import INFO, RemoteSpawnFailed, spawn_remote
from refcount_starter.runtime import (
    Call,
    CallFailed,
    Crashed,
    Down,
    ExitSignal,
    NoConnection,
    Node,
    Process,
    Reply,
    Shutdown,
)

from .natsserver import NatsServer
from .nodeproc import node_process, url_with_credentials, wait_until_subscribed

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(60)]

MakeTransport = Callable[..., NatsTransport]

#: How long the tests allow for detecting a lost peer: the heartbeat bound (1.5 s) plus a
#: wide margin for a loaded CI machine.
DETECTION_LIMIT = 10.0


async def statistics_of(me: Process, node: str) -> dict[str, Any]:
    """Ask a node process's information process for its transport's counters."""
    ref = me.reserve_monitor()
    me.demonitor(ref)
    me.send((INFO, node), Call(me.pid, ref, "statistics"))
    reply = await me.receive(Reply, where=lambda r: r.ref == ref, timeout=10)
    return dict(reply.value)


async def test_remote_spawn_send_call_link_monitor(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """A process on another OS process: spawned by name, called, sent to, linked, monitored."""
    async with (
        node_process(nats_server, "w1", tmp_path),
        Node("t", transport=make_transport()) as t,
        t.process(trap_exits=True) as me,
    ):
        pid, ref = await spawn_remote(me, "w1", "test.echo", "echo")
        assert pid.node == "w1"
        assert await me.call(pid, "ping", timeout=10) == ("echo", "ping")
        me.send(("echo", "w1"), (me.pid, "by name"))
        assert await me.receive(timeout=10) == ("echo", "by name")
        watch = me.monitor(pid)
        me.send(pid, "crash")
        exit_signal = await me.receive(ExitSignal, timeout=10)
        assert exit_signal.sender == pid and isinstance(exit_signal.reason, Crashed)
        downs = {(await me.receive(Down, timeout=10)).ref for _ in range(2)}
        assert downs == {ref, watch}
        with pytest.raises(RemoteSpawnFailed, match=r"no\.such"):
            await spawn_remote(me, "w1", "no.such")


@pytest.mark.parametrize("advisories", [True, False], ids=["advisories", "heartbeats-only"])
async def test_sigkill_fires_noconnection(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path, advisories: bool
) -> None:
    """SIGKILL of a node process: links and monitors across fire NoConnection, within the bound
    (from the server's disconnect advisory, or from missed heartbeats without it)."""
    options = {} if advisories else {"advisory_subject": None}
    async with (
        Node("t", transport=make_transport(**options)) as t,
        t.process(trap_exits=True) as me,
        node_process(nats_server, "w1", tmp_path) as w1,
    ):
        pid, ref = await spawn_remote(me, "w1", "test.sleeper")
        started = time.monotonic()
        w1.signal(signal.SIGKILL)
        assert await me.receive(ExitSignal, timeout=DETECTION_LIMIT) == ExitSignal(pid, NoConnection("w1"))
        assert await me.receive(Down, timeout=DETECTION_LIMIT) == Down(ref, pid, NoConnection("w1"))
        assert time.monotonic() - started < DETECTION_LIMIT
        with pytest.raises(CallFailed) as failed:
            await me.call(pid, "anyone?", timeout=DETECTION_LIMIT)
        assert failed.value.reason == NoConnection("w1")


async def test_sigstop_is_detected_and_the_node_does_not_rejoin_silently(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """A stopped node is declared down within the bound; resumed, it learns its sessions ended."""
    async with (
        Node("t", transport=make_transport()) as t,
        t.process(trap_exits=True, name="observer") as me,
        node_process(nats_server, "w1", tmp_path) as w1,
    ):
        pid, ref = await spawn_remote(me, "w1", "test.report_exit", "observer", "t")
        started = time.monotonic()
        w1.signal(signal.SIGSTOP)
        assert await me.receive(ExitSignal, timeout=DETECTION_LIMIT) == ExitSignal(pid, NoConnection("w1"))
        assert await me.receive(Down, timeout=DETECTION_LIMIT) == Down(ref, pid, NoConnection("w1"))
        assert time.monotonic() - started < DETECTION_LIMIT
        w1.signal(signal.SIGCONT)
        # The resumed node's side of the link fires too: its process reports NoConnection.
        report = await me.receive(tuple, timeout=DETECTION_LIMIT)
        assert report == ("exit-seen", pid, me.pid, NoConnection("t"))
        # And new work across the same pair of nodes succeeds.
        echo, _ = await spawn_remote(me, "w1", "test.echo")
        assert await me.call(echo, "back", timeout=10) == ("echo", "back")


async def test_a_server_restart_faster_than_the_bound_keeps_the_sessions(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """A server restarted within the detection bound: both nodes reconnect and their session
    goes on (nothing was lost), so the link and the monitor across it still hold."""
    transport = make_transport()
    async with (
        Node("t", transport=transport) as t,
        t.process(trap_exits=True, name="observer") as me,
        node_process(nats_server, "w1", tmp_path),
    ):
        echo, ref = await spawn_remote(me, "w1", "test.echo")  # linked and monitored
        before = transport.statistics()
        started = time.monotonic()
        await anyio.to_thread.run_sync(nats_server.restart)
        # Only once w1 reads its subjects again may anything be sent to it: what is sent
        # before is lost, and a loss ends the session (tested elsewhere).
        await wait_until_subscribed(url_with_credentials(nats_server), "w1")
        assert time.monotonic() - started < 1.5  # within the tests' bound
        assert (await statistics_of(me, "w1"))["reconnects"] == 1
        assert await me.call(echo, "after restart", timeout=10) == ("echo", "after restart")
        after = transport.statistics()
        assert after.reconnects == before.reconnects + 1
        assert after.sessions_ended == before.sessions_ended
        me.send(echo, "crash")
        down = await me.receive(Down, timeout=10)
        assert down.ref == ref and down.pid == echo and isinstance(down.reason, Crashed)
        exit_signal = await me.receive(ExitSignal, timeout=10)
        assert exit_signal.sender == echo and isinstance(exit_signal.reason, Crashed)


async def test_a_server_down_longer_than_the_bound_ends_sessions_and_new_work_succeeds(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """A server down for longer than the detection bound ends every session (both sides);
    once it is back, new work succeeds."""
    async with (
        Node("t", transport=make_transport()) as t,
        t.process(trap_exits=True, name="observer") as me,
        node_process(nats_server, "w1", tmp_path),
    ):
        pid, ref = await spawn_remote(me, "w1", "test.sleeper")
        w1_before = await statistics_of(me, "w1")
        await anyio.to_thread.run_sync(nats_server.stop)
        assert await me.receive(ExitSignal, timeout=DETECTION_LIMIT) == ExitSignal(pid, NoConnection("w1"))
        assert await me.receive(Down, timeout=DETECTION_LIMIT) == Down(ref, pid, NoConnection("w1"))
        await anyio.to_thread.run_sync(nats_server.start)
        with anyio.fail_after(DETECTION_LIMIT * 2):
            while True:
                try:
                    echo, _ = await spawn_remote(me, "w1", "test.echo", timeout=2)
                    break
                except RemoteSpawnFailed:
                    continue  # still reconnecting
        assert await me.call(echo, "after restart", timeout=10) == ("echo", "after restart")
        w1_after = await statistics_of(me, "w1")
        assert w1_after["sessions_ended"] > w1_before["sessions_ended"]  # its side ended too
        assert w1_after["reconnects"] == w1_before["reconnects"] + 1


async def test_malformed_and_unregistered_payloads_are_dropped_and_counted(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """Garbage and unknown types published onto a node's subject are dropped and counted."""
    import nats

    async with (
        node_process(nats_server, "w1", tmp_path) as w1,
        Node("t", transport=make_transport()) as t,
        t.process() as me,
    ):
        echo, _ = await spawn_remote(me, "w1", "test.echo")
        before = await statistics_of(me, "w1")
        subject = f"rs.node.w1.{w1.incarnation}.intruder"
        unknown_type = msgspec.msgpack.encode(
            msgspec.msgpack.Ext(2, msgspec.msgpack.encode(["app.Unknown", 1]))
        )
        payloads = [
            b"\xc1 not msgpack",
            b"",
            msgspec.msgpack.encode([3, 0, "intruder"]),  # a header cut short
            msgspec.msgpack.encode([1, 0, "intruder", 1, 1, 0, msgspec.Raw(unknown_type)]),  # old version
            msgspec.msgpack.encode([3, 0, "other", 1, 1, 0, msgspec.Raw(encode({"not": "a signal"}))]),
        ]
        raw = await nats.connect(nats_server.url, user="node", password="node-secret")
        try:
            for payload in payloads:
                await raw.publish(subject, payload)
            await raw.flush()
        finally:
            await raw.close()
        assert await me.call(echo, "still serving", timeout=10) == ("echo", "still serving")
        with anyio.fail_after(10):
            while (await statistics_of(me, "w1"))["decode_errors"] < before["decode_errors"] + len(payloads):
                await anyio.sleep(0.05)
        assert (await statistics_of(me, "w1"))["decode_errors"] == before["decode_errors"] + len(payloads)
        assert await me.call(echo, "and still", timeout=10) == ("echo", "and still")


async def test_wrong_token_is_refused_clearly(token_server: NatsServer, tmp_path: Path) -> None:
    """A wrong token: attaching raises NatsAuthenticationError; the node command exits 2."""
    with pytest.raises(NatsAuthenticationError, match="refused"):
        async with Node("t", transport=NatsTransport(token_server.url, token="wrong-token")):
            pass
    host = token_server.url.split("://", 1)[1]
    result = await anyio.run_process(
        [
            __import__("sys").executable,
            "-m",
            "refcount_starter.node_main",
            "--nats",
            f"nats://wrong-token@{host}",
            "--name",
            "w1",
        ],
        check=False,
    )
    assert result.returncode == 2
    assert b"refused" in result.stderr
    async with Node("t", transport=NatsTransport(token_server.url, token="right-token")) as t, t.process():
        pass


async def test_a_graceful_stop_of_a_node_process_ends_its_sessions(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """SIGTERM: the node stops its processes; their watchers elsewhere learn it."""
    async with (
        Node("t", transport=make_transport()) as t,
        t.process(trap_exits=True) as me,
        node_process(nats_server, "w1", tmp_path) as w1,
    ):
        _, ref = await spawn_remote(me, "w1", "test.sleeper")
        w1.signal(signal.SIGTERM)
        down = await me.receive(Down, timeout=DETECTION_LIMIT)
        assert down.ref == ref
        assert down.reason in (Shutdown("node stopping"), NoConnection("w1"))
        with anyio.fail_after(10):
            assert await w1.process.wait() == 0


@pytest.mark.parametrize("how", ["surrogate", "deep"])
async def test_a_crash_that_cannot_be_encoded_still_reaches_the_watchers(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path, how: str
) -> None:
    """Regression (issue 12, case 3): a process on a node process crashes with a lone
    surrogate in its exception's text (a non-UTF-8 file name), or exits with a reason nested
    too deep: its link and monitor on another node still fire, with the codec's stand-in of
    the same kind (a ``Crashed`` stays a ``Crashed``, a ``Shutdown`` a ``Shutdown``), and the
    node process goes on serving."""
    async with (
        node_process(nats_server, "w1", tmp_path),
        Node("t", transport=make_transport()) as t,
        t.process(trap_exits=True) as me,
    ):
        pid, ref = await spawn_remote(me, "w1", "test.exit_oddly", how)
        me.send(pid, "go")
        exit_signal = await me.receive(ExitSignal, timeout=10)
        kind = Crashed if how == "surrogate" else Shutdown
        assert exit_signal.sender == pid and type(exit_signal.reason) is kind
        down = await me.receive(Down, timeout=10)
        assert down.ref == ref and down.reason == exit_signal.reason
        if how == "surrogate":
            assert "report-" in exit_signal.reason.message
        echo, _ = await spawn_remote(me, "w1", "test.echo")
        assert await me.call(echo, "still serving", timeout=10) == ("echo", "still serving")
