"""A local Redis Cluster of any number of primaries for the benchmark.

``service.cli.embedded_redis.RedisClusterServers`` forms its cluster with ``redis-cli --cluster
create``, which refuses fewer than 3 primaries. For 1 or 2 primaries this subclass starts the
same nodes with the same settings and forms the cluster by hand (slots, ``CLUSTER MEET``,
``CLUSTER REPLICATE``), so a 1-primary and a 3-primary cluster differ only in how many
primaries share the 16,384 slots. 3 or more: the parent's own ``start``.
"""

from __future__ import annotations

import socket
import time

from redis import Redis

from service.cli.embedded_redis import RedisClusterServers, free_port

SLOTS = 16384


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal slot ranges, one per primary (as ``redis-cli`` splits them)."""
    edges = [round(i * SLOTS / primaries) for i in range(primaries + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(primaries)]


def _pair_ports(count: int) -> list[int]:
    """Free ports whose cluster-bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port > 55535 or port in ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class LocalCluster(RedisClusterServers):
    """``RedisClusterServers`` that can also form a cluster of 1 or 2 primaries."""

    def start(self) -> None:
        """Start the nodes and form the cluster; wait until it is ok."""
        if self.primaries >= 3:
            super().start()
            return
        self.start_nodes(_pair_ports(self.primaries * 2))
        self._form()
        self.wait_ok()

    def _form(self, timeout: float = 30.0) -> None:
        clients = [Redis(host="127.0.0.1", port=node.port) for node in self.nodes]
        try:
            primaries, replicas = clients[: self.primaries], clients[self.primaries :]
            for client, (low, high) in zip(primaries, slot_ranges(self.primaries), strict=True):
                client.cluster("ADDSLOTSRANGE", low, high)
            for node in self.nodes[1:]:
                clients[0].cluster("MEET", "127.0.0.1", node.port)
            ids = [str(client.cluster("MYID"), "ascii") for client in primaries]
            deadline = time.monotonic() + timeout
            for replica, primary_id in zip(replicas, ids, strict=True):
                while True:  # the replica must have heard of its primary first
                    try:
                        replica.cluster("REPLICATE", primary_id)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
