"""`make demo`: the whole stack on the embedded simulator, scripted and recorded.

Starts the simulator and the stack (each node its own process, see `stack_runner`),
then drives the warehouse world's goal sequence: the policy drives, is switched off
(the fallback finishes a goal), is switched on again, is swapped to a weak model by a
parameter set, which the policy node's live monitor rolls back on its own while it is on
probation (the report lists the event, its reason and how long it took), and the e-stop
is pressed and reset. A one-line status is
printed while it runs and a summary table at the end; `runs/<timestamp>/` gets
`report.json`, `trajectory.png` and `recording.mcap`. Exit status 1 if a goal was
missed, anything collided, or a scripted step did not do what it should.

    python -m rlguard_tools.demo --world warehouse --rtf 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32, Float32MultiArray, String, UInt32
from std_srvs.srv import Trigger

from rlguard_common.node_support import qos_profile
from rlguard_common.topics import (
    CMD_VEL,
    DIAGNOSTICS,
    HYBRID_GOAL,
    HYBRID_MODE,
    NAV_CMD_VEL,
    ODOM,
    POLICY_CMD_VEL,
    POLICY_ENABLE,
    POLICY_EVENTS,
    POLICY_ROLLBACK,
    POLICY_TRANSITION,
    SAFETY_RESET,
    SAFETY_SCALE,
    SAFETY_TRIGGER_ESTOP,
    SCAN,
    SENSOR_DATA,
    SIM_AT_FAULT_COLLISIONS,
    SIM_COLLISIONS,
    SIM_GROUND_TRUTH,
    QosSpec,
)
from rlguard_common.topics import EVENTS as EVENTS_SPEC
from rlguard_common.topics import GOAL as GOAL_SPEC
from rlguard_common.topics import LATCHED as LATCHED_SPEC
from rlguard_common.topics import RELIABLE as RELIABLE_SPEC
from rlguard_common.world import load_world
from rlguard_tools.demo_report import Action, DemoLog, DemoScript, Sample, plot_trajectory
from rlguard_tools.mcap_recording import McapRecorder
from rlguard_tools.stack_runner import StackOptions, StackRunner, config_dir

LATCHED = qos_profile(LATCHED_SPEC)
RELIABLE = qos_profile(RELIABLE_SPEC)
# The recorder's odom reader: best effort, a little deeper than SENSOR_DATA.
BEST_EFFORT = qos_profile(QosSpec(depth=10, reliability="best_effort"))
# Topics the MCAP recording holds: (topic, message class, ROS type name, QoS).
RECORDED_TOPICS = (
    (SCAN, LaserScan, "sensor_msgs/msg/LaserScan", qos_profile(SENSOR_DATA)),
    (ODOM, Odometry, "nav_msgs/msg/Odometry", BEST_EFFORT),
    (CMD_VEL, Twist, "geometry_msgs/msg/Twist", RELIABLE),
    (POLICY_CMD_VEL, Twist, "geometry_msgs/msg/Twist", RELIABLE),
    (HYBRID_MODE, String, "std_msgs/msg/String", LATCHED),
    (SAFETY_SCALE, Float32, "std_msgs/msg/Float32", RELIABLE),
    # What `rl_training dataset` pairs with the policy's transition records (empty
    # unless --record-transitions): the command after the arbiter, the goal it handed on,
    # the collision count.
    (NAV_CMD_VEL, Twist, "geometry_msgs/msg/Twist", RELIABLE),
    (HYBRID_GOAL, PoseStamped, "geometry_msgs/msg/PoseStamped", qos_profile(GOAL_SPEC)),
    (SIM_COLLISIONS, UInt32, "std_msgs/msg/UInt32", RELIABLE),
    (POLICY_TRANSITION, Float32MultiArray, "std_msgs/msg/Float32MultiArray", RELIABLE),
    # The nodes' health, the policy node's live monitor and drift among it, and its events.
    (DIAGNOSTICS, DiagnosticArray, "diagnostic_msgs/msg/DiagnosticArray", RELIABLE),
    (POLICY_EVENTS, String, "std_msgs/msg/String", qos_profile(EVENTS_SPEC)),
)


def intervention_threshold() -> float:
    """hybrid_fallback's `intervention_scale_threshold` as configured in config/."""
    path = config_dir() / "hybrid_fallback.yaml"
    parameters = yaml.safe_load(path.read_text())["hybrid_fallback"]["ros__parameters"]
    return float(parameters["intervention_scale_threshold"])


