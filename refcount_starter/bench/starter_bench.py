"""Starter benchmarks: the DPP-84 cycle, the shared-starter cycle, and the heap it leaves.

``dpp84_cycle`` is what leaked in Cloud Haskell: make a starter (as ``toChildStart`` did),
``start_new_child``, the owner lets go once the supervisor holds it (as in the guide's
example), ``terminate_child`` + ``delete_child``, and the starter is gone at the cycle's end.
Its baseline is raw anyio's spawn + stop of a task with a mailbox.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

from .. import supervisor
from ..runtime import Node, Process
from ..starter import spawn_child_starter
from ..supervisor import TRANSIENT, ChildSpec, RestartOne
from .runtime_bench import spawn_baseline
from .suite import Options, Result, benchmark, interleave


async def _child(p: Process) -> None:
    await p.receive()


async def _dpp84_cycles(n: int) -> float:
    """Cycles per second of the full DPP-84 cycle, the starter gone at each cycle's end."""
    async with Node("bench") as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        started = time.perf_counter()
        for _ in range(n):
            starter = await spawn_child_starter(me, _child)
            spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
            await sup.start_new_child(spec)
            await starter.release()
            await sup.terminate_child("db")
            await sup.delete_child("db")
            await node.wait(starter.pid)
        rate = n / (time.perf_counter() - started)
        await sup.shutdown_and_wait()
    return rate


async def _shared_cycles(n: int) -> float:
    """Cycles per second of start + terminate + delete through one long-lived starter."""
    async with Node("bench") as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        async with await spawn_child_starter(me, _child) as starter:
            spec = ChildSpec("db", starter.child_start, restart=TRANSIENT)
            started = time.perf_counter()
            for _ in range(n):
                await sup.start_new_child(spec)
                await sup.terminate_child("db")
                await sup.delete_child("db")
            rate = n / (time.perf_counter() - started)
        await sup.shutdown_and_wait()
    return rate


@benchmark("dpp84_cycle")
async def dpp84_cycle(options: Options) -> list[Result]:
    """DPP-84 cycles per second against raw anyio spawn + stop; and the shared-starter cycle."""
    n = options.size(5_000, 1_000)
    ours, base = await interleave(options, lambda: _dpp84_cycles(n), lambda: spawn_baseline(n))
    shared, base2 = await interleave(options, lambda: _shared_cycles(n), lambda: spawn_baseline(n))
    return [
        Result.compare("dpp84_cycle", ours, base, "cycles/s", higher_is_better=True, target=0.5),
        Result.compare("shared_starter_cycle", shared, base2, "cycles/s", higher_is_better=True),
    ]


# -- dpp84_heap: Python heap growth per cycle ---------------------------------------------------


async def _heap_growth(warmup: int, cycles: int, ours: bool) -> float:
    """Bytes of Python heap still held per cycle after ``cycles`` cycles (after a warm-up that
    fills the bounded tables, such as the node's recently-dead table)."""
    run = _dpp84_cycles if ours else spawn_baseline
    tracemalloc.start()
    try:
        await run(warmup)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        await run(cycles)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / cycles


@benchmark("dpp84_heap")
async def dpp84_heap(options: Options) -> list[Result]:
    """Python heap growth in bytes per DPP-84 cycle over 100,000 cycles (the budget: < 1).

    The ratio offsets both sides by the one-byte budget, ``(1 + baseline) / (1 + ours)``, so
    that it stays finite when both grow by nothing; the value itself is what the budget bounds.
    """
    cycles = options.size(100_000, 10_000)
    warmup = options.size(10_000, 6_000)
    ours = [await _heap_growth(warmup, cycles, True)]
    base = [await _heap_growth(warmup, cycles, False)]
    value, baseline = ours[0], base[0]
    ratio = (1 + max(baseline, 0.0)) / (1 + max(value, 0.0))
    return [Result("dpp84_heap", value, "bytes/cycle", baseline, ratio, False, None)]
