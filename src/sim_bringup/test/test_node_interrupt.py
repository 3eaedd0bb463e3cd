"""Ctrl-C under `ros2 launch` ends every node cleanly (issue 19, item 2).

In a terminal, Ctrl-C sends SIGINT to the whole process group and launch then sends each
node another SIGINT while it shuts down. Each node process here is interrupted the same
way, repeatedly until it has exited, so later signals land in `destroy_node()`,
`rclpy.try_shutdown()` and interpreter exit: it must end with exit code 0 and print no
traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from rlguard_common.node_shutdown import InterruptLatch, interrupts_end_quietly

# (module, node name); each module's main() is its console script.
NODE_MAINS = [
    ("safety_controller.safety_node", "safety_controller"),
    ("hybrid_fallback.hybrid_node", "hybrid_fallback"),
    ("rl_policy_node.policy_node", "rl_policy_node"),
    ("sim_bringup.sim_node", "mujoco_sim"),
]
# Upper bound on the SIGINTs sent to one process after the first (a count, not a time).
MAX_REPEATS = 400


def _wait_for_node(context: object, name: str, process) -> None:
    """Poll the ROS graph until `name` appears (bounded number of polls)."""
    import rclpy

    probe = rclpy.create_node("interrupt_probe", context=context)
    try:
        for _ in range(600):
            if name in probe.get_node_names():
                return
            assert process.is_running(), process.output()
            time.sleep(0.05)
        pytest.fail(f"{name} never joined the graph:\n{process.output()}")
    finally:
        probe.destroy_node()


@pytest.mark.parametrize(("module", "name"), NODE_MAINS, ids=[n for _, n in NODE_MAINS])
def test_repeated_sigint_ends_the_node_with_code_zero_and_no_traceback(
    start_node, rclpy_context, module, name
):
    node = start_node(module, name=name)
    _wait_for_node(rclpy_context, name, node)
    os.killpg(node.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole group
    repeats = 0
    while node.is_running() and repeats < MAX_REPEATS:
        try:
            os.killpg(node.pid, signal.SIGINT)  # launch's own SIGINT, and more
        except ProcessLookupError:
            break
        repeats += 1
        time.sleep(0.005)
    try:
        code = node.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} still runs after {repeats + 1} SIGINTs:\n{node.output()}")
    output = node.output()
    assert repeats >= 1, "the node ended before a second SIGINT could reach it"
    assert "Traceback" not in output, output
    assert "KeyboardInterrupt" not in output, output
    assert code == 0, output


def test_an_interrupt_pending_as_the_block_ends_is_swallowed(monkeypatch):
    # CPython's signal.signal runs pending Python-level handlers before it installs the new
    # one: a SIGINT that came as the body ended reaches the latch inside the block's exit.
    before = signal.getsignal(signal.SIGINT)
    real_signal = signal.signal
    pending = [signal.SIGINT]

    def signal_running_pending_handlers(signum, handler):
        while pending:
            current = signal.getsignal(pending.pop())
            if callable(current):
                current(signal.SIGINT, None)
        return real_signal(signum, handler)

    try:
        try:
            with interrupts_end_quietly() as latch:
                monkeypatch.setattr(signal, "signal", signal_running_pending_handlers)
        except KeyboardInterrupt:
            pytest.fail("the pending interrupt escaped the block")
        assert latch.received == 1
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, before)


def test_latch_raises_once_then_ignores():
    latch = InterruptLatch()
    with pytest.raises(KeyboardInterrupt):
        latch(signal.SIGINT, None)
    latch(signal.SIGINT, None)
    latch(signal.SIGINT, None)
    assert latch.received == 3 and latch.interrupted


def test_quiet_block_swallows_the_interrupt_and_restores_the_handler_when_none_came():
    before = signal.getsignal(signal.SIGINT)
    with interrupts_end_quietly() as latch:
        assert signal.getsignal(signal.SIGINT) is latch
    assert signal.getsignal(signal.SIGINT) is before
    try:
        with interrupts_end_quietly() as latch:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs at the next bytecode boundary
                pass
            pytest.fail("SIGINT did not interrupt the block")
        assert latch.interrupted
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # survives finalization
        os.kill(os.getpid(), signal.SIGINT)  # a later one is ignored
    finally:
        signal.signal(signal.SIGINT, before)
