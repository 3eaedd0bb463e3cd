"""A MultiThreadedExecutor that hands each callback out once.

rclpy's wait hands out every callback task that has not started yet. In the Jazzy wheel
(rclpy 7.1) the multi-threaded executor only queues a task for its thread pool, so until a
worker picks it up the next wait returns the same task at once: the spinning thread loops
holding the GIL, the node burns a core and its worker threads (the control tick among
them) start late (ros2/rclpy#1452; fixed upstream after Jazzy's release). This executor
waits, after queueing a callback, until a worker has started it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rclpy.executors import (
    ConditionReachedException,
    Executor,
    ExternalShutdownException,
    ShutdownException,
    TimeoutException,
)
from rclpy.task import Task

# A worker normally starts a queued task within microseconds; the bound only matters when
# every worker is busy, and then nothing else could run anyway.
START_POLL_S = 0.001


class StartedTaskExecutor(Executor):
    """Runs callbacks on `num_threads` workers; a queued callback is never handed out twice."""

    def __init__(self, num_threads: int = 2, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._pool = ThreadPoolExecutor(num_threads)
        self._handlers: list[Task] = []

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Wait for one ready callback, start it on a worker, and return once it started."""
        try:
            handler, _entity, _node = self.wait_for_ready_callbacks(timeout_sec=timeout_sec)
        except (
            ExternalShutdownException,
            ShutdownException,
            TimeoutException,
            ConditionReachedException,
        ):
            return
        started = threading.Event()
        self._pool.submit(_run_started, handler, started)
        self._handlers.append(handler)
        while not started.wait(START_POLL_S):
            if not self.context.ok():
                return
        for done in [h for h in self._handlers if h.done()]:
            self._handlers.remove(done)
            done.result()  # a callback's exception surfaces in spin(), as in rclpy

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        """Shut down the executor, then its worker threads."""
        done = super().shutdown(timeout_sec)
        self._pool.shutdown(wait=done)
        return done


def _run_started(handler: Callable[[], object], started: threading.Event) -> None:
    started.set()
    handler()
