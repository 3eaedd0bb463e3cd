"""Quiet Ctrl-C for node processes (ROS-free).

`ros2 launch` in a terminal gets Ctrl-C twice over: the terminal sends SIGINT to the whole
process group (launch and every node), and launch then sends each node its own SIGINT
while shutting down. A node that is by then inside `destroy_node()` used to get a second
`KeyboardInterrupt` there and died with a traceback (exit code -2).

`interrupts_end_quietly()` wraps a node's `main()`: the first SIGINT is raised as
`KeyboardInterrupt` as usual (rclpy, initialised inside the block, chains to this
handler and shuts its context down), every later one is ignored, and a `KeyboardInterrupt`
that escapes the block ends it quietly, so the process exits with code 0. SIGTERM keeps its
meaning (launch escalates to it when a node does not end after SIGINT).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class InterruptLatch:
    """A SIGINT handler that raises `KeyboardInterrupt` on the first signal only."""

    def __init__(self) -> None:
        self.received = 0

    @property
    def interrupted(self) -> bool:
        """True once a SIGINT arrived."""
        return self.received > 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Count the signal; raise on the first, ignore the rest (shutdown is under way)."""
        self.received += 1
        if self.received == 1:
            raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interrupts_end_quietly() -> Iterator[InterruptLatch]:
    """Run a node's main body so that Ctrl-C (once or repeatedly) ends it with exit code 0.

    Enter it before `rclpy.init()` so rclpy's own handler chains to the latch. Without an
    interrupt the previous handler is restored on exit; after one, SIGINT stays ignored
    until the process has ended.
    """
    latch = InterruptLatch()
    previous = signal.signal(signal.SIGINT, latch)
    try:
        yield latch
    except KeyboardInterrupt:
        pass
    finally:
        # After an interrupt, SIG_IGN (not the latch) so that interpreter finalization, which
        # resets Python-level handlers to SIG_DFL, cannot let a late SIGINT kill the process.
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN if latch.interrupted else previous)
        except KeyboardInterrupt:
            # signal.signal runs pending handlers before it swaps: a SIGINT that arrived as
            # the body ended (rclpy's own handler had already stopped the spin) reaches the
            # latch here, as its first. It ends the process quietly like any other.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
