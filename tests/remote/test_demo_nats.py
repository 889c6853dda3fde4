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
