"""Node names are unique: a node whose name a live node has refuses to start (ADR-0012).

Regression test for issue 12, case 8: a second ``node --name w`` started while ``w`` was
alive, printed READY and shadowed the live node.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest

from refcount_starter.remote.errors import NodeNameTaken
from refcount_starter.remote.natstransport import NatsTransport
from refcount_starter.remote.service import spawn_remote
from refcount_starter.runtime import Down, Node

from .natsserver import NatsServer
from .nodeproc import ROOT, node_process, url_with_credentials

pytestmark = [pytest.mark.nats, pytest.mark.anyio, pytest.mark.timeout(90)]

MakeTransport = Callable[..., NatsTransport]


def node_command(server: NatsServer, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "refcount_starter",
        "node",
        "--nats",
        url_with_credentials(server),
        "--name",
        name,
    ]


async def test_a_second_node_process_with_a_live_name_exits_2_with_one_line(
    nats_server: NatsServer, make_transport: MakeTransport, tmp_path: Path
) -> None:
    """``node --name w1`` while w1 runs: one line on stderr, exit status 2; the live node
    goes on undisturbed."""
    async with (
        node_process(nats_server, "w1", tmp_path) as w1,
        Node("t", transport=make_transport()) as t,
        t.process() as me,
    ):
        echo, ref = await spawn_remote(me, "w1", "test.echo")
        result = await anyio.run_process(node_command(nats_server, "w1"), check=False, cwd=ROOT)
        assert result.returncode == 2
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert "'w1' is taken by a live node" in lines[0] and str(w1.incarnation) in lines[0]
        assert b"READY" not in result.stdout
        assert await me.call(echo, "undisturbed", timeout=10) == ("echo", "undisturbed")
        with pytest.raises(TimeoutError):
            await me.receive(Down, where=lambda d: d.ref == ref, timeout=0)


async def outcome(process: anyio.abc.Process, outcomes: list[tuple[str, str]]) -> None:
    """Append ("ready", line) once the process prints READY, or ("exit N", stderr)."""
    assert process.stdout is not None and process.stderr is not None
    line = b""
    with contextlib.suppress(anyio.EndOfStream):
        while not line.endswith(b"\n"):
            line += await process.stdout.receive(1)
    if line.startswith(b"READY"):
        outcomes.append(("ready", line.decode()))
        return
    await process.wait()
    stderr = b""
    async for chunk in process.stderr:
        stderr += chunk
    outcomes.append((f"exit {process.returncode}", stderr.decode()))


async def test_of_two_node_processes_started_together_one_runs_and_one_refuses(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Two ``node --name w`` started at the same moment: exactly one prints READY, the other
    exits 2 with one line (several rounds, to meet the race)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(4):
        name = f"twin{round_}"
        processes = [
            await anyio.open_process(
                node_command(nats_server, name),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=ROOT,
                env=env,
            )
            for _ in range(2)
        ]
        try:
            outcomes: list[tuple[str, str]] = []
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for process in processes:
                        tg.start_soon(outcome, process, outcomes)
            kinds = sorted(kind for kind, _ in outcomes)
            assert kinds == ["exit 2", "ready"], outcomes
            refusal = next(text for kind, text in outcomes if kind == "exit 2")
            assert len(refusal.strip().splitlines()) == 1 and f"{name!r} is taken" in refusal
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
                await process.aclose()


async def test_a_node_with_a_live_name_cannot_attach(make_transport: MakeTransport) -> None:
    """In one OS process too: the second ``Node("x")`` on the server raises NodeNameTaken."""
    async with Node("x", transport=make_transport()) as first:
        with pytest.raises(NodeNameTaken, match="'x' is taken") as taken:
            async with Node("x", transport=make_transport()):
                pass
        assert taken.value.holder == first.incarnation
    async with Node("x", transport=make_transport()):
        pass  # free again once the first has left
