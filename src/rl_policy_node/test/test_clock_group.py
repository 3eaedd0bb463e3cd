"""ClockGroupNode keeps sim time moving while the default group is busy; the executor's GIL
switch interval."""

from __future__ import annotations

import sys
import threading
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock as ClockMsg

from rl_policy_node.threaded_executor import SWITCH_INTERVAL_S, ClockGroupNode, StartedTaskExecutor


def test_sim_time_advances_while_a_default_group_callback_runs(rclpy_context):
    # A parameter callback (a model load before a swap) runs in the default group; here a
    # wall-clock timer in that group stands in for it and holds it until released.
    node = ClockGroupNode(
        "clock_group_probe",
        context=rclpy_context,
        parameter_overrides=[Parameter("use_sim_time", value=True)],
    )
    source = Node("clock_source", context=rclpy_context)
    clock_pub = source.create_publisher(ClockMsg, "/clock", 10)
    busy, release = threading.Event(), threading.Event()

    def hold_default_group() -> None:
        busy.set()
        release.wait(30.0)

    holder = node.create_timer(
        0.01, hold_default_group, clock=Clock(clock_type=ClockType.STEADY_TIME)
    )
    executor = StartedTaskExecutor(num_threads=3, context=rclpy_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert busy.wait(10.0), "the default-group callback never started"
        holder.cancel()
        reached = False
        deadline = time.monotonic() + 10.0
        sim_s = 0
        while not reached and time.monotonic() < deadline:
            sim_s += 1
            msg = ClockMsg()
            msg.clock.sec = sim_s
            clock_pub.publish(msg)
            time.sleep(0.02)
            reached = node.get_clock().now().nanoseconds >= 1_000_000_000
        # The default group is still held: the clock moved in a group of its own.
        assert not release.is_set()
        assert reached, "sim time stood still while a default-group callback ran"
    finally:
        release.set()
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        source.destroy_node()


def test_clock_subscription_group_survives_use_sim_time_toggles(rclpy_context):
    node = ClockGroupNode("clock_group_toggle", context=rclpy_context)
    try:
        assert not [s for s in node.subscriptions if s.topic_name == "/clock"]
        for _ in range(2):
            node.set_parameters([Parameter("use_sim_time", value=True)])
            (clock_sub,) = [s for s in node.subscriptions if s.topic_name == "/clock"]
            assert clock_sub.callback_group is node.clock_callback_group
            assert clock_sub.callback_group is not node.default_callback_group
            node.set_parameters([Parameter("use_sim_time", value=False)])
    finally:
        node.destroy_node()


def test_executor_lowers_the_switch_interval_unless_told_not_to(rclpy_context):
    original = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        StartedTaskExecutor(num_threads=1, switch_interval_s=None, context=rclpy_context)
        assert sys.getswitchinterval() == 0.005
        StartedTaskExecutor(num_threads=1, context=rclpy_context)
        assert sys.getswitchinterval() <= SWITCH_INTERVAL_S < 0.005
        sys.setswitchinterval(SWITCH_INTERVAL_S / 2)  # already lower: left alone
        StartedTaskExecutor(num_threads=1, context=rclpy_context)
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S / 2
    finally:
        sys.setswitchinterval(original)
