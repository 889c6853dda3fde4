"""The command line: ``python -m refcount_starter demo | bench | node | observe``.

Errors on the command line are one clear line on stderr and exit status 2, never a traceback,
and every option is checked before any work starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["check_node_arguments", "main"]

# Sane bounds: beyond them a run would not end in a working day, or a node would flood its
# peers with heartbeats (or notice nothing for an hour).
MAX_CYCLES = 10_000_000
MAX_ROUNDS = 1_000
HEARTBEAT_SECONDS = (0.01, 3600.0)
MAX_HEARTBEAT_MISSES = 1_000
NATS_SCHEMES = ("nats", "tls", "ws", "wss")

# A value shown in an error is cut to this many characters.
_SHOWN = 60


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose error is one line on stderr, without the usage block."""

    def error(self, message: str) -> NoReturn:
        line = message.replace("\r", "\\r").replace("\n", "\\n")
        if len(line) > 10 * _SHOWN:  # keep the start and the reason at the end
            line = f"{line[: 5 * _SHOWN]} ... {line[-4 * _SHOWN :]}"
        self.exit(2, f"{self.prog}: error: {line} (see --help)\n")


def _shown(text: str) -> str:
    """``text`` as an error shows it: quoted, escaped, and cut when long."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + "..."


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        expected = f"expected a whole number from {low:,} to {high:,}"
        try:
            value = int(text) if text.isascii() else None
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"{expected}, got {_shown(text)}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{expected}, got {_shown(text.strip())}")
        return value

    return parse


def _seconds(text: str) -> float:
    low, high = HEARTBEAT_SECONDS
    expected = f"expected a number of seconds from {low:g} to {high:g}"
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{expected}, got {_shown(text)}")
    return value


def _log_level(text: str) -> str:
    levels = logging.getLevelNamesMapping()
    # isascii first: str.upper() maps some non-ASCII letters to ASCII ones (dotless i to I).
    if not (text.isascii() and text.upper() in levels):
        known = ", ".join(sorted(levels, key=levels.__getitem__))
        raise argparse.ArgumentTypeError(f"expected a logging level ({known}), got {_shown(text)}")
    return text.upper()


def _without_credentials(url: str) -> str:
    # An error must not print a token or password given in the URL.
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}***@{tail}" if sep else f"***@{tail}"


def _nats_url(text: str) -> str:
    # Several servers of a cluster, separated by commas: each one must be a NATS URL.
    if "," in text:
        for part in text.split(","):
            _nats_url(part)
        return text
    expected = (
        f"expected a NATS server URL such as nats://127.0.0.1:4222, or several separated by "
        f"commas (scheme {', '.join(NATS_SCHEMES)}), got {_shown(_without_credentials(text))}"
    )
    if not text or not text.isprintable() or " " in text:
        raise argparse.ArgumentTypeError(expected)
    try:
        # Without a scheme, nats-py reads host[:port] as nats://host[:port].
        url = urllib.parse.urlsplit(text if "://" in text else f"nats://{text}")
        port = url.port  # ValueError: not a number, or above 65535
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    # The scheme as typed: nats-py matches it case-sensitively.
    scheme = text.partition("://")[0] if "://" in text else "nats"
    if scheme not in NATS_SCHEMES or not url.hostname or port == 0:
        raise argparse.ArgumentTypeError(expected)
    return text


def _node_name(text: str) -> str:
    from .runtime import Node

    try:
        Node(text)  # the runtime's own rule for a node's name; nothing starts
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _benchmark_names(text: str) -> list[str]:
    from .bench.suite import benchmark_names

    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated benchmark names, got {_shown(text)}")
    known = benchmark_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {', '.join(map(_shown, unknown))}; known: {', '.join(known)}"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"benchmark(s) named more than once: {', '.join(twice)}")
    return names


def _plot_file(text: str) -> str:
    from .demo import check_plot_file

    try:
        check_plot_file(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def check_node_arguments(args: argparse.Namespace) -> None:
    """Check the node command's options as the command line does, before any work starts.

    Args:
        args: The parsed options: ``nats``, ``name``, ``heartbeat_interval``,
            ``heartbeat_misses`` and ``log_level``.

    Raises:
        ValueError: An option's value is refused; the message names the option, the value
            and what was expected.
    """
    checks: tuple[tuple[str, Callable[[str], object]], ...] = (
        ("nats", _nats_url),
        ("name", _node_name),
        ("heartbeat_interval", _seconds),
        ("heartbeat_misses", _whole_number(1, MAX_HEARTBEAT_MISSES)),
        ("log_level", _log_level),
    )
    for dest, check in checks:
        value = getattr(args, dest, None)
        if value is None:
            continue  # not given: the default (or the environment's) applies
        try:
            check(str(value))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"argument --{dest.replace('_', '-')}: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m refcount_starter",
        description=(
            "Erlang/OTP-style processes and supervisors for anyio, with a reference-counted "
            "starter service that does not leak."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="reproduce Cloud Haskell's DPP-84 leak and show the reference-counted fix",
        description=(
            "Run N start_new_child + terminate_child + delete_child cycles with an unmanaged "
            "starter (leaks one process per cycle, as Cloud Haskell 0.1 did) and with the "
            "reference-counted starter (leaks nothing); then share one starter among several "
            "supervisors, and show the StarterGone error a stale copy of a spec gets."
        ),
    )
    demo.add_argument(
        "--cycles",
        metavar="N",
        type=_whole_number(1, MAX_CYCLES),
        default=1000,
        help=f"cycles per run, 1 to {MAX_CYCLES:,} (default 1000)",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    demo.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="async library")
    demo.add_argument(
        "--plot",
        metavar="FILE.png",
        type=_plot_file,
        help="draw live processes against cycles (needs matplotlib; the extension is the format)",
    )
    demo.add_argument(
        "--nats",
        metavar="URL",
        type=_nats_url,
        help="run across two nodes connected through this NATS server (asyncio only; no --plot)",
    )
    demo.add_argument(
        "--cluster",
        action="store_true",
        help="with --nats: run three local nats-servers instead, cut one off and heal it, and print what each side saw",
    )

    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite (ratios against a raw-anyio baseline in the same process)",
        description=(
            "Run the benchmark suite. Each benchmark runs the library and a raw-anyio baseline "
            "in interleaved rounds and prints both medians and their ratio, oriented so that "
            "above 1 is better than the baseline."
        ),
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument(
        "--only", metavar="A,B", type=_benchmark_names, help="comma-separated benchmark names to run"
    )
    bench.add_argument("--quick", action="store_true", help="small sizes: the suite ends within a minute")
    bench.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="async library")
    bench.add_argument(
        "--rounds",
        metavar="N",
        type=_whole_number(1, MAX_ROUNDS),
        default=5,
        help=f"interleaved rounds, 1 to {MAX_ROUNDS:,} (default 5)",
    )
    bench.add_argument("--list", action="store_true", help="list the benchmarks and exit")

    node = commands.add_parser(
        "node",
        help="run a node in this OS process, connected through a NATS server",
        description="Run a node until SIGINT/SIGTERM, hosting the closures of the imported modules.",
    )
    node.add_argument(
        "--nats",
        metavar="URL",
        required=True,
        type=_nats_url,
        help="the NATS server, e.g. nats://127.0.0.1:4222, or a cluster's servers separated by commas",
    )
    node.add_argument(
        "--servers-in-order", action="store_true", help="try the servers in the order given (default: random)"
    )
    node.add_argument(
        "--name", required=True, type=_node_name, help="the node's name, unique among connected nodes"
    )
    node.add_argument(
        "--import",
        dest="imports",
        metavar="MODULE",
        action="append",
        default=[],
        help="import MODULE to register its closures (repeatable)",
    )
    node.add_argument(
        "--heartbeat-interval",
        metavar="S",
        type=_seconds,
        help="seconds between heartbeats (default 1.0)",
    )
    node.add_argument(
        "--heartbeat-misses",
        metavar="N",
        type=_whole_number(1, MAX_HEARTBEAT_MISSES),
        help="missed heartbeats before a peer is down (default 5)",
    )
    node.add_argument(
        "--log-level", metavar="LEVEL", type=_log_level, help="logging level, e.g. INFO or DEBUG"
    )
    _observe_parser(commands)
    return parser


def _port(text: str) -> int:
    return _whole_number(0, 65535)(text)


def _interval(text: str) -> float:
    expected = "expected a number of seconds from 0.05 to 3600"
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not 0.05 <= value <= 3600:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{expected}, got {_shown(text)}")
    return value


def _token(text: str) -> str:
    if len(text) < 16 or not text.isascii() or not text.isprintable() or " " in text:
        # Not shown: a token must not land in a terminal's scrollback or a CI log.
        raise argparse.ArgumentTypeError(
            "expected a token of at least 16 printable ASCII characters, no spaces"
        )
    return text


def _observe_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    observe = commands.add_parser(
        "observe",
        help="watch supervision trees and starters live on a web page (or print one snapshot)",
        description=(
            "Serve a live page of the supervision trees, processes and starters (with the holders "
            "and keys that keep each starter alive). Without --nats it runs the demo's system "
            "(supervisors sharing starters, churning) in this process."
        ),
    )
    observe.add_argument("--json", action="store_true", help="print one snapshot as JSON and exit")
    observe.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1; any other address needs --token)",
    )
    observe.add_argument("--port", type=_port, default=8765, help="port to serve on (default 8765; 0: any)")
    observe.add_argument(
        "--token", type=_token, help="a secret the page asks for (?token=...); needed off loopback"
    )
    observe.add_argument(
        "--interval",
        metavar="S",
        type=_interval,
        default=1.0,
        help="seconds between two refreshes (default 1)",
    )
    observe.add_argument(
        "--churn-interval",
        metavar="S",
        type=_interval,
        default=1.0,
        help="seconds between two changes of the demo's system (default 1)",
    )
    observe.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="async library")
    observe.add_argument(
        "--nats",
        metavar="URL",
        type=_nats_url,
        help="observe a cluster through this NATS server (asyncio only; its nodes run the snapshot service)",
    )
    observe.add_argument(
        "--node",
        dest="nodes",
        metavar="NAME",
        action="append",
        type=_node_name,
        default=[],
        help="with --nats: a node to ask (repeatable); the peers it names are asked too",
    )
    observe.add_argument(
        "--timeout",
        metavar="S",
        type=_interval,
        default=5.0,
        help="with --nats: seconds the nodes get to answer (default 5)",
    )


def _progress(name: str) -> None:
    if sys.stderr.isatty():
        print(f"running {name} ...", file=sys.stderr, flush=True)


def _bench(args: argparse.Namespace) -> int:
    from .bench import Options, run_suite
    from .bench.suite import benchmark_names

    if args.list:
        for name in benchmark_names():
            print(name)
        return 0
    options = Options(quick=args.quick, backend=args.backend, rounds=args.rounds)
    document = run_suite(args.only, options, progress=_progress)
    if args.json:
        print(json.dumps(document))
        return 0
    print(f"Python {document['python']} on {document['backend']}; ratio > 1 is better than raw anyio")
    print(f"{'benchmark':<22} {'ours':>14} {'baseline':>14}  {'ratio':>6}  {'target':>6}  unit")
    for r in document["results"]:
        target = "" if r["target"] is None else f">={r['target']:g}"
        print(
            f"{r['name']:<22} {r['value']:>14,.1f} {r['baseline']:>14,.1f}  {r['ratio']:>6.2f}  {target:>6}  {r['unit']}"
        )
    for name in document["skipped"]:
        print(f"{name:<22} skipped: it cannot run here (the NATS benchmarks need asyncio and a nats-server)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.cluster:
        from .demo_nats import run_cluster_demo

        return run_cluster_demo(as_json=args.json)
    from .demo import run_demo

    return run_demo(args)


def _observe(args: argparse.Namespace) -> int:
    from .observe.command import run_observe

    return run_observe(args)


def _node(args: argparse.Namespace) -> int:
    try:
        from .node_main import run_node
    except ImportError as exc:
        print(
            f"error: the node command needs the nats extra (pip install 'refcount_starter[nats]'): {exc}",
            file=sys.stderr,
        )
        return 2
    argv = ["--nats", args.nats, "--name", args.name, *(f"--import={m}" for m in args.imports)]
    if args.servers_in_order:
        argv.append("--servers-in-order")
    for option in ("heartbeat_interval", "heartbeat_misses", "log_level"):
        value = getattr(args, option)
        if value is not None:
            argv.append(f"--{option.replace('_', '-')}={value}")
    return run_node(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and args.cluster and args.nats is None:
        parser.error("demo: --cluster shows a partition of a cluster across nodes; it needs --nats URL")
    if args.command == "demo" and args.nats is not None:
        if args.plot is not None:
            parser.error("demo: --plot draws the run in this process; it cannot be used with --nats")
        if args.backend != "asyncio":
            parser.error("demo: --nats runs on asyncio (nats-py); it cannot be used with --backend trio")
    if args.command == "observe" and args.nats is not None:
        if not args.nodes:
            parser.error("observe: --nats needs at least one --node NAME to ask")
        if args.backend != "asyncio":
            parser.error("observe: --nats runs on asyncio (nats-py); it cannot be used with --backend trio")
    elif args.command == "observe" and args.nodes:
        parser.error("observe: --node names a node of a cluster; it needs --nats URL")
    if args.command == "observe" and not args.json:
        from .observe.document import is_loopback

        if not is_loopback(args.host) and args.token is None:
            parser.error(f"observe: serving on {_shown(args.host)} reaches other machines: give --token")
    handlers = {"demo": _demo, "bench": _bench, "node": _node, "observe": _observe}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
