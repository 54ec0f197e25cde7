"""Persistent worker threads for word2vec's own update on several CPU threads (gensim's design).

gensim trains with W worker threads that each take a job (~10,000 words) from a queue and run its
nogil C loop over it, updating the shared tables without locks (Hogwild), while a producer
thread cuts the corpus into jobs: the workers never wait for each other, and the producer's
Python work overlaps theirs. :class:`UpdateWorkers` is that shape for the trainer's steps: each
training step's batch becomes one job, a call of a nogil numba kernel
(:mod:`zoo.plugins.word2vec.kernels`) that one worker runs whole, while the trainer's thread goes
on to build the next batch. A numba parallel region per batch instead makes both threads join at
the end of every batch, and the trainer's own Python work between batches runs while they wait.

Each job carries the lr and the generator seed taken when it was submitted, so the lr schedule
and the noise draws are the trainer's, whichever worker runs the job and when. The loss of the
finished jobs is collected as they end (:meth:`UpdateWorkers.collect`); :meth:`UpdateWorkers.drain`
waits for every job submitted so far, which the trainer asks for at the end of each epoch
(``SelfUpdating.finish_updates``) before it evaluates, records or saves anything.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class UpdateWorkers:
    """``workers`` daemon threads running ``(kernel, args)`` jobs from one bounded queue.

    A kernel returns ``(loss, count)``; the totals of the jobs finished since the last
    :meth:`collect` are kept under a lock. ``depth`` jobs may wait in the queue (gensim's
    ``queue_factor`` of 2 per worker by default): the producer blocks beyond that, which bounds
    both memory and how far the lr of a waiting job lags the schedule. An exception in a job is
    re-raised by the next :meth:`submit`, :meth:`collect` or :meth:`drain` on the producer's
    thread; the jobs after it are skipped.
    """

    def __init__(self, workers: int, depth: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {workers}")
        self.workers = workers
        self._jobs: queue.Queue = queue.Queue(maxsize=depth or 2 * workers)
        self._lock = threading.Lock()
        self._loss, self._count = 0.0, 0.0
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._work, name=f"word2vec-worker-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    kernel, args = job
                    loss, count = kernel(*args)
                    with self._lock:
                        self._loss += float(loss)
                        self._count += float(count)
            except BaseException as err:  # noqa: BLE001  (handed to the producer's thread)
                self._error = err
            finally:
                self._jobs.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, kernel: Callable[..., tuple[float, float]], args: tuple[Any, ...]) -> None:
        """Queue one job (blocks while ``depth`` jobs wait)."""
        self._raise()
        if not self._threads:
            raise RuntimeError("the update workers were closed")
        self._jobs.put((kernel, args))

    def collect(self) -> tuple[float, float]:
        """The summed ``(loss, count)`` of the jobs finished since the last call (no waiting)."""
        self._raise()
        with self._lock:
            totals = (self._loss, self._count)
            self._loss, self._count = 0.0, 0.0
        return totals

    def drain(self) -> tuple[float, float]:
        """Wait until every submitted job has run; then :meth:`collect`."""
        self._jobs.join()
        return self.collect()

    def close(self) -> None:
        """Finish the queued jobs and stop the threads (an error left is dropped: the run that
        raised it has ended)."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        self._error = None
