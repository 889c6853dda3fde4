"""The command line: the demo, the benchmark suite, help and errors, as a user runs them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import anyio
import pytest

from refcount_starter import node_main
from refcount_starter.cli import check_node_arguments, main
from refcount_starter.demo import run_cycles


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refcount_starter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_demo_json_shows_the_leak_and_its_fix() -> None:
    """demo --json: the unmanaged starter leaks one process per cycle, the reference-counted none."""
    result = run_cli("demo", "--cycles", "50", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cycles"] == 50
    unmanaged, refcounted = report["unmanaged"], report["refcounted"]
    assert unmanaged["live_after"] - unmanaged["live_before"] == 50
    assert refcounted["live_after"] == refcounted["live_before"]
    assert refcounted["starters_alive_after"] == 0
    assert report["shared"]["live_after"] == report["shared"]["live_before"]
    assert (
        "is gone" in report["stale_copy_error"]
        and "0003-stale-starter-pid-hazard" in report["stale_copy_error"]
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_series_rise_for_unmanaged_and_stay_flat_for_refcounted(backend: str) -> None:
    """The data behind the plot: the unmanaged line rises with the cycles, the other stays at 0."""
    report = anyio.run(lambda: run_cycles(40, sample_every=5), backend=backend)
    unmanaged = [leaked for _, leaked in report.unmanaged_series]
    assert unmanaged == sorted(unmanaged) and unmanaged[-1] > unmanaged[0]
    assert {leaked for _, leaked in report.refcounted_series} == {0}


def test_demo_plot_renders_a_png(tmp_path: Path) -> None:
    """demo --plot FILE.png writes a PNG picture."""
    pytest.importorskip("matplotlib")
    target = tmp_path / "dpp84.png"
    result = run_cli("demo", "--cycles", "20", "--json", "--plot", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_json_has_the_documented_shape() -> None:
    """bench --quick --json --only: one JSON object with oriented ratios per result."""
    result = run_cli("bench", "--quick", "--json", "--only", "pingpong,spawn", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"python", "backend", "results"} <= set(document)
    assert [r["name"] for r in document["results"]] == ["pingpong", "spawn"]
    for r in document["results"]:
        assert {"name", "value", "unit", "baseline", "ratio", "higher_is_better"} <= set(r)
        assert r["ratio"] == pytest.approx(r["value"] / r["baseline"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bench", "--only", "nope"), "unknown benchmark(s) 'nope'"),
        (("demo", "--cycles", "zero"), "expected a whole number from 1 to 10,000,000, got 'zero'"),
        (
            ("demo", "--plot", "/nonexistent-folder/dpp84.png"),
            "the folder '/nonexistent-folder' does not exist",
        ),
        (("node", "--nats", "http://127.0.0.1:4222", "--name", "n"), "expected a NATS server URL"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_command_line_errors_are_one_clear_line(args: tuple[str, ...], expected: str) -> None:
    """A bad command line is one clear line on stderr with status 2, never a traceback."""
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


# -- every bad input, checked before any work starts ---------------------------------------------

NODE = ("node", "--nats", "nats://127.0.0.1:4222", "--name", "n1")


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any start of work (an event loop, a node) fail the test."""

    def started(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(anyio, "run", started)
    monkeypatch.setattr(node_main, "run_node", started)


def refused(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command line in this process; assert status 2 and one line on stderr; return it."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert not out
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


_HOSTILE = [
    # demo
    (("demo", "--cycles", "0"), "--cycles: expected a whole number from 1 to 10,000,000, got '0'"),
    (("demo", "--cycles", "10000001"), "got '10000001'"),
    (("demo", "--cycles", "-5"), "got '-5'"),
    (("demo", "--cycles", ""), "got ''"),
    (("demo", "--cycles", "1.5"), "got '1.5'"),
    (("demo", "--cycles", "\uff11\uff12"), "got '\uff11\uff12'"),  # fullwidth digits
    (("demo", "--cycles", "9" * 5000), "got '" + "9" * 60 + "'..."),
    (("demo", "--cycles", "3\n4"), "got '3\\n4'"),
    (("demo", "--backend", "curio"), "invalid choice: 'curio'"),
    (("demo", "--nats", "http://127.0.0.1:4222"), "--nats: expected a NATS server URL"),
    (("demo", "--nats", "nats://127.0.0.1:4222", "--backend", "trio"), "cannot be used with --backend trio"),
    (("demo", "--plot", ""), "--plot: expected a file name such as dpp84.png, got ''"),
    (("demo", "--plot", "a\0b.png"), "--plot: expected a file name"),
    (("demo", "--frob", "a\nb"), "unrecognized arguments: --frob a\\nb"),
    # bench
    (("bench", "--only", ","), "--only: expected comma-separated benchmark names, got ','"),
    (("bench", "--only", ""), "got ''"),
    (("bench", "--only", "pingpong,"), "got 'pingpong,'"),
    (("bench", "--only", "nope,pingpong"), "unknown benchmark(s) 'nope'; known: "),
    (("bench", "--only", "pingp\u00f6ng"), "unknown benchmark(s) 'pingp\u00f6ng'"),
    (("bench", "--only", "pingpong, pingpong"), "named more than once: pingpong"),
    (("bench", "--rounds", "0"), "--rounds: expected a whole number from 1 to 1,000, got '0'"),
    (("bench", "--rounds", "1001"), "got '1001'"),
    (("bench", "--rounds", "-1"), "got '-1'"),
    (("bench", "--backend", ""), "invalid choice: ''"),
    # node
    ((*NODE, "--log-level", "NOPE"), "--log-level: expected a logging level (NOTSET, DEBUG, INFO"),
    ((*NODE, "--log-level", ""), "got ''"),
    ((*NODE, "--log-level", "\u0131nfo"), "got '\u0131nfo'"),  # dotless i, which upper() maps to I
    (
        (*NODE, "--heartbeat-interval", "0"),
        "--heartbeat-interval: expected a number of seconds from 0.01 to 3600",
    ),
    ((*NODE, "--heartbeat-interval", "-1"), "got '-1'"),
    ((*NODE, "--heartbeat-interval", "nan"), "got 'nan'"),
    ((*NODE, "--heartbeat-interval", "inf"), "got 'inf'"),
    ((*NODE, "--heartbeat-interval", "1e400"), "got '1e400'"),
    ((*NODE, "--heartbeat-interval", "3601"), "got '3601'"),
    ((*NODE, "--heartbeat-interval", "fast"), "got 'fast'"),
    (
        (*NODE, "--heartbeat-misses", "0"),
        "--heartbeat-misses: expected a whole number from 1 to 1,000, got '0'",
    ),
    ((*NODE, "--heartbeat-misses", "-3"), "got '-3'"),
    ((*NODE, "--heartbeat-misses", "2.5"), "got '2.5'"),
    (("node", "--nats", "nats://h:4222", "--name", "a.b"), "--name: a node name must be"),
    (("node", "--nats", "nats://h:4222", "--name", ""), "--name: a node name must be"),
    (("node", "--nats", "nats://h:4222", "--name", "a b"), "--name: a node name must be"),
]

_BAD_URLS = [
    "http://127.0.0.1:4222",
    "NATS://127.0.0.1:4222",  # nats-py matches the scheme case-sensitively
    "",
    "nats://",
    ":4222",
    "nats://h:99999",
    "nats://h:0",
    "nats://h:port",
    "nats://[::1",
    "nats://h 4222",
    "nats://h\t:4222",
]


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(("args", "expected"), _HOSTILE)
def test_every_bad_option_is_one_line_and_status_2(
    args: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every hostile value of every option is refused in one line that names it, before any work."""
    line = refused(args, capsys)
    assert expected in line, line
    assert line.startswith("python -m refcount_starter") and line.endswith("(see --help)")
    assert len(line) < 700


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("url", _BAD_URLS)
def test_node_and_demo_refuse_a_url_that_is_not_nats(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--nats takes nats://, tls://, ws:// or wss:// (or a bare host[:port]) with a valid port."""
    for args in (("node", "--nats", url, "--name", "n1"), ("demo", "--nats", url)):
        assert "--nats: expected a NATS server URL such as nats://127.0.0.1:4222" in refused(args, capsys)


@pytest.mark.usefixtures("no_work")
def test_a_refused_url_does_not_show_its_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    """The error for a bad URL with a password in it does not print the password."""
    line = refused(("node", "--nats", "nats://user:hunter2@h:99999", "--name", "n1"), capsys)
    assert "hunter2" not in line and "'nats://***@h:99999'" in line


@pytest.mark.parametrize(
    "url",
    [
        "nats://127.0.0.1:4222",
        "tls://nats.example.com:4222",
        "ws://127.0.0.1:8080",
        "wss://nats.example.com/ws",
        "nats://user:secret@127.0.0.1:4222",
        "nats://[::1]:4222",
        "127.0.0.1:4222",
        "localhost",
    ],
)
def test_node_passes_good_options_on(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Good values reach the node command, the log level normalised."""
    seen: list[list[str]] = []

    def run_node(argv: Sequence[str]) -> int:
        seen.append(list(argv))
        return 0

    monkeypatch.setattr(node_main, "run_node", run_node)
    args = ["--nats", url, "--name", "n1", "--log-level", "debug", "--heartbeat-interval", "0.5"]
    assert main(["node", *args, "--heartbeat-misses", "3"]) == 0
    assert seen == [
        [
            "--nats",
            url,
            "--name",
            "n1",
            "--heartbeat-interval=0.5",
            "--heartbeat-misses=3",
            "--log-level=DEBUG",
        ]
    ]


def test_bench_takes_names_with_spaces_around_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """--only ' pingpong , spawn ' runs pingpong and spawn."""
    import refcount_starter.bench

    asked: list[list[str] | None] = []

    def run_suite(names: list[str] | None, options: object, progress: object = None) -> dict[str, object]:
        asked.append(names)
        return {"python": "3", "backend": "asyncio", "results": [], "skipped": []}

    monkeypatch.setattr(refcount_starter.bench, "run_suite", run_suite)
    assert main(["bench", "--json", "--only", " pingpong , spawn "]) == 0
    assert asked == [["pingpong", "spawn"]]


def test_node_command_checks_its_options_before_importing_modules(capsys: pytest.CaptureFixture[str]) -> None:
    """python -m refcount_starter.node_main refuses a bad option before it imports or connects."""
    argv = [
        "--nats",
        "nats://127.0.0.1:1",
        "--name",
        "n1",
        "--import",
        "no_such_module_here",
        "--log-level",
        "NOPE",
    ]
    assert node_main.run_node(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: argument --log-level: expected a logging level "
        "(NOTSET, DEBUG, INFO, WARN, WARNING, ERROR, CRITICAL, FATAL), got 'NOPE'\n"
    )


def test_check_node_arguments_names_the_option() -> None:
    """check_node_arguments raises ValueError naming the option, the value and what was expected."""
    args = argparse.Namespace(
        nats="nats://h:4222", name="n1", heartbeat_interval=float("nan"), heartbeat_misses=5, log_level="INFO"
    )
    with pytest.raises(ValueError, match=r"argument --heartbeat-interval: expected .* got 'nan'"):
        check_node_arguments(args)
    check_node_arguments(argparse.Namespace(**{**vars(args), "heartbeat_interval": 1.0}))


# -- demo --plot: checked before the run ---------------------------------------------------------


@pytest.fixture
def with_matplotlib() -> None:
    pytest.importorskip("matplotlib")


@pytest.mark.usefixtures("no_work", "with_matplotlib")
def test_plot_to_a_missing_folder_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """demo --plot into a folder that does not exist fails at once, even with the largest run."""
    target = tmp_path / "missing" / "dpp84.png"
    line = refused(("demo", "--cycles", "10000000", "--plot", str(target)), capsys)
    assert f"the folder {str(target.parent)!r} does not exist" in line


@pytest.mark.usefixtures("no_work", "with_matplotlib")
def test_plot_into_a_file_or_onto_a_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path under a regular file, or a folder itself, is not a file the plot can write."""
    regular = tmp_path / "notes.txt"
    regular.write_text("x")
    assert f"{str(regular)!r} is not a folder" in refused(("demo", "--plot", str(regular / "a.png")), capsys)
    assert "it is a folder" in refused(("demo", "--plot", str(tmp_path)), capsys)


@pytest.mark.usefixtures("no_work", "with_matplotlib")
@pytest.mark.parametrize("name", ["dpp84.nope", "dpp84", "dpp84.png.", "dpp84.exe"])
def test_plot_format_matplotlib_cannot_write_is_refused(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The extension is the format: one matplotlib cannot write is refused, listing those it can."""
    line = refused(("demo", "--plot", str(tmp_path / name)), capsys)
    assert "expected a file name ending in one of" in line and ".png" in line and ".svg" in line
    assert not (tmp_path / name).exists()


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (a read-only one, or /sys as root)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    for folder in (locked, Path("/sys")):
        try:
            (folder / "probe.png").open("xb").close()
        except PermissionError:
            return folder
        except OSError:
            continue
        (folder / "probe.png").unlink()
    pytest.skip("no folder here refuses this process's writes")


@pytest.mark.usefixtures("no_work", "with_matplotlib")
def test_plot_into_a_folder_that_is_not_writable_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """demo --plot into a folder without write permission fails at once, saying so."""
    folder = _unwritable_folder(tmp_path)
    try:
        line = refused(("demo", "--plot", str(folder / "dpp84.png")), capsys)
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert "Permission denied" in line


@pytest.mark.usefixtures("no_work", "with_matplotlib")
def test_plot_check_leaves_no_file_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The check that the plot can be written removes what it created when the run is refused."""
    target = tmp_path / "dpp84.svg"
    refused(("demo", "--plot", str(target), "--nats", "nats://127.0.0.1:4222"), capsys)
    assert not target.exists()


def test_plot_without_matplotlib_is_refused_before_the_run(tmp_path: Path) -> None:
    """Without matplotlib, demo --plot fails at once with the extra to install."""
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from refcount_starter.cli import main; "
        f"sys.exit(main(['demo', '--cycles', '10000000', '--plot', {str(tmp_path / 'a.png')!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "python -m refcount_starter demo: error: argument --plot: --plot needs matplotlib "
        "(pip install 'refcount_starter[plot]') (see --help)"
    ]


@pytest.mark.parametrize("command", [(), ("demo",), ("bench",), ("node",)])
def test_help_describes_every_command(command: tuple[str, ...]) -> None:
    """--help works for the program and each subcommand, and names its options."""
    result = run_cli(*command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout
    if command == ("demo",):
        assert "--cycles" in result.stdout and "--plot" in result.stdout and "--nats" in result.stdout
    if command == ("bench",):
        assert "--quick" in result.stdout and "--only" in result.stdout and "--json" in result.stdout