class DemoNode(Node):
    """Watches the stack, carries out the demo script, and records the run."""

    def __init__(
        self, log: DemoLog, recorder: McapRecorder, goal_tolerance: float, models: tuple[str, str]
    ) -> None:
        super().__init__(
            "rlguard_demo",
            parameter_overrides=[rclpy.parameter.Parameter("use_sim_time", value=True)],
        )
        self.log = log
        self.recorder = recorder
        self.goal_tolerance = goal_tolerance
        self.primary_model, self.alternate_model = models
        self.script = DemoScript()
        self.pose = (math.nan, math.nan)
        self.speed = 0.0
        self.scale = 1.0
        self.mode = "-"
        self.estop_engaged = False
        self.estop_since = 0.0
        self.goals_reached = 0
        self._intervening = False
        self.intervention_threshold = intervention_threshold()

        self.create_subscription(Odometry, SIM_GROUND_TRUTH, self._on_ground_truth, RELIABLE)
        self.create_subscription(String, HYBRID_MODE, self._on_mode, LATCHED)
        self.create_subscription(Float32, SAFETY_SCALE, self._on_scale, RELIABLE)
        self.create_subscription(UInt32, SIM_COLLISIONS, self._on_collisions, RELIABLE)
        self.create_subscription(
            UInt32, SIM_AT_FAULT_COLLISIONS, self._on_at_fault_collisions, RELIABLE
        )
        self.command = (0.0, 0.0)
        self.policy_command = (0.0, 0.0)
        self.model = self.primary_model
        self.create_subscription(Twist, CMD_VEL, self._on_cmd_vel, RELIABLE)
        for topic, message_type, type_name, qos in RECORDED_TOPICS:
            name = topic if topic.startswith("/") else f"/{topic}"
            recorder.add_topic(name, type_name)
            self.create_subscription(
                message_type, topic, self._recorder_callback(name), qos, raw=True
            )
        self.enable_publisher = self.create_publisher(Bool, POLICY_ENABLE, LATCHED)
        self.set_parameters_client = self.create_client(
            SetParameters, "rl_policy_node/set_parameters"
        )
        self.trigger_client = self.create_client(Trigger, SAFETY_TRIGGER_ESTOP)
        self.reset_client = self.create_client(Trigger, SAFETY_RESET)
        self.rollback_client = self.create_client(Trigger, POLICY_ROLLBACK)
        self.rolled_back_at: float | None = None
        self.create_subscription(
            String, POLICY_EVENTS, self._on_policy_event, qos_profile(EVENTS_SPEC)
        )
        self.create_subscription(Twist, POLICY_CMD_VEL, self._on_policy_cmd_vel, RELIABLE)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, RELIABLE)
        self.create_timer(0.1, self._tick)

    # -- inputs -------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _recorder_callback(self, topic: str):
        def record(serialized: bytes) -> None:
            self.recorder.write(topic, serialized, self.get_clock().now().nanoseconds)

        return record

    def _on_ground_truth(self, msg: Odometry) -> None:
        self.pose = (msg.pose.pose.position.x, msg.pose.pose.position.y)
        self.speed = math.hypot(msg.twist.twist.linear.x, msg.twist.twist.linear.y)
        # Goals are world points, judged on the true pose as the simulator judges them
        # (it hands each one to the stack in the odom frame as it was when issued).
        x, y = self.pose
        goals = self.log.goals
        if self.goals_reached < len(goals):
            gx, gy = goals[self.goals_reached]
            if math.hypot(x - gx, y - gy) <= self.goal_tolerance:
                self.goals_reached += 1
                self.log.goal_times.append(self._now())
                self.log.event(self._now(), f"goal {self.goals_reached} reached", mode=self.mode)

    def _on_mode(self, msg: String) -> None:
        self.mode = msg.data.split(":", 1)[0].strip().upper()

    def _on_scale(self, msg: Float32) -> None:
        self.scale = float(msg.data)
        # The arbiter's notion of an intervention (acceleration ramps trim the scale a
        # little on every start and stop; those are not interventions).
        intervening = self.scale < self.intervention_threshold
        if intervening and not self._intervening:
            self.log.interventions += 1
        self._intervening = intervening

    def _collision_details(self) -> dict:
        """What the robot was doing: where, which mode drove it, the commands in force."""
        return {
            "x": round(self.pose[0], 3),
            "y": round(self.pose[1], 3),
            "mode": self.mode,
            "model": self.model,
            "speed": round(self.speed, 3),
            "safety_scale": round(self.scale, 3),
            "cmd_vel": [round(v, 3) for v in self.command],
            "policy_cmd_vel": [round(v, 3) for v in self.policy_command],
        }

    def _on_collisions(self, msg: UInt32) -> None:
        self.log.collision(self._now(), int(msg.data), False, **self._collision_details())

    def _on_at_fault_collisions(self, msg: UInt32) -> None:
        self.log.collision(self._now(), int(msg.data), True, **self._collision_details())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "mujoco_sim: simulator":
                self.log.simulator = {kv.key: kv.value for kv in status.values}

    def _on_policy_event(self, msg: String) -> None:
        try:
            event = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        self.log.policy_event(self._now(), event)
        if event.get("type") == "rollback":
            self.model = self.primary_model
            if event.get("automatic") and self.rolled_back_at is None:
                self.rolled_back_at = self._now()
                what = "the live monitor rolled the model back"
                self.log.event(self._now(), what, reason=event.get("reason"))

    def _on_policy_cmd_vel(self, msg: Twist) -> None:
        self.policy_command = (msg.linear.x, msg.angular.z)

    def _on_cmd_vel(self, msg: Twist) -> None:
        self.command = (msg.linear.x, msg.angular.z)
        # Publishes from just before the confirmation may still be queued on a loaded
        # machine (a topic and a service reply are not ordered): judge after 0.5 s of
        # sim time. The e-stop's own latency is measured by the benchmarks.
        if self.estop_engaged and self._now() - self.estop_since > 0.5:
            self.log.estop_max_speed = max(
                self.log.estop_max_speed, abs(msg.linear.x), abs(msg.angular.z)
            )

    # -- the script ---------------------------------------------------------------
    def _tick(self) -> None:
        now = self._now()
        if not math.isnan(self.pose[0]):
            self.log.add_sample(
                Sample(now, self.pose[0], self.pose[1], self.mode, self.speed, self.scale)
            )
        for action in self.script.step(now, self.goals_reached, self.rolled_back_at):
            self._carry_out(action, now)

    def _carry_out(self, action: Action, now: float) -> None:
        self.log.event(now, action.value, x=self.pose[0], y=self.pose[1], mode=self.mode)
        self.get_logger().info(f"demo: {action.value}")
        if action in (Action.ENABLE_POLICY, Action.REENABLE_POLICY):
            self.enable_publisher.publish(Bool(data=True))
        elif action is Action.DISABLE_POLICY:
            self.enable_publisher.publish(Bool(data=False))
        elif action is Action.SWAP_TO_ALTERNATE:
            self.model = self.alternate_model
            self.log.expect_rollback = True
            self._set_model(self.alternate_model, action)
        elif action is Action.ROLLBACK_BY_HAND:
            self._call(self.rollback_client, action)
        elif action is Action.TRIGGER_ESTOP:
            self._call(self.trigger_client, action)
        elif action is Action.RESET_ESTOP:
            self.estop_engaged = False
            self._call(self.reset_client, action)

    def _set_model(self, model: str, action: Action) -> None:
        request = SetParameters.Request()
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=model)
        request.parameters = [Parameter(name="model_path", value=value)]
        future = self.set_parameters_client.call_async(request)

        def done(result_future) -> None:
            result = result_future.result().results[0]
            self.log.event(
                self._now(),
                f"{action.value}: {'ok' if result.successful else 'refused'}",
                model=model,
                reason=result.reason,
            )
            if not result.successful:
                self.log.script_problems.append(f"model swap to {model} refused: {result.reason}")

        future.add_done_callback(done)

    def _call(self, client, action: Action) -> None:
        future = client.call_async(Trigger.Request())

        def done(result_future) -> None:
            response = result_future.result()
            self.log.event(
                self._now(),
                f"{action.value}: {'ok' if response.success else 'refused'}",
                message=response.message,
            )
            if not response.success:
                self.log.script_problems.append(f"{action.value} refused: {response.message}")
            elif action is Action.TRIGGER_ESTOP:
                # Judged from the moment the safety controller confirmed the e-stop.
                self.estop_engaged, self.estop_since = True, self._now()

        future.add_done_callback(done)

    def status_line(self) -> str:
        """The live one-line status."""
        return (
            f"t={self._now():6.1f}s  mode={self.mode:<8}"
            f"  goals={self.goals_reached}/{len(self.log.goals)}"
            f"  speed={self.speed:4.2f} m/s  scale={self.scale:4.2f}"
            f"  interventions={self.log.interventions}  collisions={self.log.collisions}"
            f" (at fault {self.log.at_fault_collisions})"
        )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="warehouse")
    parser.add_argument("--robot", default="default")
    parser.add_argument("--model", default="nav_policy.pt", help="primary policy (models/)")
    parser.add_argument("--alternate-model", default="weak_policy.pt", help="swapped in mid-run")
    parser.add_argument("--rtf", type=float, default=2.0, help="simulation real-time factor")
    # Generous: the simulation runs in lockstep with the stack, so a loaded machine
    # stretches the wall time of a run (never its sim-time outcome).
    parser.add_argument("--timeout", type=float, default=600.0, help="wall-clock budget (s)")
    parser.add_argument("--out", default=None, help="output directory (default runs/<time>)")
    parser.add_argument(
        "--record-transitions",
        action="store_true",
        help="record policy/transition for offline RL (rl_training dataset RUN_DIR)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scripted demo; 0 when every goal was reached and every step behaved."""
    args = _parse(argv)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    world = load_world(args.world)
    log = DemoLog(world=world.name, goals=[tuple(g) for g in world.goals])
    options = StackOptions(
        world=args.world,
        robot=args.robot,
        model_path=args.model,
        real_time_factor=args.rtf,
        extra_parameters={"rl_policy_node": {"enabled_on_start": False}},
        record_transitions=args.record_transitions,
    )
    runner = StackRunner(options, out / "logs").start()
    recorder = McapRecorder(out / "recording.mcap")
    rclpy.init()
    node = DemoNode(log, recorder, world.goal_tolerance, (args.model, args.alternate_model))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    last_print = 0.0
    try:
        while time.monotonic() - started < args.timeout:
            executor.spin_once(timeout_sec=0.05)
            if node.goals_reached >= len(log.goals) and not node.script.pending():
                break
            dead = runner.dead()
            if dead:
                log.script_problems.append(
                    "node(s) died: " + ", ".join(p.spec.name or "?" for p in dead)
                )
                break
            if time.monotonic() - last_print > (0.2 if interactive else 5.0):
                last_print = time.monotonic()
                print(
                    ("\r" if interactive else "") + node.status_line(),
                    end="" if interactive else "\n",
                    flush=True,
                )
        else:
            log.script_problems.append(f"timed out after {args.timeout:.0f} s wall time")
        pending = node.script.pending()
        if pending:
            log.script_problems.append(
                "scripted steps not reached: " + ", ".join(a.value for a in pending)
            )
    except (KeyboardInterrupt, ExternalShutdownException):
        log.script_problems.append("interrupted")
    finally:
        print()
        recorder.close()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
        runner.stop()
    log.wall_time = time.monotonic() - started
    log.write_report(out / "report.json")
    plot_trajectory(log, world, out / "trajectory.png")
    print(log.summary_table())
    print(f"\nartefacts: {out}/report.json, {out}/trajectory.png, {out}/recording.mcap")
    return 0 if not log.failures() else 1


if __name__ == "__main__":
    sys.exit(main())
