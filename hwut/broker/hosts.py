"""The worker hosts the server has heard from, and their instances as the targets API
shows them (beside the server's own), with host, heartbeat age and health."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .protocol import ProtocolError

#: Instances one host may announce (a bound on what a heartbeat makes the server keep).
MAX_INSTANCES_PER_HOST = 256
#: Hosts remembered at once; the longest silent is forgotten past it.
MAX_HOSTS = 1024


@dataclass
class RemoteInstance:
    """One board instance on a worker host, as its last heartbeat described it."""

    host: str
    name: str
    board: str
    backend: str
    state: str
    job: int | None
    seen: float
    stale_after: float
    clock: Callable[[], float] = field(repr=False, default=time.monotonic)

    @property
    def health(self) -> str:
        """ok: heard from lately; stale: silent past ``host_stale_seconds`` (the host may
        be gone; its instances take no new job until it is heard from again)."""
        return "ok" if self.clock() - self.seen <= self.stale_after else "stale"

    def describe(self) -> dict[str, Any]:
        age = round(self.clock() - self.seen, 1)
        summary = (f"busy (job {self.job})" if self.job is not None else self.state)
        if self.health != "ok":
            summary = f"stale: no heartbeat from {self.host} for {age:g} s"
        return {"name": f"{self.host}/{self.name}", "backend": self.backend,
                "state": self.state if self.health == "ok" else "unavailable",
                "job": self.job, "summary": summary, "remote": True, "host": self.host,
                "heartbeat_age_seconds": age, "health": self.health,
                "availability": {"ok": self.health == "ok",
                                 "detail": None if self.health == "ok" else summary}}


class HostRegistry:
    """What each worker host last said about itself; thread-safe (HTTP threads write,
    the dispatcher and the targets routes read)."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self.clock = clock
        self._lock = threading.Lock()
        self._hosts: dict[str, list[RemoteInstance]] = {}
        self._seen: dict[str, float] = {}

    def heartbeat(self, host: Any, instances: Any) -> None:
        """Record a host's heartbeat (``instances``: its instances as it sent them)."""
        if not isinstance(host, str) or not 0 < len(host) <= 64:
            raise ProtocolError("heartbeat: host must be a name of 1 to 64 characters")
        if not isinstance(instances, list) or len(instances) > MAX_INSTANCES_PER_HOST:
            raise ProtocolError(f"heartbeat: instances must be a list of at most "
                                f"{MAX_INSTANCES_PER_HOST}")
        now = self.clock()
        parsed = []
        for item in instances:
            if not isinstance(item, dict):
                raise ProtocolError("heartbeat: each instance is an object")
            job = item.get("job")
            parsed.append(RemoteInstance(
                host, str(item.get("name", ""))[:80], str(item.get("board", ""))[:80],
                str(item.get("backend", ""))[:80], str(item.get("state", ""))[:20],
                job if isinstance(job, int) and not isinstance(job, bool) else None,
                now, self.stale_after, self.clock))
        with self._lock:
            self._hosts[host] = parsed
            self._seen[host] = now
            if len(self._hosts) > MAX_HOSTS:
                oldest = min(self._seen, key=self._seen.__getitem__)
                self._hosts.pop(oldest, None)
                self._seen.pop(oldest, None)

    def instances(self, board: str | None = None) -> list[RemoteInstance]:
        with self._lock:
            found = [i for items in self._hosts.values() for i in items]
        return [i for i in found if board in (None, i.board)]

    def live_capacity(self, board: str) -> int:
        """Instances of ``board`` on hosts heard from lately."""
        return sum(1 for i in self.instances(board) if i.health == "ok")
