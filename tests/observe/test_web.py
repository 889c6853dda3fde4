"""The page's app without a browser: the token, the JSON it serves, and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from refcount_starter.observe.model import NodeSnapshot
from refcount_starter.observe.web import create_app, is_loopback, page_document, serve
from refcount_starter.runtime import Node, Process

pytestmark = pytest.mark.anyio

TOKEN = "sixteen-chars-or-more"


async def idle(p: Process) -> None:
    await p.receive(type(None))


async def get(
    app: Any, path: str, query: str = "", headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes]:
    """One GET through the ASGI interface: the status and the body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_the_token_guards_every_route() -> None:
    """Without the token the page and the API answer 401; with it (query or bearer), the snapshot."""
    async with Node("web") as node:

        async def source() -> list[NodeSnapshot]:
            return [await node.snapshot()]

        app = create_app(source, token=TOKEN)
        for path in ("/", "/api/snapshot", "/api/events"):
            assert (await get(app, path))[0] == 401
            assert (await get(app, path, "token=wrong-token-of-length"))[0] == 401
        status, body = await get(app, "/api/snapshot", f"token={TOKEN}")
        assert status == 200 and json.loads(body)["nodes"][0]["node"] == "web"
        status, body = await get(
            app, "/api/snapshot", headers=[(b"authorization", f"Bearer {TOKEN}".encode())]
        )
        assert status == 200
        status, body = await get(app, "/", f"token={TOKEN}")
        assert status == 200 and b"EventSource" in body


async def test_the_page_gets_the_busiest_processes_first() -> None:
    """Past the limit, the page gets the fullest mailboxes (and every supervisor and starter), in spawn order."""
    async with Node() as node, node.process() as me:
        pids = [me.spawn(idle) for _ in range(5)]
        for _ in range(3):
            me.send(pids[3], "queued")
        me.send(pids[1], "queued")
        document = json.loads(page_document([await node.snapshot()], max_processes=2))
        (only,) = document["nodes"]
        assert [p["pid"] for p in only["processes"]] == [str(pids[1]), str(pids[3])]
        assert only["processes_total"] == 6


def test_loopback_addresses() -> None:
    """Only localhost, 127.0.0.0/8 and ::1 are loopback."""
    assert all(map(is_loopback, ["localhost", "127.0.0.1", "127.1.2.3", "::1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.1", "::", "example.org"]))


async def test_serve_and_create_app_refuse_bad_input() -> None:
    """Off loopback without a token, a bad port, a bad interval or an empty token: refused by name."""

    async def source() -> list[NodeSnapshot]:
        return []

    with pytest.raises(ValueError, match="give a token"):
        await serve(create_app(source), host="0.0.0.0", shutdown=anyio.Event())
    with pytest.raises(ValueError, match="port"):
        await serve(create_app(source), port=70000, shutdown=anyio.Event())
    with pytest.raises(ValueError, match="interval"):
        create_app(source, interval=0)
    with pytest.raises(TypeError, match="interval"):
        create_app(source, interval="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token"):
        create_app(source, token="")
