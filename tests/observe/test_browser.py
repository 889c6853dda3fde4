"""The live page in a real browser: headless Chromium (Debian's ``chromium``) watches a
starter's holders come and go as supervisors add and delete specs.

The browser runs in one worker thread (Playwright's sync API, which must stay on the thread
that started it); the node and the server run on the test's backend, and the browser's
thread steps the demo's system through ``anyio.from_thread.run``.
"""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from refcount_starter.observe.demo_system import DemoSystem, demo_system
from refcount_starter.observe.model import NodeSnapshot
from refcount_starter.observe.web import create_app, serve
from refcount_starter.runtime import Node, Pid

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "a-test-token-of-some-length"
WAIT_MS = 20_000

if CHROMIUM is None:
    # CI installs chromium (.ci/run): there, a missing browser is a failure, never a skip.
    if os.environ.get("CI"):
        raise RuntimeError("the browser test needs Debian's chromium: apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


def holder(starter: Pid, pid: Pid) -> str:
    return f'[data-starter="{starter}"] .holder[data-pid="{pid}"]'


def browse(url: str, profile: Path, shot: Path, system: DemoSystem) -> str:
    """Drive the page; return the details panel's text at the end."""
    from playwright.sync_api import sync_playwright

    db = system.db.pid
    team_a, team_b, team_c = (team.pid for team in system.teams)
    with sync_playwright() as pw:
        assert CHROMIUM is not None
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            refused = page.goto(url.partition("?")[0])
            assert refused is not None and refused.status == 401  # no token, no page
            page.goto(url)
            # After the demo's first step: team-a and team-b hold db, team-c does not.
            page.wait_for_selector(holder(db, team_a), timeout=WAIT_MS)
            page.wait_for_selector(holder(db, team_b), timeout=WAIT_MS)
            assert page.query_selector(holder(db, team_c)) is None
            anyio.from_thread.run(system.step)  # team-c adds db: it appears as a holder
            page.wait_for_selector(holder(db, team_c), timeout=WAIT_MS)
            for _ in range(3):  # team-b and team-c add cache; then team-b deletes db
                anyio.from_thread.run(system.step)
            page.wait_for_selector(holder(db, team_b), state="detached", timeout=WAIT_MS)
            page.wait_for_selector(holder(db, team_c), timeout=WAIT_MS)
            page.wait_for_selector(holder(system.cache.pid, team_c), timeout=WAIT_MS)
            # The third step crashed team-a's flaky child: its restart is on the page.
            page.wait_for_selector("#restarts li .pid", timeout=WAIT_MS)
            page.click(f"{holder(db, team_c)} .pid")
            page.wait_for_selector("#details dl", timeout=WAIT_MS)
            page.screenshot(path=str(shot))
            return page.inner_text("#details")
        finally:
            context.close()


async def test_a_starters_holders_appear_and_disappear(tmp_path: Path) -> None:
    """Holders appear when supervisors add the starter's spec and disappear when they delete it."""
    async with Node("observe") as node, demo_system(node) as system:

        async def source() -> list[NodeSnapshot]:
            return [await node.snapshot()]

        shutdown = anyio.Event()
        app = create_app(source, interval=0.1, token=TOKEN, stopping=shutdown)
        listening = anyio.Event()
        ports: list[int] = []

        def ready(port: int) -> None:
            ports.append(port)
            listening.set()

        shot = tmp_path / "observer.png"
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(serve, app, port=0, token=TOKEN, shutdown=shutdown, ready=ready))
            await listening.wait()
            url = f"http://127.0.0.1:{ports[0]}/?token={TOKEN}"
            try:
                details = await anyio.to_thread.run_sync(browse, url, tmp_path / "profile", shot, system)
            finally:
                shutdown.set()
        team_c = system.teams[2].pid
        assert str(team_c) in details and "supervisor" in details and "team-c" in details
        assert shot.stat().st_size > 10_000
        keep = os.environ.get("REFCOUNT_STARTER_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)  # how docs/img/observer.png is made
