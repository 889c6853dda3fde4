"""Supervisor benchmarks: ``restart`` latency against a hand-rolled anyio restart loop, and
the cost growth of child operations (``scale_children``) and of restarts (``restart_window``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .. import supervisor
from ..runtime import Call, Node, Pid, Process
from ..supervisor import TEMPORARY, ChildSpec, RestartLimit, RestartOne
from .suite import Options, Result, benchmark, interleave


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


class _Boom(Exception):
    """The crash the restart benchmarks inject (cheap: no traceback beyond one frame)."""


# -- restart latency: crash -> restarted child answers -----------------------------------------


async def _worker(p: Process, watcher: Pid) -> None:
    p.send(watcher, p.pid)
    while True:
        message = await p.receive()
        if type(message) is Call:
            p.reply(message, "pong")
        else:
            raise _Boom


async def _restart_ours(n: int) -> list[float]:
    latencies: list[float] = []
    async with Node("bench") as node, node.process() as me:
        sup = await supervisor.start(
            me,
            RestartOne(RestartLimit(n + 10, 3600.0)),
            [ChildSpec.worker("w", _worker, me.pid)],
        )
        pid: Pid = await me.receive(Pid)
        for _ in range(n):
            started = time.perf_counter()
            me.send(pid, "crash")
            pid = await me.receive(Pid)
            await me.call(pid, "ping")
            latencies.append(time.perf_counter() - started)
        await sup.shutdown_and_wait()
    return latencies


async def _restart_base(n: int) -> list[float]:
    # A hand-rolled one_for_one: a supervising task restarts a crashed worker task.
    latencies: list[float] = []
    current: list[MemoryObjectSendStream[Any]] = []
    restarted = anyio.Event()

    async def worker(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        send, receive = anyio.create_memory_object_stream[Any](math.inf)
        current.append(send)
        task_status.started()
        async with receive:
            async for message in receive:
                if message == "crash":
                    raise _Boom
                await message.send("pong")

    async def supervise(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        nonlocal restarted
        first = True
        while True:
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(worker)
                    if first:
                        first = False
                        task_status.started()
                    else:
                        restarted.set()
            except* _Boom:
                pass

    async with anyio.create_task_group() as tg:
        await tg.start(supervise)
        for _ in range(n):
            restarted = anyio.Event()
            started = time.perf_counter()
            await current[-1].send("crash")
            await restarted.wait()
            reply_send, reply_receive = anyio.create_memory_object_stream[str](1)
            await current[-1].send(reply_send)
            await reply_receive.receive()
            latencies.append(time.perf_counter() - started)
        tg.cancel_scope.cancel()
    return latencies


@benchmark("restart")
async def restart(options: Options) -> list[Result]:
    """Crash -> restarted child answers a call: p50 and p99 against a hand-rolled restart."""
    n = options.size(2_000, 500)
    p50_ours: list[float] = []
    p50_base: list[float] = []
    p99_ours: list[float] = []
    p99_base: list[float] = []

    async def ours() -> float:
        latencies = await _restart_ours(n)
        p50_ours.append(_percentile(latencies, 50) * 1e6)
        p99_ours.append(_percentile(latencies, 99) * 1e6)
        return 0.0

    async def base() -> float:
        latencies = await _restart_base(n)
        p50_base.append(_percentile(latencies, 50) * 1e6)
        p99_base.append(_percentile(latencies, 99) * 1e6)
        return 0.0

    await interleave(options, ours, base)
    return [
        Result.compare("restart_p50", p50_ours, p50_base, "µs", higher_is_better=False, target=1.5),
        Result.compare("restart_p99", p99_ours, p99_base, "µs", higher_is_better=False, target=1.0),
    ]


# -- scale_children: start + terminate + delete at 1,000 vs 50,000 live children ---------------


async def _idle(p: Process) -> None:
    await p.receive()


async def _cycle_cost(live: int, cycles: int) -> float:
    """Microseconds per start_new_child + terminate_child + delete_child beside ``live`` children."""
    async with Node("bench", shutdown_timeout=60.0) as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        for i in range(live):
            await sup.start_new_child(ChildSpec(f"live{i}", _idle, restart=TEMPORARY))
        spec = ChildSpec("cycled", _idle, restart=TEMPORARY)
        started = time.perf_counter()
        for _ in range(cycles):
            await sup.start_new_child(spec)
            await sup.terminate_child("cycled")
            # A temporary child's spec goes when it stops; add it back to delete it.
            await sup.add_child(spec)
            await sup.delete_child("cycled")
        cost = (time.perf_counter() - started) / cycles * 1e6
        await sup.shutdown_and_wait()
    return cost


@benchmark("scale_children")
async def scale_children(options: Options) -> list[Result]:
    """Cost per child cycle at 50,000 live children against 1,000 (ratio small/large)."""
    large = options.size(50_000, 20_000)
    cycles = options.size(2_000, 500)
    small_costs, large_costs = await interleave(
        options, lambda: _cycle_cost(1_000, cycles), lambda: _cycle_cost(large, cycles)
    )
    return [
        Result.compare(
            "scale_children", large_costs, small_costs, "µs/cycle", higher_is_better=False, target=0.67
        )
    ]


# -- restart_window: a restart with 10,000 restarts in the window vs an empty window -----------


async def _restart_cost(already: int, measured: int) -> float:
    """Microseconds per restart after ``already`` restarts within the window."""
    async with Node("bench") as node, node.process() as me:
        sup = await supervisor.start(
            me,
            RestartOne(RestartLimit(already + measured + 10, 3600.0)),
            [ChildSpec.worker("w", _worker, me.pid)],
        )
        pid: Pid = await me.receive(Pid)
        for _ in range(already):
            me.send(pid, "crash")
            pid = await me.receive(Pid)
        started = time.perf_counter()
        for _ in range(measured):
            me.send(pid, "crash")
            pid = await me.receive(Pid)
        cost = (time.perf_counter() - started) / measured * 1e6
        await sup.shutdown_and_wait()
    return cost


@benchmark("restart_window")
async def restart_window(options: Options) -> list[Result]:
    """Cost of a restart with 10,000 restarts in the window against an empty window."""
    measured = options.size(1_000, 300)
    empty, full = await interleave(
        options, lambda: _restart_cost(0, measured), lambda: _restart_cost(10_000, measured)
    )
    return [Result.compare("restart_window", full, empty, "µs/restart", higher_is_better=False, target=0.67)]
