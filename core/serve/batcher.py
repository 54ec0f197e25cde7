"""Dynamic batching for ``zoo serve``: concurrent requests to one model merged into onnxruntime calls."""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from zoo.core.contract.errors import ZooError
from zoo.core.serve.protocol import RequestError


# The longest a call may take and still run on the event loop itself, when the model is idle:
# below it a worker thread's two hand-offs (there and back, each a thread wake-up and a GIL
# exchange) cost more than the call; above it the loop must keep reading requests meanwhile.
INLINE_BELOW_S = 0.0003

# A request's outputs (its rows of each output) or the RequestError that answers it.
Reply = Callable[[Any], None]


@dataclass(slots=True)
class _Pending:
    feed: dict[str, np.ndarray]
    rows: int
    key: tuple  # what must agree to merge: each input's name, non-batch dimensions and dtype
    reply: Reply
    since: float  # loop.time() at arrival


class Batcher:
    """Merges concurrent requests to one endpoint into onnxruntime calls (dynamic batching).

    Batching that never waits for strangers: a request that finds the model idle, with no
    recently answered client due back, runs at once, by itself (one client gets batching-off
    latency). Requests that arrive while a call is in flight queue and go together in the next
    call. When a call returns, the batcher expects the clients it just answered back (a client
    that got its answer sends its next request), and holds the queued requests until they are
    (the group then holds everyone the server held a moment ago) or ``max_delay_ms`` has
    passed, whichever comes first: the batch size follows the load, 1 for one client, about N
    for N busy clients, at most ``max_batch`` rows. Requests merge when every non-batch
    dimension and dtype agree; the others keep their places in the queue.

    ``max_delay_ms`` bounds how long a queued request is held back for company: from its
    arrival, at most that long before it is dispatched (as soon as a call slot is free; waits
    for compute, when ``max_in_flight`` calls already run, are not bounded by it). A group
    that is complete while a call runs starts as a second call alongside (pipelining: one call
    in onnxruntime while the event loop gathers the next).

    Args:
        endpoint: what runs a feed: ``endpoint.run(feed) -> outputs`` (called in a worker thread,
            so the event loop keeps reading requests) and ``endpoint.batchable``.
        max_batch: most rows in one call; 1 turns batching off (each request its own call).
        max_delay_ms: longest a request is held back for company (0: never; dispatch at once
            whenever a slot is free).
        max_in_flight: most concurrent calls (1: strictly one call at a time).
    """

    def __init__(self, endpoint, max_batch: int, max_delay_ms: float, max_in_flight: int = 2) -> None:
        self.endpoint = endpoint
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000.0
        self.max_in_flight = max(1, max_in_flight)
        self.queue: collections.deque[_Pending] = collections.deque()
        self.running = 0    # calls in flight
        self.timer: asyncio.TimerHandle | None = None  # wakes _dispatch when a held group is due
        self.timer_at = 0.0
        self.soon = False   # a _dispatch is scheduled for the next loop iteration
        self.queued_rows = self.running_rows = 0
        self.expected, self.due_until = 0, float("-inf")  # rows due back from the last call's clients
        self.calls = 0      # onnxruntime executions
        self.requests = 0   # inference requests answered through them
        self.inline_bytes = -1  # feeds up to this size ran within INLINE_BELOW_S: run on the loop

    async def submit(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request's ``feed`` (arrays ``[rows, ...]``), alone or merged; its outputs' rows
        (a :class:`RequestError` raised when the model cannot run on them)."""
        future = asyncio.get_running_loop().create_future()
        self.start(feed, functools.partial(_settle, future))
        return await future

    def start(self, feed: dict[str, np.ndarray], reply: Reply) -> None:
        """Run one request's ``feed``, alone or merged, and call ``reply`` once, on the event
        loop and never before this returns, with its outputs' rows or a :class:`RequestError`.
        The callback form of :meth:`submit`: the HTTP fast path answers from it directly, with
        no task or future per request. A ``reply`` that raises (a bug) reaches the loop's
        exception handler, after the other requests of its call are answered."""
        loop = asyncio.get_running_loop()
        self.requests += 1
        if self.max_batch <= 1 or not self.endpoint.batchable:
            self._start_alone(loop, feed, 1, reply)
            return
        rows = next(iter(feed.values())).shape[0]
        if not self.running and not self.queue and (  # the model is idle ...
                rows >= min(self.expected, self.max_batch) or loop.time() >= self.due_until):
            self._start_alone(loop, feed, rows, reply)  # ... and no answered client is due: at once
            return
        key = tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feed.items()))
        self.queue.append(_Pending(feed, rows, key, reply, loop.time()))
        self.queued_rows += rows
        if not self.soon:  # at the end of this loop iteration: requests whose handlers run in it merge
            self.soon = True
            loop.call_soon(self._on_soon)

    def _start_alone(self, loop, feed: dict[str, np.ndarray], rows: int, reply: Reply) -> None:
        """Run a request that found the model idle by itself, not queued (as cheap as batching
        off): on the event loop itself when it is alone and feeds of its size have run within
        ``INLINE_BELOW_S``, else in a worker thread. Alone: after one more turn of the loop, in
        which the requests already read start or queue, no other call runs and none waits;
        under load calls stay in threads, in parallel with the loop."""
        self.running += 1
        self.running_rows += rows
        self.calls += 1
        size = sum(a.nbytes for a in feed.values())
        if self.running == 1 and size <= self.inline_bytes:
            loop.call_soon(self._alone_on_loop, loop, feed, rows, size, reply)
        else:
            self._in_thread(loop, self._timed, (feed, size), functools.partial(self._alone_done, rows, reply))

    def _alone_on_loop(self, loop, feed: dict[str, np.ndarray], rows: int, size: int, reply: Reply) -> None:
        if self.running != 1 or self.queue:  # others came meanwhile: the loop must keep reading them
            self._in_thread(loop, self._timed, (feed, size), functools.partial(self._alone_done, rows, reply))
            return
        try:
            result = self._timed(feed, size)
        except Exception as err:  # noqa: BLE001 - as for a merged call
            result = _request_error(err)
        self._finished(rows)
        reply(result)

    def _alone_done(self, rows: int, reply: Reply, result: Any, error: BaseException | None) -> None:
        self._finished(rows)
        reply(_request_error(error) if error is not None else result)

    def _in_thread(self, loop, function, args: tuple, done: Callable[[Any, BaseException | None], None]) -> None:
        """``function(*args)`` in a worker thread, then ``done(result, error)`` on the loop: one
        hand-off each way (``run_in_executor`` adds a future on each side and a loop turn)."""
        _pool().submit(_work, loop, function, args, done)

    def _timed(self, feed: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        """``endpoint.run(feed)``, timed: a fast call raises the size of feeds run on the loop, a
        slow one lowers it below its own (a model whose calls slow down goes back to threads)."""
        start = time.perf_counter()
        outputs = self.endpoint.run(feed)
        if time.perf_counter() - start < INLINE_BELOW_S:
            self.inline_bytes = max(self.inline_bytes, size)
        else:
            self.inline_bytes = min(self.inline_bytes, size - 1)
        return outputs

    def _dispatch(self) -> None:
        """Start calls from the queue while a slot is free and the oldest group is not held back
        (see :meth:`_hold`). Called on each arrival, each finished call and the deadline timer."""
        loop = asyncio.get_running_loop()
        while self.queue and self.running < self.max_in_flight:
            now = loop.time()
            until = self._hold(now)
            if until > now:
                if self.timer is None or self.timer_at > until:  # (uvloop's handles have no when())
                    if self.timer is not None:
                        self.timer.cancel()
                    self.timer, self.timer_at = loop.call_at(until, self._on_timer), until
                return
            group = self._take()
            rows = sum(p.rows for p in group)
            self.queued_rows -= rows
            self.running += 1
            self.running_rows += rows
            self.calls += 1
            self._in_thread(loop, self._call, ([p.feed for p in group], [p.rows for p in group]),
                            functools.partial(self._done, group, rows))

    def _hold(self, now: float) -> float:
        """Until when the oldest queued request is held back (``now`` or earlier: not at all).

        Never past its arrival + ``max_delay``. Within that: while a call runs, the group waits
        for it (a second call starts early only once the clients of the last call are all back);
        while none runs, it waits only for the clients of the call that just returned (each
        answered request's client is expected back within ``max_delay``), never for strangers."""
        deadline = self.queue[0].since + self.max_delay
        if now >= deadline:
            return now
        due = now < self.due_until
        complete = self.queued_rows >= self.max_batch or (
            due and self.queued_rows >= self.expected - self.running_rows)
        if self.running:
            return now if complete else deadline
        return min(deadline, self.due_until) if due and not complete else now

    def _on_soon(self) -> None:
        self.soon = False
        self._dispatch()

    def _on_timer(self) -> None:
        self.timer = None
        self._dispatch()

    def _take(self) -> list[_Pending]:
        """The oldest queued request and, in arrival order, the queued ones that merge with it
        (same key), up to ``max_batch`` rows; the others keep their places."""
        first = self.queue.popleft()
        group, rows, skipped = [first], first.rows, []
        while self.queue and rows < self.max_batch:
            item = self.queue.popleft()
            if item.key == first.key and rows + item.rows <= self.max_batch:
                group.append(item)
                rows += item.rows
            else:
                skipped.append(item)
        self.queue.extendleft(reversed(skipped))
        return group

    def _call(self, feeds: list[dict[str, np.ndarray]], rows: list[int]) -> tuple[list[Any], int]:
        """In a worker thread: one call for the whole group, split back into each request's rows
        → (each request's outputs or exception, the onnxruntime calls made). When a merged call
        fails, each request runs alone: one request the model cannot run on fails by itself, not
        those merged with it."""
        try:
            feed = feeds[0] if len(feeds) == 1 else {name: np.concatenate([f[name] for f in feeds])
                                                     for name in feeds[0]}
            outputs = self.endpoint.run(feed)
        except Exception as err:  # noqa: BLE001 - handed to the waiting request(s)
            if len(feeds) == 1:
                return [err], 1
            return [self._call([f], [n])[0][0] for f, n in zip(feeds, rows)], 1 + len(feeds)
        if len(feeds) == 1:
            return [outputs], 1
        bounds = np.cumsum([0, *rows])
        return [{k: v[a:b] for k, v in outputs.items()} for a, b in zip(bounds[:-1], bounds[1:])], 1

    def _finished(self, rows: int) -> None:
        """A call of ``rows`` rows returned: its clients are expected back within max_delay (the
        load the server just held), and the next call starts from what queued meanwhile."""
        self.running -= 1
        self.running_rows -= rows
        self.expected = rows + self.queued_rows + self.running_rows
        self.due_until = asyncio.get_running_loop().time() + self.max_delay
        self._dispatch()

    def _done(self, group: list[_Pending], rows: int, result: Any, error: BaseException | None) -> None:
        """A call returned (on the event loop): start the next from what queued meanwhile, then
        answer this group's requests, each straight from here."""
        self._finished(rows)
        if error is None:
            results, calls = result
            self.calls += calls - 1  # a failed merged call: each request ran again alone
        else:
            results = [error] * len(group)
        failed = None
        for p, outputs in zip(group, results):
            try:  # a reply that fails (a bug) must not leave the rest of the group unanswered
                p.reply(_request_error(outputs) if isinstance(outputs, BaseException) else outputs)
            except Exception as err:  # noqa: BLE001 - raised below, to the loop's exception handler
                failed = failed or err
        if failed is not None:
            raise failed


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The worker threads every model's calls share, as many as asyncio's default executor has."""
    return ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="zoo-serve")


def _work(loop, function, args: tuple, done) -> None:
    """In a worker thread: run, then hand the result (or the error) to ``done`` on the loop."""
    try:
        result, error = function(*args), None
    except Exception as err:  # noqa: BLE001 - handed to the waiting request(s)
        result, error = None, err
    try:
        loop.call_soon_threadsafe(done, result, error)
    except RuntimeError:  # the loop closed meanwhile: nobody waits for the answer
        pass


def _settle(future: asyncio.Future, result: Any) -> None:
    """:meth:`Batcher.submit`'s reply: the awaited future settled, unless its caller left."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _request_error(err: BaseException) -> RequestError:
    """A failed onnxruntime call as the request's answer: a ZooError (the model cannot run on
    these values) is a 400, anything else a 500."""
    if isinstance(err, ZooError):
        return RequestError(str(err), 400)
    return RequestError(f"inference failed: {err}", 500)
