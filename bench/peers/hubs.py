"""The peers as processes: Nchan (Debian's nginx + libnginx-mod-nchan) and the
resumable-stream package behind ``bench/peers/resumable-stream/server.mjs``.

Each is installed by its ``setup.sh`` (apt, npm ci) and started on a free loopback port,
pinned like the gateway; :func:`install` says why when a peer cannot be had here.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

from bench.procstat import children
from bench.stack import Stack
from service.cli.embedded_redis import free_port
from service.cli.launcher import Child

PEERS = Path(__file__).resolve().parent
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")


def install(name: str, timeout: float = 600) -> str | None:
    """Run the peer's setup script; None when it is ready, else why it is not."""
    script = PEERS / name / "setup.sh"
    try:
        done = subprocess.run(
            ["sh", str(script)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{name} setup failed: {exc}"
    if done.returncode != 0:
        return f"{name} setup failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


@dataclass
class NchanHub:
    """One nginx master + one worker process serving Nchan on ``port``."""

    stack: Stack
    port: int = 0
    master: Child | None = None

    async def start(self) -> None:
        """Write the config and start nginx pinned to the hub's core."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        workdir = self.stack.workdir
        self.port = free_port()
        conf = Template((PEERS / "nchan" / "nginx.conf.template").read_text()).safe_substitute(
            module=str(NCHAN_MODULE),
            workdir=str(workdir),
            port=str(self.port),
            redis_port=str(self.stack.redis_port),
        )
        path = workdir / "nginx.conf"
        path.write_text(conf)
        argv = [nginx, "-p", str(workdir), "-c", str(path)]
        cores = self.stack.gateway_cores
        self.master = await self.stack.start_child("nginx", argv, cores, port=self.port)

    @property
    def worker_pid(self) -> int:
        """The nginx worker process (the one that does the work)."""
        assert self.master is not None
        found = children(self.master.pid)
        if not found:
            raise RuntimeError("nginx has no worker process")
        return found[0]


@dataclass
class ResumableHub:
    """``node server.mjs``: the resumable-stream package on one Node process."""

    stack: Stack
    port: int = 0
    child: Child | None = None

    async def start(self) -> None:
        """Start the Node server pinned to the hub's core."""
        node = shutil.which("node") or "node"
        self.port = free_port()
        env = {"REDIS_URL": self.stack.redis_url, "PORT": str(self.port), "PATH": "/usr/bin:/bin"}
        self.child = await self.stack.start_child(
            "resumable-stream",
            [node, "server.mjs"],
            self.stack.gateway_cores,
            env=env,
            cwd=PEERS / "resumable-stream",
            port=self.port,
        )

    @property
    def pid(self) -> int:
        """The Node process."""
        assert self.child is not None
        return self.child.pid
