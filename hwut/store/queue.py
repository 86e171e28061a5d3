"""The queue of WAITING jobs: whose turn it is per board, and the quota counts.

The queue is fair between users: per board, the owners with WAITING jobs take turns
(round-robin), and each owner's jobs go in submit order. Whose turn it is follows
from when each owner was last handed an instance of the board: the owner served
longest ago (or never) goes first, ties broken by the owner's oldest waiting job.
So a user who submits one job while another has a hundred waiting gets the next
free instance, and users with long queues alternate. An owner held back by the
per-user running limit (``max_running`` of :meth:`JobQueue.next_job`) keeps the
turn and gets the first instance free once one of their jobs ends. The turns live
in memory: after a restart everybody starts as never served.

The queue holds ids only and follows the repository (:meth:`JobQueue.account` is a
:meth:`hwut.store.repository.JobRepository.listen` listener, called under the
store's lock); it writes nothing itself.
"""
from __future__ import annotations

import bisect
import threading

from ..jobs import Job, JobStatus


class JobQueue:
    """Per board, per owner, the WAITING job ids; who was served when; quota counts."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        #: Notified whenever a job is added or changes status (workers sleep on it).
        self.changed = threading.Condition(lock)
        #: board -> owner -> WAITING ids, oldest first; an owner without waiting jobs on
        #: a board has no entry.
        self._queues: dict[str, dict[str, list[int]]] = {}
        #: WAITING jobs per owner, all boards together (the waiting-jobs quota).
        self._waiting: dict[str, int] = {}
        #: QUEUED or RUNNING jobs per (board, owner) (the running-instances quota).
        self._busy: dict[tuple[str, str], int] = {}
        #: board -> owner -> the claim number when the owner was last handed an
        #: instance of the board (the round-robin's turns; see the module docstring).
        self._served: dict[str, dict[str, int]] = {}
        self._claims = 0

    def account(self, old: JobStatus | None, job: Job) -> None:
        """Keep the queue, the waiting counts and the busy counts in step with one
        job's status going from ``old`` (None: a job new to the live table) to
        ``job.status``. Called under the lock, after the change was written."""
        if old is JobStatus.WAITING:
            queues = self._queues[job.board]
            queues[job.owner].remove(job.id)
            if not queues[job.owner]:
                del queues[job.owner]
                if not queues:
                    del self._queues[job.board]
            self._waiting[job.owner] -= 1
            if not self._waiting[job.owner]:
                del self._waiting[job.owner]
        elif old in (JobStatus.QUEUED, JobStatus.RUNNING):
            key = (job.board, job.owner)
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]
        if job.status is JobStatus.WAITING:
            queue = self._queues.setdefault(job.board, {}).setdefault(job.owner, [])
            if not queue or job.id > queue[-1]:
                queue.append(job.id)
            else:
                bisect.insort(queue, job.id)  # a claimed job given back (server stop)
            self._waiting[job.owner] = self._waiting.get(job.owner, 0) + 1
        elif job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            key = (job.board, job.owner)
            self._busy[key] = self._busy.get(key, 0) + 1
        self.changed.notify_all()

    def _turn(self, board: str, owner: str, queue: list[int]) -> tuple[int, int]:
        """Sorts the owners with WAITING jobs on ``board`` in the order they take turns:
        served longest ago (0: never) first, then the oldest waiting job first."""
        return self._served.get(board, {}).get(owner, 0), queue[0]

    def next_job(self, board: str, max_running: int | None = None) -> int | None:
        """The id of the job whose turn it is on ``board``: the oldest job of the owner
        whose turn it is. Owners whose jobs already hold ``max_running`` instances of the
        board are passed over (they keep their turn). None when none can be claimed.
        O(owners waiting on the board)."""
        with self._lock:
            queues = self._queues.get(board)
            if not queues:
                return None
            ready = [(self._turn(board, owner, queue), owner) for owner, queue in queues.items()
                     if max_running is None or self._busy.get((board, owner), 0) < max_running]
            if not ready:
                return None
            _, owner = min(ready)
            return queues[owner][0]

    def served(self, board: str, owner: str) -> None:
        """``owner`` was just handed an instance of ``board``: the turn passes on."""
        with self._lock:
            self._claims += 1
            self._served.setdefault(board, {})[owner] = self._claims

    def position(self, job: Job) -> int | None:
        """1 for the next job its board will take; None when ``job`` is not waiting.

        The position at which :meth:`next_job` will hand the job out if nothing else
        is submitted or canceled: owners take turns in a fixed order (their
        :meth:`_turn`), one job each, so a job that is the k-th of its owner's queue comes
        after everybody's first k-1 jobs and after the k-th jobs of the owners before its
        owner. Exact whenever no owner is held back by the running limit; an owner who
        is comes at their turn, which holds if one of their jobs has ended by then.
        O(owners waiting on the board)."""
        with self._lock:
            mine = self._queues.get(job.board, {}).get(job.owner, [])
            k = bisect.bisect_left(mine, job.id)  # jobs of the owner ahead of this one
            if k == len(mine) or mine[k] != job.id:
                return None
            queues = self._queues[job.board]
            turn = self._turn(job.board, job.owner, mine)
            position = 1
            for owner, queue in queues.items():
                position += min(len(queue), k)
                if len(queue) > k and self._turn(job.board, owner, queue) < turn:
                    position += 1
            return position

    def waiting_count(self, owner: str) -> int:
        """How many WAITING jobs ``owner`` has, all boards together."""
        with self._lock:
            return self._waiting.get(owner, 0)

    def wait_for_change(self, timeout: float) -> None:
        """Sleep until a job is submitted or changes status, or ``timeout`` passes."""
        with self.changed:
            self.changed.wait(timeout)

    def wake(self) -> None:
        """Wake every worker sleeping in wait_for_change (used on shutdown)."""
        with self.changed:
            self.changed.notify_all()
