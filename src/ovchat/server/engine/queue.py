"""The jobs waiting for a batch slot, and the condition the engine thread sleeps on.

The event loop adds jobs and flags them cancelled; the engine thread takes them. Every change
happens under `wake` (a Condition over an RLock, so the engine may hold it around a call here), the
same condition the lifecycle changes under: a drain or an abort wakes the engine too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from ovchat.errors import Unavailable
from ovchat.prompt.request import GenerationRequest
from ovchat.server.engine.jobs import Job, TokenizerTask
from ovchat.server.engine.lifecycle import Lifecycle


class JobQueue:
    """Waiting jobs in arrival order (continued jobs ahead of them)."""

    def __init__(self, max_queue: int, lifecycle: Lifecycle) -> None:
        self.max_queue = max_queue
        self.lifecycle = lifecycle
        self.wake = lifecycle.wake
        self._waiting: deque[Job] = deque()
        self._tasks: deque[TokenizerTask] = deque()  # the token routes' work, run before the next step
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, request: GenerationRequest, free_slots: int) -> Job:
        """A new job at the back (call on the event loop); Unavailable when the engine takes no work
        now or the queue is full."""
        with self.wake:
            self.lifecycle.check_accepting()
            if len(self._waiting) >= self.max_queue + free_slots:
                raise Unavailable(
                    f"the server is busy ({len(self._waiting)} requests waiting): retry later", "queue_full"
                )
            job = Job(self._next_id, request, asyncio.get_running_loop())
            self._next_id += 1
            self._waiting.append(job)
            self.wake.notify()
        return job

    def put_task(self, task: TokenizerTask) -> None:
        """Tokenizer work for the engine thread (call on the event loop); Unavailable when the engine
        takes no work now or too much waits."""
        with self.wake:
            self.lifecycle.check_accepting()
            if len(self._tasks) > self.max_queue:
                raise Unavailable(
                    f"the server is busy ({len(self._tasks)} tokenizer requests waiting): retry later",
                    "queue_full",
                )
            self._tasks.append(task)
            self.wake.notify()

    def take_tasks(self) -> list[TokenizerTask]:
        with self.wake:
            tasks = list(self._tasks)
            self._tasks.clear()
        return tasks

    def put_back(self, jobs: list[Job]) -> None:
        """Jobs to continue after a rebuild, ahead of new arrivals, in their order."""
        with self.wake:
            self._waiting.extendleft(reversed(jobs))

    def notify(self) -> None:
        with self.wake:
            self.wake.notify()

    def wait_for_work(self, running: list[Job]) -> bool:
        """Block until there is something to do; False once stopping and idle (or aborted)."""
        with self.wake:
            while not (self._waiting or self._tasks or running or self.lifecycle.stopping):
                self.wake.wait()
            if self.lifecycle.aborting:
                for job in [*self._waiting, *running]:
                    job.cancelled = True
            idle = not self._waiting and not self._tasks and not running
            return not (self.lifecycle.stopping and idle)

    def next(self, running: Iterable[Job]) -> Job | None:
        """The next job to admit, or None; a suspect waits until no job in the batch is fresh, so
        that it goes in alone and a failing step names it."""
        with self.wake:
            if not self._waiting:
                return None
            job = self._waiting[0]
            if job.suspect and any(j.fresh for j in running):
                return None
            return self._waiting.popleft()

    def take_cancelled(self) -> list[Job]:
        """The waiting jobs whose clients have gone, out of the queue."""
        with self.wake:
            gone = [job for job in self._waiting if job.cancelled]
            for job in gone:
                self._waiting.remove(job)
        return gone

    def take_all(self) -> list[Job]:
        with self.wake:
            jobs = list(self._waiting)
            self._waiting.clear()
        return jobs
