"""Snapshots across nodes: each node's snapshot service answers an observer on another node."""

from __future__ import annotations

import pytest

from refcount_starter.observe.cluster import SNAPSHOT_SERVICE, ask_nodes, start_snapshot_service
from refcount_starter.runtime import InMemoryNetwork, NameTaken, Node, Process
from refcount_starter.supervisor import RestartOne
from refcount_starter.supervisor import start as start_supervisor

pytestmark = pytest.mark.anyio


async def worker(p: Process) -> None:
    await p.receive(str)


async def test_an_observer_sees_three_nodes() -> None:
    """Each node answers with its own snapshot; a node that runs no service is shown with an error."""
    network = InMemoryNetwork()
    async with (
        Node("a", transport=network.transport()) as a,
        Node("b", transport=network.transport()) as b,
        Node("c", transport=network.transport()) as c,
        Node("quiet", transport=network.transport()),
        Node("observer", transport=network.transport()) as observer,
        b.process() as on_b,
        observer.process() as me,
    ):
        for node in (a, b, c):
            start_snapshot_service(node)
        with pytest.raises(NameTaken):
            start_snapshot_service(a)
        sup = await start_supervisor(on_b, RestartOne(), [], name="sup-on-b")
        documents = await ask_nodes(me, ["c", "a", "b", "quiet"], timeout=0.5)
        assert [d["node"] for d in documents] == ["a", "b", "c", "quiet"]
        by_node = {d["node"]: d for d in documents}
        assert by_node["quiet"]["error"] == "no answer within 0.5 s"
        assert by_node["b"]["supervisors"][0]["pid"] == str(sup.pid)
        assert by_node["b"]["registered"]["sup-on-b"] == str(sup.pid)
        assert by_node["a"]["registered"] == {SNAPSHOT_SERVICE: str(a.whereis(SNAPSHOT_SERVICE))}
        assert by_node["a"]["processes_total"] == 1 and by_node["a"]["transport"] is None
        # A second round: the late answers of the first one are not taken for its own.
        again = await ask_nodes(me, ["a"], timeout=0.5)
        assert [d["node"] for d in again] == ["a"] and "error" not in again[0]
        del c
