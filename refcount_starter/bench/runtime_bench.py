"""Runtime benchmarks: ``pingpong``, ``spawn`` and ``memory`` against raw anyio;
``selective_receive`` against a plain deque; ``call_backlog`` against an empty mailbox."""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from collections import deque
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..runtime import Down, Kill, Node, Pid, Process
from .suite import Options, Result, benchmark, interleave

# -- pingpong: round trips between two processes ---------------------------------------------


async def _ponger(p: Process) -> None:
    while True:
        sender, n = await p.receive()
        p.send(sender, n)


async def _pingpong_ours(n: int) -> float:
    async with Node("bench") as node, node.process() as me:
        pong = me.spawn(_ponger)
        started = time.perf_counter()
        for i in range(n):
            me.send(pong, (me.pid, i))
            await me.receive()
        return n / (time.perf_counter() - started)


async def _pingpong_base(n: int) -> float:
    a_send, a_recv = anyio.create_memory_object_stream[int](math.inf)
    b_send, b_recv = anyio.create_memory_object_stream[int](math.inf)

    async def ponger() -> None:
        async with a_recv, b_send:
            async for message in a_recv:
                await b_send.send(message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ponger)
        started = time.perf_counter()
        for i in range(n):
            await a_send.send(i)
            await b_recv.receive()
        rate = n / (time.perf_counter() - started)
        await a_send.aclose()
    return rate


@benchmark("pingpong")
async def pingpong(options: Options) -> list[Result]:
    """Round trips per second between two processes, against two memory object streams."""
    n = options.size(100_000, 20_000)
    ours, base = await interleave(options, lambda: _pingpong_ours(n), lambda: _pingpong_base(n))
    return [Result.compare("pingpong", ours, base, "round trips/s", higher_is_better=True, target=2.5)]


# -- spawn: spawn, wait until it runs, stop it, wait for its exit ------------------------------


async def _announce(p: Process, parent: Pid) -> None:
    p.send(parent, p.pid)
    await p.receive()


async def _spawn_ours(n: int) -> float:
    async with Node("bench") as node, node.process() as me:
        started = time.perf_counter()
        for _ in range(n):
            pid, _ref = me.spawn_monitor(_announce, me.pid)
            await me.receive()
            me.exit(pid, Kill())
            await me.receive(Down)
        return n / (time.perf_counter() - started)


async def spawn_baseline(n: int) -> float:
    """Raw anyio: start a task in its own cancel scope, wait until it runs, cancel it and
    wait for its end, ``n`` times; cycles per second (the baseline of ``spawn`` and of the
    starter cycles)."""

    async def child(scope: anyio.CancelScope, started: anyio.Event, done: anyio.Event) -> None:
        with scope:
            _send, receive = anyio.create_memory_object_stream[Any](math.inf)
            started.set()
            async with receive:
                async for _ in receive:
                    pass
        done.set()

    async with anyio.create_task_group() as tg:
        began = time.perf_counter()
        for _ in range(n):
            scope = anyio.CancelScope()
            started, done = anyio.Event(), anyio.Event()
            tg.start_soon(child, scope, started, done)
            await started.wait()
            scope.cancel()
            await done.wait()
        rate = n / (time.perf_counter() - began)
    return rate


@benchmark("spawn")
async def spawn(options: Options) -> list[Result]:
    """Spawn + wait until running + stop + wait for exit, per second, against raw tasks."""
    n = options.size(20_000, 5_000)
    ours, base = await interleave(options, lambda: _spawn_ours(n), lambda: spawn_baseline(n))
    return [Result.compare("spawn", ours, base, "cycles/s", higher_is_better=True, target=1.2)]


# -- memory: bytes per idle process ------------------------------------------------------------


async def _idle(p: Process) -> None:
    await p.receive()


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _memory_ours(n: int) -> float:
    async with Node("bench") as node, node.process() as me:
        before = _traced()
        pids = [me.spawn(_idle) for _ in range(n)]
        await anyio.wait_all_tasks_blocked()
        per = (_traced() - before) / n
        for pid in pids:
            me.send(pid, None)
        return per


async def _memory_base(n: int) -> float:
    boxes: list[MemoryObjectSendStream[Any]] = []

    async def idle(receive: MemoryObjectReceiveStream[Any]) -> None:
        async with receive:
            await receive.receive()

    async with anyio.create_task_group() as tg:
        before = _traced()
        for _ in range(n):
            send, receive = anyio.create_memory_object_stream[Any](math.inf)
            boxes.append(send)  # the address, kept as a pid table would keep it
            tg.start_soon(idle, receive)
        await anyio.wait_all_tasks_blocked()
        per = (_traced() - before) / n
        for send in boxes:
            send.send_nowait(None)
    return per


@benchmark("memory")
async def memory(options: Options) -> list[Result]:
    """Python heap bytes per idle process (tracemalloc), against idle tasks on a stream."""
    n = options.size(10_000, 2_000)
    tracemalloc.start()
    try:
        ours, base = await interleave(options, lambda: _memory_ours(n), lambda: _memory_base(n))
    finally:
        tracemalloc.stop()
    return [Result.compare("memory", ours, base, "bytes/process", higher_is_better=False, target=1.3)]


# -- selective_receive: a match behind a long queue of other messages --------------------------


def _is_text(message: object) -> bool:
    return isinstance(message, str)


async def _selective_ours(backlog: int, repeats: int) -> float:
    async with Node("bench") as node, node.process() as me:
        for i in range(backlog):
            me.send(me.pid, i)
        started = time.perf_counter()
        for _ in range(repeats):
            me.send(me.pid, "match")
            await me.receive(str)
        return (time.perf_counter() - started) / repeats * 1e3


async def _selective_base(backlog: int, repeats: int) -> float:
    queue: deque[Any] = deque(range(backlog))
    started = time.perf_counter()
    for _ in range(repeats):
        queue.append("match")
        for index, message in enumerate(queue):
            if _is_text(message):
                del queue[index]
                break
        await anyio.lowlevel.checkpoint()
    return (time.perf_counter() - started) / repeats * 1e3


@benchmark("selective_receive")
async def selective_receive(options: Options) -> list[Result]:
    """Milliseconds to receive a match behind 100,000 non-matching messages, against the
    same scan over a plain deque."""
    backlog = options.size(100_000, 20_000)
    repeats = options.size(20, 5)
    ours, base = await interleave(
        options, lambda: _selective_ours(backlog, repeats), lambda: _selective_base(backlog, repeats)
    )
    return [Result.compare("selective_receive", ours, base, "ms", higher_is_better=False, target=0.5)]


# -- call_backlog: a call whose caller has many unrelated messages queued ----------------------


async def _answer(p: Process) -> None:
    async for call in p.messages():
        p.reply(call, call.request)


async def _calls(backlog: int, n: int) -> float:
    async with Node("bench") as node, node.process() as me:
        server = me.spawn(_answer)
        for i in range(backlog):
            me.send(me.pid, i)
        started = time.perf_counter()
        for i in range(n):
            await me.call(server, i)
        return n / (time.perf_counter() - started)


@benchmark("call_backlog")
async def call_backlog(options: Options) -> list[Result]:
    """Calls per second with 100,000 unrelated messages queued in the caller, against calls
    with an empty mailbox (the receive marker keeps the backlog out of the wait)."""
    backlog = options.size(100_000, 20_000)
    n = options.size(20_000, 5_000)
    ours, base = await interleave(options, lambda: _calls(backlog, n), lambda: _calls(0, n))
    return [Result.compare("call_backlog", ours, base, "calls/s", higher_is_better=True, target=0.5)]
