"""``python -m refcount_starter demo --nats URL``: the DPP-84 cycle across two node processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .natsserver import NatsServer
from .nodeproc import ROOT, url_with_credentials

pytestmark = [pytest.mark.nats, pytest.mark.timeout(180)]


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "refcount_starter", "demo", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
        env=env,
    )


def test_the_demo_across_nodes_leaks_nothing_and_names_the_stale_starter(nats_server: NatsServer) -> None:
    done = _demo("--nats", url_with_credentials(nats_server), "--cycles", "5", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"cycles", "refcounted", "stale_copy_error", "nodes"}
    assert report["cycles"] == 5
    refcounted = report["refcounted"]
    assert refcounted["live_after"] == refcounted["live_before"]
    assert refcounted["starters_alive_after"] == 0
    starter_node = report["nodes"]["starter"]
    assert starter_node.startswith("demo-starter.")
    assert report["nodes"]["supervisor"].startswith("demo-supervisor.")
    # The stale copy's error names the starter's pid, on the starter's node.
    assert f"<{starter_node}." in report["stale_copy_error"]
    assert "stale copy" in report["stale_copy_error"]


def test_the_demo_across_nodes_prints_text(nats_server: NatsServer) -> None:
    done = _demo("--nats", url_with_credentials(nats_server), "--cycles", "2")
    assert done.returncode == 0, done.stderr
    assert "leaked 0" in done.stdout and "StarterGone: child 'db'" in done.stdout


def test_the_demo_across_nodes_says_when_the_server_is_unreachable(nats_server: NatsServer) -> None:
    url = url_with_credentials(nats_server)
    nats_server.stop()
    done = _demo("--nats", url, "--cycles", "1")
    assert done.returncode == 2
    assert "error:" in done.stderr


def test_the_cluster_demo_shows_both_sides_of_a_partition_and_a_heal() -> None:
    """``demo --nats URL --cluster``: three local servers, one cut off and healed; each side
    saw the other down, the starter dropped the cut-off holder, the restart failed and, after
    the heal, was refused until the supervisor acquired again; nothing leaked."""
    done = _demo("--nats", "nats://unused", "--cluster", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["servers"] == ["rs-cluster-0", "rs-cluster-1", "rs-cluster-2"]
    bound = report["bound"]
    assert 0 < report["a_side"]["saw_demo_b_down_after_s"] < bound + 3
    assert 0 < report["b_side"]["saw_demo_a_down_after_s"] < bound + 3
    assert report["a_side"]["reason"] == "NoConnection(node='demo-b')"
    assert report["b_side"]["reason"] == "NoConnection(node='demo-a')"
    assert report["a_side"]["starter_references"] == 0
    assert report["a_side"]["children_on_demo_a"] == 0
    assert report["b_side"]["restart_failed_with"] == "NoConnection(node='demo-a')"
    assert report["b_side"]["restarts_counted"] >= 1
    assert "StarterRefused" in report["heal"]["restart_refused_with"]
    assert report["heal"]["starter_references_after_acquiring_again"] == 1
    assert report["heal"]["children_on_demo_a"] == 1
    assert report["heal"]["starter_exit"] == "Normal()"
    assert report["leaked"] == 0
