"""``python -m refcount_starter node``: one node in its own OS process, until SIGTERM/SIGINT.

The node connects to a NATS server, imports the given modules (so that their
``@remotable`` functions and ``register_type`` classes are known here), starts its spawner
(remote spawn, see ``service.py``; it can also host reference-counted starters for other
nodes, see ``starter/remote.py``) and serves until it receives SIGTERM or SIGINT; then it
stops its processes and says goodbye to its peers.

When it is ready it prints one line to stdout, ``READY <name> <incarnation>``, so that a
script (or a test) can wait for it. If a live node already has its name, it prints one line
to stderr and exits with status 2 (ADR-0012).

Options come from the command line, else from the environment (``NatsOptions.from_env``):
``RS_NATS_URL`` (one server, or the servers of a cluster separated by commas: the node
reconnects to another one when its server goes away, ADR-0013; ``--servers-in-order`` tries
them in the order given); credentials in the URL (``nats://user:password@host:4222``,
``nats://token@host:4222``) or ``RS_NATS_TOKEN``, ``RS_NATS_USER`` / ``RS_NATS_PASSWORD``,
``RS_NATS_NKEY_SEED`` (a seed file), ``RS_NATS_CREDS`` (a ``.creds`` file); and
``RS_NATS_HEARTBEAT_INTERVAL``, ``RS_NATS_HEARTBEAT_MISSES``, ``RS_NATS_MAX_MESSAGE_SIZE``,
``RS_NATS_SUBJECT_PREFIX``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

import anyio

from .remote.natsoptions import NatsOptions

__all__ = ["build_parser", "run_node"]

_log = logging.getLogger("refcount_starter.node_main")


def build_parser() -> argparse.ArgumentParser:
    """The node command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m refcount_starter node",
        description="Run a node until SIGINT/SIGTERM, hosting the closures of the imported modules.",
    )
    parser.add_argument(
        "--nats",
        metavar="URL",
        help=(
            "the NATS server, e.g. nats://127.0.0.1:4222, or the servers of a cluster separated "
            "by commas (default: $RS_NATS_URL)"
        ),
    )
    parser.add_argument(
        "--servers-in-order",
        action="store_true",
        help="try the servers in the order given (default: in a random order)",
    )
    parser.add_argument("--name", required=True, help="the node's name, unique among connected nodes")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (its @remotable functions become startable here); repeatable",
    )
    parser.add_argument("--heartbeat-interval", type=float, metavar="SECONDS", help="default 1.0")
    parser.add_argument("--heartbeat-misses", type=int, metavar="N", help="default 5")
    parser.add_argument(
        "--max-message-size",
        type=int,
        metavar="BYTES",
        help="the largest message sent or accepted (default 64 MiB)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return parser


def run_node(argv: Sequence[str]) -> int:
    """Run a node as the ``node`` command describes; return the exit status.

    Args:
        argv: The command's arguments, without the program and command names, e.g.
            ``["--nats", "nats://127.0.0.1:4222", "--name", "n1", "--import", "app.tasks"]``.

    Returns:
        0 after a clean stop on SIGTERM/SIGINT; 2 for bad arguments, a module that cannot be
        imported, refused credentials, an unreachable server, or a name a live node has.
    """
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    from .cli import check_node_arguments

    try:
        check_node_arguments(args)  # before any import, connection or log setup
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for module in args.imports:
        try:
            importlib.import_module(module)
        except Exception as exc:
            print(f"error: cannot import {module!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    from .remote.errors import NatsConnectError, NodeNameTaken
    from .remote.natsoptions import NatsOptions

    try:
        options = NatsOptions.from_env(
            servers=args.nats,
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_misses=args.heartbeat_misses,
            max_message_size=args.max_message_size,
            randomize_servers=False if args.servers_in_order else None,
        )
        anyio.run(_serve, args, options, backend="asyncio")
    except (NatsConnectError, NodeNameTaken, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(args: argparse.Namespace, options: NatsOptions) -> None:
    from .observe.cluster import start_snapshot_service
    from .remote.natstransport import NatsTransport
    from .remote.service import INFO, serve_info, start_spawner
    from .runtime import Node
    from .starter import remote as _remote_starter  # noqa: F401  (this node can host starters)

    transport = NatsTransport(options)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with Node(args.name, transport=transport) as node:
            start_spawner(node)
            start_snapshot_service(node, transport)  # observers on other nodes see this one
            node.spawn(serve_info, transport.statistics, name=INFO)
            print(f"READY {node.name} {node.incarnation}", flush=True)
            async for signum in signals:
                _log.info("node %s stopping on signal %s", node.name, signum)
                break


if __name__ == "__main__":
    sys.exit(run_node(sys.argv[1:]))
