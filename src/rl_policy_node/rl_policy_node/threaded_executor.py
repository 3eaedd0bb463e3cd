"""A MultiThreadedExecutor that hands each callback out once, and a node whose /clock
has its own callback group: what keeps a timer on time while another group works.

rclpy's wait hands out every callback task that has not started yet. In the Jazzy wheel
(rclpy 7.1) the multi-threaded executor only queues a task for its thread pool, so until a
worker picks it up the next wait returns the same task at once: the spinning thread loops
holding the GIL, the node burns a core and its worker threads (the control tick among
them) start late (ros2/rclpy#1452; fixed upstream after Jazzy's release). This executor
waits, after queueing a callback, until a worker has started it.

Every hand-over of a callback (the waiting thread to a worker, a /clock message to the
timer it makes ready) needs the GIL; while another thread runs Python (a model load and
its warm-up), each one waits up to the interpreter's switch interval, 5 ms by default,
several times per tick. The executor lowers that interval (`SWITCH_INTERVAL_S`).

On sim time rclpy subscribes /clock in the node's default callback group, which also
serves the parameter services: while a parameter callback runs (loading a candidate
model before a swap) the node's clock stands still, and with it every timer on that
clock, whatever group the timer is in. When the callback returns the clock jumps and the
timer skips the periods it slept through. `ClockGroupNode` gives /clock its own group.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rclpy.callback_groups import CallbackGroup, MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import (
    ConditionReachedException,
    Executor,
    ExternalShutdownException,
    ShutdownException,
    TimeoutException,
)
from rclpy.node import Node
from rclpy.subscription import Subscription
from rclpy.task import Task
from rclpy.time_source import CLOCK_TOPIC

# A worker normally starts a queued task within microseconds; the bound only matters when
# every worker is busy, and then nothing else could run anyway.
START_POLL_S = 0.001
# The longest a thread runs Python while another waits for the GIL (CPython: 5 ms). On one
# core, swapping a 2x256 MLP with 400 warm-up runs, 20 Hz ticks started up to ~30 ms late
# at 5 ms and ~5 ms late at 0.5 ms.
SWITCH_INTERVAL_S = 0.0005


class StartedTaskExecutor(Executor):
    """Runs callbacks on `num_threads` workers; a queued callback is never handed out twice.

    It lowers the interpreter's GIL switch interval (process-wide) to `switch_interval_s`
    unless it is lower already; None leaves it as it is.
    """

    def __init__(
        self,
        num_threads: int = 2,
        switch_interval_s: float | None = SWITCH_INTERVAL_S,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if switch_interval_s is not None and switch_interval_s < sys.getswitchinterval():
            sys.setswitchinterval(switch_interval_s)
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
            try:
                done.result()  # a callback's exception surfaces in spin(), as in rclpy
            except InvalidHandle:
                # A handler that finished after shutdown() destroyed the guard condition
                # it wakes the executor with: nothing was lost.
                if not self._is_shutdown:
                    raise

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        """Shut down the executor, then its worker threads."""
        done = super().shutdown(timeout_sec)
        self._pool.shutdown(wait=done)
        return done


def _run_started(handler: Callable[[], object], started: threading.Event) -> None:
    started.set()
    handler()


class ClockGroupNode(Node):
    """A Node whose /clock subscription (sim time) has a callback group of its own.

    rclpy's time source creates that subscription without a group, i.e. in the default
    one, mutually exclusive with the parameter services (see the module docstring). A
    subscription to /clock created without a group gets `clock_callback_group` instead.
    """

    @property
    def clock_callback_group(self) -> CallbackGroup:
        """The group /clock is received in (created on first use, during `Node.__init__`)."""
        group = self.__dict__.get("_clock_callback_group")
        if group is None:
            group = self.__dict__["_clock_callback_group"] = MutuallyExclusiveCallbackGroup()
        return group

    def create_subscription(
        self,
        msg_type: Any,
        topic: str,
        callback: Callable[..., None],
        qos_profile: Any,
        *,
        callback_group: CallbackGroup | None = None,
        **kwargs: Any,
    ) -> Subscription:
        """As `Node.create_subscription`; /clock without a group goes to its own group."""
        if callback_group is None and topic == CLOCK_TOPIC:
            callback_group = self.clock_callback_group
        return super().create_subscription(
            msg_type, topic, callback, qos_profile, callback_group=callback_group, **kwargs
        )
