"""The Dask scheduler: a probe for the API replica, and the client a compute process trains through.

- `DaskCluster.check` (the API replica, on its event loop): one `identity` call to the scheduler
  over distributed's own comm, bounded by a short timeout. No `Client` lives in the API replica:
  a client keeps a connection, a heartbeat and a thread of its own, and this process never submits
  work; the compute process that trains does.
- `cluster_client` (a compute process): a synchronous `distributed.Client`, connected on first use
  and kept for the process's next tasks; one found closed is replaced.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


class DaskCluster:
    def __init__(self, address: str, *, timeout_s: float = 2.0) -> None:
        # Imported here, when the container starts, not on the event loop at the first probe (about
        # a second); and only by a replica that has a scheduler configured.
        from distributed.core import rpc

        self._rpc = rpc
        self.address = address
        self._timeout = timeout_s

    async def check(self) -> str | None:
        """None when the scheduler answers within the timeout, else why not (for /health and the
        503 of a request that would go to it)."""
        scheduler = self._rpc(self.address, timeout=self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                await scheduler.identity()
        except TimeoutError:
            return f"the Dask scheduler at {self.address} did not answer within {self._timeout:g} s"
        except Exception as exc:
            return f"the Dask scheduler at {self.address} is unreachable: {type(exc).__name__}: {exc}"[:300]
        finally:
            await scheduler.close_rpc()
        return None


def cluster_client(address: str, *, timeout_s: float) -> Any:
    from distributed import Client

    with _LOCK:
        client = _CLIENTS.get(address)
        if client is None or client.status not in ("running", "connecting"):
            if client is not None:
                client.close(timeout=timeout_s)
            client = Client(address, timeout=timeout_s, set_as_default=False)
            _CLIENTS[address] = client
        return client
