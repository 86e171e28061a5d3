"""The worker hosts the server has heard from, and their instances as the targets API
shows them (beside the server's own), with host, heartbeat age and health."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..store.offline import OfflineRecord
from .protocol import ProtocolError

#: What the submit route checks against each remote instance (its backend's word).
CAPABILITIES = ("console_input", "presses", "pins")

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
    #: What its backend can do (``console_input``, ``presses``, ``pins``); None: the host
    #: did not say (an older worker), nothing is refused for it.
    capabilities: dict[str, bool] | None = None
    #: Its host's retry and offline rule for it (board config, else backend defaults).
    retries: int = 0
    offline_after: int = 0
    #: The server's offline record for it (kept across restarts), and its failures in a row.
    offline_record: Callable[[str], OfflineRecord | None] = field(
        repr=False, default=lambda name: None)
    failures: Callable[[str], int] = field(repr=False, default=lambda name: 0)

    @property
    def full_name(self) -> str:
        """host/instance: how the server, its offline records and jobs name it."""
        return f"{self.host}/{self.name}"

    @property
    def offline(self) -> OfflineRecord | None:
        return self.offline_record(self.full_name)

    @property
    def health(self) -> str:
        """ok: heard from lately; stale: silent past ``host_stale_seconds`` (the host may
        be gone; its instances take no new job until it is heard from again)."""
        return "ok" if self.clock() - self.seen <= self.stale_after else "stale"

    @property
    def takes_jobs(self) -> bool:
        """Heard from lately and not offline: the dispatcher counts it as room."""
        return self.health == "ok" and self.offline is None

    def describe(self) -> dict[str, Any]:
        age = round(self.clock() - self.seen, 1)
        offline = self.offline
        state = self.state
        summary = (f"busy (job {self.job})" if self.job is not None else self.state)
        if offline is not None and self.job is None:
            state, summary = "offline", f"offline: {offline.reason}"
        if self.health != "ok":
            state, summary = "unavailable", f"stale: no heartbeat from {self.host} for {age:g} s"
        return {"name": self.full_name, "backend": self.backend, "state": state,
                "job": self.job, "summary": summary, "remote": True, "host": self.host,
                "heartbeat_age_seconds": age, "health": self.health,
                "offline": offline.reason if offline else None,
                "offline_since": offline.since if offline else None,
                "consecutive_failures": self.failures(self.full_name),
                "retries": self.retries, "offline_after": self.offline_after,
                "availability": {"ok": self.health == "ok",
                                 "detail": None if self.health == "ok" else summary}}


class HostRegistry:
    """What each worker host last said about itself; thread-safe (HTTP threads write,
    the dispatcher and the targets routes read)."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic,
                 offline_record: Callable[[str], OfflineRecord | None] = lambda name: None,
                 failures: Callable[[str], int] = lambda name: 0) -> None:
        self.stale_after = stale_after
        self.clock = clock
        self.offline_record = offline_record
        self.failures = failures
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
            caps = item.get("capabilities")
            parsed.append(RemoteInstance(
                host, str(item.get("name", ""))[:80], str(item.get("board", ""))[:80],
                str(item.get("backend", ""))[:80], str(item.get("state", ""))[:20],
                job if isinstance(job, int) and not isinstance(job, bool) else None,
                now, self.stale_after, self.clock,
                {k: caps.get(k) is True for k in CAPABILITIES} if isinstance(caps, dict)
                else None,
                _count(item.get("retries")), _count(item.get("offline_after")),
                self.offline_record, self.failures))
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
        """Instances of ``board`` on hosts heard from lately, offline ones left out."""
        return sum(1 for i in self.instances(board) if i.takes_jobs)

    def find(self, full_name: str) -> RemoteInstance | None:
        """The instance ``host/instance``, or None when no heartbeat named it."""
        host, _, name = full_name.partition("/")
        with self._lock:
            items = list(self._hosts.get(host, ()))
        return next((i for i in items if i.name == name), None)

    def offline_of(self, host: str) -> dict[str, str]:
        """The host's instances the server keeps offline, with the reason (what the
        heartbeat's answer tells the host)."""
        found = {}
        for instance in self.instances():
            record = instance.offline if instance.host == host else None
            if record is not None:
                found[instance.name] = record.reason
        return found


def _count(value: Any) -> int:
    """A host's retries / offline_after, bounded (a hostile host cannot make a job run
    for ever): 0 to 20."""
    return value if isinstance(value, int) and not isinstance(value, bool) and \
        0 <= value <= 20 else 0
