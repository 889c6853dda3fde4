"""``python -m refcount_starter observe``: one snapshot as JSON, and the options it refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from refcount_starter.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refcount_starter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_observe_json_shows_a_tree_and_a_starter_with_its_holders(backend: str) -> None:
    """With no URL, observe --json runs the demo's system and prints one snapshot of it."""
    result = run_cli("observe", "--json", "--backend", backend)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (node,) = json.loads(result.stdout)["nodes"]
    names = node["registered"]
    kinds = {p["pid"]: p["kind"] for p in node["processes"]}
    team_a = next(s for s in node["supervisors"] if s["pid"] == names["team-a"])
    assert {c["key"]: c["state"] for c in team_a["children"]} == {
        "cache": "running",
        "db": "running",
        "flaky": "running",
    }
    starters = {s["pid"]: s for s in node["starters"]}
    cache = starters[names["cache-starter"]]
    assert cache["holders"] == [names["team-a"]] and not cache["owner_holds"]
    assert cache["references"][0]["key"] == "cache"
    db = starters[names["db-starter"]]
    assert {names["team-a"], names["team-b"], names["observe-demo"]} == set(db["holders"])
    assert all(kinds[h] == "supervisor" for h in db["holders"] if h != names["observe-demo"])
    assert kinds[cache["pid"]] == "starter"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--host", "0.0.0.0"), "give --token"),
        (("--token", "short"), "at least 16 printable"),
        (("--port", "70000"), "from 0 to 65,535"),
        (("--interval", "0"), "seconds from 0.05"),
        (("--churn-interval", "nan"), "seconds from 0.05"),
    ],
)
def test_bad_observe_options_are_one_line_and_status_2(
    args: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A page off loopback without a token, and every malformed number, stop before any work."""
    with pytest.raises(SystemExit) as exc:
        main(["observe", *args])
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert expected in err and len(err.strip().splitlines()) == 1
    assert "short" not in err  # a token is never echoed


def test_a_port_in_use_is_one_line_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    """The page cannot listen on a port another socket holds: one line, status 1, no traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["observe", "--port", str(port)]) == 1
    _, err = capsys.readouterr()
    assert err.strip() == f"error: cannot serve on 127.0.0.1:{port}: Address already in use"


def test_without_the_observe_extra() -> None:
    """Without Starlette and Hypercorn, --json and the snapshot service work, and the page says
    which extra it needs."""
    blocked = "import sys; sys.modules['starlette'] = sys.modules['hypercorn'] = None; "
    script = (
        blocked + "import refcount_starter.observe.cluster; "
        "from refcount_starter.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120, check=False
        )

    as_json = run("observe", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["nodes"][0]["starters"]
    page = run("observe", "--port", "0")
    assert page.returncode == 2
    assert "pip install 'refcount_starter[observe]'" in page.stderr
    refused = run("observe", "--host", "0.0.0.0")
    assert refused.returncode == 2 and "give --token" in refused.stderr
