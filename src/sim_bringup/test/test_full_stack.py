"""End-to-end: simulator + policy + arbiter + safety as separate processes over DDS.

Each test starts the stack with `StackRunner` (the runner `make demo` uses) and watches
it from a probe node in the test process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rclpy
import torch
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from policy_fixtures import LinearTanhPolicy, small_card
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String, UInt32
from std_srvs.srv import Trigger

from rl_policy_node.policy_card import ActionSpec
from rl_policy_node.policy_loader import save_policy
from sim_bringup.profiles import load_world
from sim_bringup.stack_runner import StackOptions, StackRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


def frozen_policy(path: Path) -> Path:
    """A valid policy that always outputs (0, 0): active, but never moves the robot."""
    card = small_card(sectors=16).with_updates(
        name="frozen", action=ActionSpec(linear=(-0.2, 0.2), angular=(-1.0, 1.0))
    )
    module = LinearTanhPolicy(card.observation.size)
    with torch.no_grad():
        module.weight.zero_()
    traced = torch.jit.trace(module, torch.zeros(1, card.observation.size))
    save_policy(traced, path, card)
    return path


class StackProbe:
    """Watches mode, commands, ground truth and collisions; sends enable and e-stop."""

    def __init__(self, context: object, goals: list[tuple[float, float]], tolerance: float):
        self.node = rclpy.create_node("full_stack_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.goals, self.tolerance = goals, tolerance
        self.modes: list[tuple[float, str]] = []
        self.reasons: list[str] = []
        self.cmd_vel: list[tuple[float, float, float]] = []
        self.goals_reached = 0
        self.collisions = 0
        self.pose = (math.nan, math.nan)
        node = self.node
        node.create_subscription(String, "hybrid/mode", self._on_mode, LATCHED)
        node.create_subscription(String, "hybrid/mode_reason", self._on_reason, LATCHED)
        node.create_subscription(Twist, "cmd_vel", self._on_cmd, RELIABLE)
        node.create_subscription(Odometry, "odom", self._on_odom, BEST_EFFORT)
        node.create_subscription(UInt32, "sim/collisions", self._on_collisions, RELIABLE)
        self.enable = node.create_publisher(Bool, "policy/enable", LATCHED)
        self.trigger = node.create_client(Trigger, "safety/trigger_estop")
        self.reset = node.create_client(Trigger, "safety/reset")

    def _on_mode(self, msg: String) -> None:
        self.modes.append((time.monotonic(), msg.data))

    def _on_reason(self, msg: String) -> None:
        self.reasons.append(msg.data)

    def _on_cmd(self, msg: Twist) -> None:
        self.cmd_vel.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def _on_collisions(self, msg: UInt32) -> None:
        self.collisions = int(msg.data)

    def _on_odom(self, msg: Odometry) -> None:
        # Goals are odom-frame targets: judged on odometry, as the simulator judges them.
        self.pose = (msg.pose.pose.position.x, msg.pose.pose.position.y)
        if self.goals_reached < len(self.goals):
            gx, gy = self.goals[self.goals_reached]
            if math.hypot(self.pose[0] - gx, self.pose[1] - gy) <= self.tolerance:
                self.goals_reached += 1

    @property
    def mode(self) -> str:
        return self.modes[-1][1] if self.modes else ""

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def call(self, client: object) -> Trigger.Response:
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        assert self.spin_until(future.done, 10.0)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def stack(tmp_path: Path, rclpy_context: object, ros_env: dict[str, str]):
    """Start a stack: ``runner, probe = stack(world=..., model_path=..., ...)``."""
    started: list[tuple[StackRunner, StackProbe]] = []

    def _start(world: str = "empty", rtf: float = 1.0, **options: object):
        runner = StackRunner(
            StackOptions(world=world, real_time_factor=rtf, **options), tmp_path / "logs", ros_env
        ).start()
        loaded = load_world(world)
        probe = StackProbe(rclpy_context, list(loaded.goals), loaded.goal_tolerance)
        started.append((runner, probe))
        return runner, probe

    yield _start
    for runner, probe in started:
        probe.close()
        runner.stop(timeout=3.0)
        for process in runner.processes:
            print(f"--- {process.spec.name} ---\n{process.output()[-3000:]}")


@pytest.mark.parametrize("world", ["corridor", "warehouse"])
def test_fallback_alone_reaches_every_goal_without_collision(stack, world):
    """No model: the policy stays inactive, the DWA drives the whole goal sequence."""
    runner, probe = stack(world=world, rtf=3.0, model_path="")
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 30.0), probe.modes
    finished = probe.spin_until(
        lambda: probe.goals_reached == len(probe.goals) or bool(runner.dead()), 240.0
    )
    assert not runner.dead(), [p.spec.name for p in runner.dead()]
    assert finished and probe.goals_reached == len(probe.goals), probe.pose
    assert probe.collisions == 0
    # STOPPED is right until the first scan arrives; once driving, only FALLBACK and IDLE.
    first_drive = next(i for i, (_, m) in enumerate(probe.modes) if m == "FALLBACK")
    assert {m for _, m in probe.modes[first_drive:]} <= {"FALLBACK", "IDLE"}, probe.modes


def test_disabling_the_policy_hands_over_within_one_period(stack, tmp_path):
    """policy/enable false -> FALLBACK at once, and the fallback still reaches the goal."""
    runner, probe = stack(
        model_path=str(frozen_policy(tmp_path / "frozen.pt")),
        extra_parameters={"hybrid_fallback": {"stall_window": 60.0, "retry_after": 1.0}},
    )
    probe.enable.publish(Bool(data=True))
    assert probe.spin_until(lambda: probe.mode == "POLICY", 30.0), probe.modes
    sent = time.monotonic()
    probe.enable.publish(Bool(data=False))
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 5.0), probe.modes
    handover = probe.modes[-1][0] - sent
    assert handover < 0.05 + 0.25, f"hand-over took {handover:.3f} s"  # one period + DDS slack
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "policy/active false" in probe.reasons[-1], probe.reasons
    assert probe.spin_until(lambda: probe.goals_reached >= 1, 90.0), probe.pose
    assert probe.collisions == 0


def test_frozen_policy_triggers_the_stall_switch(stack, tmp_path):
    """A policy that outputs zeros is healthy by every signal but progress."""
    runner, probe = stack(
        model_path=str(frozen_policy(tmp_path / "frozen.pt")),
        extra_parameters={"hybrid_fallback": {"stall_window": 3.0, "retry_after": 1.0}},
    )
    probe.enable.publish(Bool(data=True))
    assert probe.spin_until(lambda: probe.mode == "POLICY", 30.0), probe.modes
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 15.0), probe.modes
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "no progress" in probe.reasons[-1], probe.reasons


def test_killing_the_policy_process_triggers_fallback(stack, tmp_path):
    runner, probe = stack(
        model_path=str(frozen_policy(tmp_path / "frozen.pt")),
        extra_parameters={"hybrid_fallback": {"stall_window": 60.0, "retry_after": 1.0}},
    )
    probe.enable.publish(Bool(data=True))
    assert probe.spin_until(lambda: probe.mode == "POLICY", 30.0), probe.modes
    killed = time.monotonic()
    runner.process("rl_policy_node").kill()
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 5.0), probe.modes
    took = probe.modes[-1][0] - killed
    assert took < 0.5 + 0.05 + 0.3, f"FALLBACK after {took:.3f} s"  # policy_timeout + period
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "silent" in probe.reasons[-1], probe.reasons


def test_estop_zeroes_the_output_until_reset(stack):
    runner, probe = stack(model_path="", rtf=1.0)
    assert probe.spin_until(lambda: any(abs(v) > 0.05 for _, v, _ in probe.cmd_vel), 40.0)
    assert probe.call(probe.trigger).success
    pressed = time.monotonic()
    probe.spin_until(lambda: False, 1.5)
    after = [(v, w) for t, v, w in probe.cmd_vel if t > pressed + 0.1]
    assert after and all(v == 0.0 and w == 0.0 for v, w in after)
    assert probe.call(probe.reset).success
    released = time.monotonic()
    assert probe.spin_until(
        lambda: any(abs(v) > 0.02 for t, v, _ in probe.cmd_vel if t > released), 20.0
    )
