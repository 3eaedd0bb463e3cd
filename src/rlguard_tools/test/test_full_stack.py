"""End-to-end: simulator + policy + arbiter + safety as separate processes over DDS.

Each test starts the stack with `StackRunner` (the runner `make demo` uses) and watches
it from a probe node in the test process. Goals are judged as the simulator judges them:
on the ground-truth pose, within the world's tolerance. Events are timed in sim time
(the latest /clock the probe has seen), the clock the stack's timeouts run on, so a
loaded machine that runs the simulator slower than real time does not stretch them.
Bounds carry a slack for DDS delivery: they check that the stack reacts on the event
and within its timeouts; the benchmarks measure the latencies.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rlguard_tools_test_support import StackProbe, configured, frozen_policy
from std_msgs.msg import Bool

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from rlguard_tools.stack_runner import StackOptions, StackRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIOD = 1.0 / configured("hybrid_fallback", "control_rate_hz")  # s, control period
POLICY_TIMEOUT = configured("hybrid_fallback", "policy_timeout")
SOURCE_TIMEOUT = configured("safety_controller", "source_timeout")
# s to brake from top speed at the safety controller's emergency deceleration
STOP_RAMP = (
    load_robot_profile("default").max_linear_velocity
    / -configured("safety_controller", "emergency_decel")[0]
)
# Slack for DDS delivery and process scheduling on a loaded 2-core machine.
SLACK = 0.3


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
        # Records are stamped with the probe's sim time: wait until it has one.
        assert probe.spin_until(lambda: probe.sim_mono > 0.0, 60.0), "no /clock"
        return runner, probe

    yield _start
    for runner, probe in started:
        probe.close()
        runner.stop(timeout=3.0)
        for process in runner.processes:
            print(f"--- {process.spec.name} ---\n{process.output()[-3000:]}")


def _start_policy(probe: StackProbe) -> None:
    probe.enable.publish(Bool(data=True))
    assert probe.spin_until(lambda: probe.mode == "POLICY", 40.0), probe.modes


@pytest.mark.parametrize("world", ["corridor", "warehouse"])
def test_fallback_alone_reaches_every_goal_without_collision(stack, world):
    """No model: the policy stays inactive, the DWA drives the whole goal sequence."""
    runner, probe = stack(world=world, rtf=2.0, model_path="")
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 40.0), probe.modes
    finished = probe.spin_until(
        lambda: probe.goals_reached == len(probe.goals) or bool(runner.dead()), 400.0
    )
    assert not runner.dead(), [p.spec.name for p in runner.dead()]
    assert finished and probe.goals_reached == len(probe.goals), (probe.goals_reached, probe.pose)
    assert probe.collisions == 0
    # Never POLICY (no model); STOPPED only while the fallback cannot see (before the
    # first scan, or a scan late on a loaded machine), never for long.
    assert {m for _, m in probe.modes} <= {"FALLBACK", "IDLE", "STOPPED"}, probe.modes
    stopped = [r for r in probe.reasons if r.startswith("STOPPED")]
    assert all("fallback unhealthy" in r for r in stopped), stopped


def test_disabling_the_policy_hands_over_at_once_and_the_fallback_reaches_the_goal(stack, tmp_path):
    """policy/enable false -> FALLBACK on the event, and the fallback still reaches the goal."""
    runner, probe = stack(
        model_path=str(frozen_policy(tmp_path / "frozen.pt")),
        extra_parameters={"hybrid_fallback": {"stall_window": 60.0, "retry_after": 1.0}},
    )
    _start_policy(probe)
    sent = probe.sim_mono
    probe.enable.publish(Bool(data=False))
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 5.0), probe.modes
    handover = probe.modes[-1][0] - sent
    assert handover < PERIOD + SLACK, f"hand-over took {handover:.3f} s"
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "policy/active false" in probe.reasons[-1], probe.reasons
    assert probe.spin_until(lambda: probe.goals_reached >= 1, 120.0), probe.pose
    assert probe.collisions == 0


def test_frozen_policy_triggers_the_stall_switch(stack, tmp_path):
    """A policy that outputs zeros is healthy by every signal but progress."""
    runner, probe = stack(
        model_path=str(frozen_policy(tmp_path / "frozen.pt")),
        extra_parameters={"hybrid_fallback": {"stall_window": 3.0, "retry_after": 1.0}},
    )
    _start_policy(probe)
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 20.0), probe.modes
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "no progress" in probe.reasons[-1], probe.reasons


def test_killing_the_policy_process_triggers_fallback(stack, tmp_path):
    runner, probe = stack(
        model_path=str(frozen_policy(tmp_path / "frozen.pt")),
        extra_parameters={"hybrid_fallback": {"stall_window": 60.0, "retry_after": 1.0}},
    )
    _start_policy(probe)
    killed = probe.sim_mono
    runner.process("rl_policy_node").kill()
    assert probe.spin_until(lambda: probe.mode == "FALLBACK", 5.0), probe.modes
    took = probe.modes[-1][0] - killed
    assert took < POLICY_TIMEOUT + PERIOD + SLACK, f"FALLBACK after {took:.3f} s"
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "silent" in probe.reasons[-1], probe.reasons


def test_estop_zeroes_the_output_until_reset(stack):
    runner, probe = stack(model_path="")
    assert probe.spin_until(lambda: any(abs(v) > 0.05 for _, v, _ in probe.cmd_vel), 40.0)
    assert probe.call(probe.trigger).success
    pressed = probe.sim_mono
    probe.spin_until(lambda: False, 1.5)
    after = [(v, w) for t, v, w in probe.cmd_vel if t > pressed + SLACK]
    assert after and all(v == 0.0 and w == 0.0 for v, w in after)
    assert probe.call(probe.reset).success
    released = probe.sim_mono
    assert probe.spin_until(
        lambda: any(abs(v) > 0.02 for t, v, _ in probe.cmd_vel if t > released), 20.0
    )


def test_stopping_the_simulator_scan_zeroes_cmd_vel(stack):
    """The lidar goes silent (sim fault injection): the safety controller stops the robot."""
    runner, probe = stack(model_path="")
    probe.watch_scan()

    def driving_and_scanned() -> bool:
        moving = any(abs(v) > 0.05 for _, v, _ in probe.cmd_vel)
        return moving and probe.last_scan_at > probe.sim_mono - 0.5  # matched and current

    assert probe.spin_until(driving_and_scanned, 40.0)
    sim_parameters = probe.parameter_client("mujoco_sim")
    asked = probe.sim_mono
    assert probe.set_parameter(sim_parameters, "sensor_fault", "no_scan")

    def zero_since_stop() -> bool:
        return any(t > asked and v == 0.0 and w == 0.0 for t, v, w in probe.cmd_vel)

    assert probe.spin_until(zero_since_stop, 5.0), probe.cmd_vel[-5:]
    probe.spin_until(lambda: False, 1.5)
    # The stack's timeouts run from the last scan it received, not from the parameter
    # call: the simulator applies the fault when it serves the call, later on a busy CPU.
    stopped = probe.last_scan_at
    assert stopped < probe.sim_mono - 1.0, (asked, stopped)  # the scans did stop
    # The stop is the start of the zero run that lasts to the end (the DWA's own
    # commands may pass through zero before the scan counts as stale).
    since = [(t, v, w) for t, v, w in probe.cmd_vel if t > stopped]
    moving = [t for t, v, w in since if v != 0.0 or w != 0.0]
    zeros = [t for t, v, w in since if (v, w) == (0.0, 0.0) and (not moving or t > moving[-1])]
    assert zeros and probe.sim_mono - zeros[0] > 1.0, since[-10:]
    # source_timeout, the emergency ramp from top speed, a period, slack.
    took = zeros[0] - stopped
    bound = SOURCE_TIMEOUT + STOP_RAMP + PERIOD + SLACK
    assert took < bound, (f"zero after {took:.3f} s", stopped, since[:80])
    assert probe.collisions == 0
