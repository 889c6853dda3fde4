"""The command line: ``python -m refcount_starter demo | bench | node``.

Errors on the command line are one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    demo.add_argument("--cycles", type=_positive_int, default=1000, help="cycles per run (default 1000)")
    demo.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    demo.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="async library")
    demo.add_argument(
        "--plot", metavar="FILE.png", help="draw live processes against cycles (needs matplotlib)"
    )
    demo.add_argument("--nats", metavar="URL", help="run across two nodes connected through this NATS server")
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
    bench.add_argument("--only", metavar="A,B", help="comma-separated benchmark names to run")
    bench.add_argument("--quick", action="store_true", help="small sizes: the suite ends within a minute")
    bench.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="async library")
    bench.add_argument("--rounds", type=_positive_int, default=5, help="interleaved rounds (default 5)")
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
        help="the NATS server, e.g. nats://127.0.0.1:4222, or a cluster's servers separated by commas",
    )
    node.add_argument(
        "--servers-in-order", action="store_true", help="try the servers in the order given (default: random)"
    )
    node.add_argument("--name", required=True, help="the node's name, unique among connected nodes")
    node.add_argument(
        "--import",
        dest="imports",
        metavar="MODULE",
        action="append",
        default=[],
        help="import MODULE to register its closures (repeatable)",
    )
    node.add_argument("--heartbeat-interval", metavar="S", help="seconds between heartbeats (default 1.0)")
    node.add_argument(
        "--heartbeat-misses", metavar="N", help="missed heartbeats before a peer is down (default 5)"
    )
    node.add_argument("--log-level", metavar="LEVEL", help="logging level, e.g. INFO or DEBUG")
    return parser


def _progress(name: str) -> None:
    if sys.stderr.isatty():
        print(f"running {name} ...", file=sys.stderr, flush=True)


def _bench(args: argparse.Namespace) -> int:
    from .bench import BENCHMARKS, Options, run_suite
    from .bench.suite import _load_all

    if args.list:
        _load_all()
        for name in BENCHMARKS:
            print(name)
        return 0
    names = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    options = Options(quick=args.quick, backend=args.backend, rounds=args.rounds)
    try:
        document = run_suite(names, options, progress=_progress)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
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
        print(f"{name:<22} skipped: it cannot run here (nats_roundtrip needs asyncio and a nats-server)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.cluster:
        from .demo_nats import run_cluster_demo

        return run_cluster_demo(as_json=args.json)
    from .demo import run_demo

    return run_demo(args)


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
    args = _parser().parse_args(argv)
    handlers = {"demo": _demo, "bench": _bench, "node": _node}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
