"""The cluster profile's load balancer (deploy/haproxy/haproxy.cfg): HAProxy drops a client's
own X-Forwarded-For and adds the address it saw (`option forwardfor`), and hashes each job's
requests onto one gateway. The config passes a real `haproxy -c` (Debian's package; `make test`
installs it) and a request with a forged header is sent through a copy of it to a stand-in
gateway on 127.0.0.1."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from service.cli.embedded_redis import free_port
from tests.deploy.manifests import DEPLOY

CONFIG = DEPLOY / "haproxy" / "haproxy.cfg"


def sections(text: str) -> dict[str, list[str]]:
    """``{"frontend tokenrelay": [lines...], ...}``, comments dropped."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = found.setdefault(line.strip(), [])
        else:
            current.append(" ".join(line.split()))
    return found


def haproxy_binary() -> str:
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.fail(
            "haproxy is not installed: `apt-get install haproxy` (`make test` does it as root)"
        )
    return binary


def test_the_frontend_replaces_x_forwarded_for() -> None:
    frontend = sections(CONFIG.read_text())["frontend tokenrelay"]
    dropped = frontend.index("http-request del-header X-Forwarded-For")
    assert "option forwardfor" in frontend
    assert dropped < frontend.index("default_backend gateways")


def test_each_job_is_hashed_onto_one_gateway() -> None:
    backend = sections(CONFIG.read_text())["backend gateways"]
    assert "balance uri path-only depth 3" in backend  # /v1/jobs/<id>
    assert "hash-type consistent" in backend
    assert "option httpchk GET /readyz" in backend


def test_haproxy_accepts_the_config() -> None:
    done = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(CONFIG)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in gateway: answers 200 and keeps each request's X-Forwarded-For lines."""

    seen: ClassVar[list[list[str]]] = []

    def do_GET(self) -> None:
        if self.path != "/readyz":
            self.seen.append(self.headers.get_all("X-Forwarded-For") or [])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stand_in_gateway() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_forged_x_forwarded_for_does_not_reach_the_gateway(
    stand_in_gateway: int, tmp_path: Path
) -> None:
    binary = haproxy_binary()
    port = free_port()
    # The shipped config, bound to loopback, its gateways replaced by the stand-in (and fewer
    # connections than a real balancer's, within this process's file descriptor limit).
    lines = []
    for line in CONFIG.read_text().splitlines():
        words = line.split()
        if words[:1] == ["maxconn"]:
            line = "    maxconn 1000"
        elif words[:1] == ["bind"]:
            line = f"    bind 127.0.0.1:{port}"
        elif words[:1] == ["server"]:
            line = f"    server {words[1]} 127.0.0.1:{stand_in_gateway} check inter 2s"
        lines.append(line)
    config = tmp_path / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    proxy = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "haproxy did not start"
                assert proxy.poll() is None, proxy.stderr.read() if proxy.stderr else ""
                time.sleep(0.05)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/jobs/01JB2C3D4E5F6G7H8J9K/events",
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    assert _Recorder.seen == [["127.0.0.1"]]
