"""rlguard_tools test support: a probe node for the full-stack tests, and their policies.

The probe watches the stack from the test process: mode and reason, `cmd_vel`,
`policy/cmd_vel`, ground truth, collisions and diagnostics, each stamped with the sim
time the probe has seen on /clock. It also injects: policy enable, e-stop, teleop,
goals, and parameter changes on any node.

Sim time is kept twice: `sim_now` is the last /clock value as published, and
`sim_mono` the sim time elapsed without backward jumps (a /clock that goes back adds
nothing), so a test can time events across an injected clock jump. Without a jump the
two are equal; every record is stamped with `sim_mono`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import rclpy
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.srv import GetParameters, SetParameters, SetParametersAtomically
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String, UInt32
from std_srvs.srv import Trigger

from rl_policy_node.policy_card import (
    ActionSpec,
    GoalSpec,
    ObservationSpec,
    PolicyCard,
    ScanSpec,
    VelocitySpec,
)
from rl_policy_node.policy_loader import save_policy
from rlguard_common import topics
from rlguard_common.node_support import qos_profile

LATCHED = qos_profile(topics.LATCHED)
RELIABLE = qos_profile(topics.RELIABLE)
COMMAND = qos_profile(topics.COMMAND)
SENSOR_DATA = qos_profile(topics.SENSOR_DATA)
SEEKER_ACTION = ActionSpec(linear=(-0.2, 0.2), angular=(-1.0, 1.0))
CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


def probe_card(name: str) -> PolicyCard:
    """The card of the probe policies: 16 scan sectors, goal terms at 16..18, SEEKER_ACTION.

    Observation: 16 min-reduced sectors (360 degrees, capped at 3.5 m), goal (distance
    capped at 5 m, cos, sin of the bearing), velocity and the previous action (23 inputs).
    """
    return PolicyCard(
        name=name,
        version="1.0.0",
        created="2026-01-01T00:00:00Z",
        observation=ObservationSpec(
            scan=ScanSpec(sectors=16, field_of_view_deg=360.0, range_cap=3.5),
            goal=GoalSpec(distance_cap=5.0),
            velocity=VelocitySpec(linear_scale=0.26, angular_scale=1.82),
            previous_action=True,
            history_length=1,
        ),
        action=SEEKER_ACTION,
    )


class LinearTanhPolicy(torch.nn.Module):
    """obs[B, D] -> tanh(W obs + b)[B, 2] with W and b zero until set."""

    def __init__(self, inputs: int, outputs: int = 2) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(outputs, inputs))
        self.bias = torch.nn.Parameter(torch.zeros(outputs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The bounded linear map of a batch of observations."""
        return torch.tanh(obs @ self.weight.T + self.bias)


def configured(node: str, name: str) -> object:
    """A parameter as config/<node>.yaml sets it (the value the stack runs with)."""
    data = yaml.safe_load((CONFIG_DIR / f"{node}.yaml").read_text())
    return data[node]["ros__parameters"][name]


def _save_linear_policy(path: Path, name: str, weights: dict[tuple[int, int], float]) -> Path:
    card = probe_card(name)
    module = LinearTanhPolicy(card.observation.size)
    with torch.no_grad():
        module.weight.zero_()
        for (row, column), value in weights.items():
            module.weight[row, column] = value
    traced = torch.jit.trace(module, torch.zeros(1, card.observation.size))
    save_policy(traced, path, card)
    return path


def frozen_policy(path: Path) -> Path:
    """A valid policy that always outputs (0, 0): active, but never moves the robot."""
    return _save_linear_policy(path, "frozen", {})


class SeekerModule(torch.nn.Module):
    """Go-to-goal on the goal terms of `probe_card` (16..18: distance, cos, sin).

    linear = tanh(10 * distance term) * cos(bearing), angular = tanh(3 * sin(bearing))
    it slows down near the goal (the distance term is distance / 5 m), so it stops on it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("gains", torch.tensor([10.0, 3.0]))  # gives the file a checksum

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        distance, cos, sin = obs[:, 16], obs[:, 17], obs[:, 18]
        linear = torch.tanh(self.gains[0] * distance) * cos
        return torch.stack((linear, torch.tanh(self.gains[1] * sin)), dim=1)


def seeker_policy(path: Path) -> Path:
    """A valid policy that drives to the goal (no obstacle avoidance), up to 0.2 m/s."""
    card = probe_card("seeker")
    traced = torch.jit.trace(SeekerModule(), torch.zeros(1, card.observation.size))
    save_policy(traced, path, card)
    return path


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` in KiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


class StackProbe:
    """Watches mode, commands, ground truth, collisions and diagnostics; injects inputs."""

    def __init__(
        self,
        context: object,
        goals: list[tuple[float, float]],
        tolerance: float,
        name: str = "full_stack_probe",
    ) -> None:
        self.node = rclpy.create_node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.goals, self.tolerance = goals, tolerance
        self.modes: list[tuple[float, str]] = []
        self.reasons: list[str] = []
        self.cmd_vel: list[tuple[float, float, float]] = []
        self.policy_cmd: list[tuple[float, float, float]] = []
        self.goals_reached = 0
        self.collisions = 0
        self.pose = (math.nan, math.nan)  # ground truth (world frame)
        self.odom_pose = (math.nan, math.nan)  # what the stack sees (odom frame; drifts)
        self.sim_now = 0.0
        self.sim_mono = 0.0
        self.clock_jumps: list[tuple[float, float]] = []  # (sim_mono, jump in s) per jump back
        self.last_scan_at = math.nan  # sim_mono of the last scan, once `watch_scan` was called
        self._last_clock: float | None = None
        self.diagnostics: dict[str, dict[str, str]] = {}
        node = self.node
        node.create_subscription(Clock, topics.CLOCK, self._on_clock, RELIABLE)
        node.create_subscription(String, topics.HYBRID_MODE, self._on_mode, LATCHED)
        node.create_subscription(String, topics.HYBRID_MODE_REASON, self._on_reason, LATCHED)
        node.create_subscription(Twist, topics.CMD_VEL, self._on_cmd, RELIABLE)
        node.create_subscription(Twist, topics.POLICY_CMD_VEL, self._on_policy_cmd, RELIABLE)
        node.create_subscription(Odometry, topics.SIM_GROUND_TRUTH, self._on_truth, RELIABLE)
        node.create_subscription(Odometry, topics.ODOM, self._on_odom, SENSOR_DATA)
        node.create_subscription(UInt32, topics.SIM_COLLISIONS, self._on_collisions, RELIABLE)
        node.create_subscription(
            DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE
        )
        self.enable = node.create_publisher(Bool, topics.POLICY_ENABLE, LATCHED)
        self.teleop = node.create_publisher(Twist, topics.TELEOP_CMD_VEL, COMMAND)
        self.goal = node.create_publisher(PoseStamped, topics.GOAL_POSE, RELIABLE)
        self.trigger = node.create_client(Trigger, topics.SAFETY_TRIGGER_ESTOP)
        self.reset = node.create_client(Trigger, topics.SAFETY_RESET)
        self._set_clients: dict[str, object] = {}
        self._get_clients: dict[str, object] = {}

    # ------------------------------------------------------------------ callbacks

    def _on_clock(self, msg: Clock) -> None:
        now = msg.clock.sec + msg.clock.nanosec * 1e-9
        if self._last_clock is None:
            self.sim_mono = now
        elif now >= self._last_clock:
            self.sim_mono += now - self._last_clock
        else:
            self.clock_jumps.append((self.sim_mono, now - self._last_clock))
        self._last_clock = now
        self.sim_now = now

    def _on_mode(self, msg: String) -> None:
        self.modes.append((self.sim_mono, msg.data))

    def _on_reason(self, msg: String) -> None:
        self.reasons.append(msg.data)

    def _on_cmd(self, msg: Twist) -> None:
        self.cmd_vel.append((self.sim_mono, msg.linear.x, msg.angular.z))

    def _on_policy_cmd(self, msg: Twist) -> None:
        self.policy_cmd.append((self.sim_mono, msg.linear.x, msg.angular.z))

    def _on_collisions(self, msg: UInt32) -> None:
        self.collisions = int(msg.data)

    def _on_odom(self, msg: Odometry) -> None:
        self.odom_pose = (msg.pose.pose.position.x, msg.pose.pose.position.y)

    def _on_truth(self, msg: Odometry) -> None:
        self.pose = (msg.pose.pose.position.x, msg.pose.pose.position.y)
        if self.goals_reached < len(self.goals):
            gx, gy = self.goals[self.goals_reached]
            if math.hypot(self.pose[0] - gx, self.pose[1] - gy) <= self.tolerance:
                self.goals_reached += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            values["message"] = status.message
            values["received_at"] = f"{self.sim_mono:.3f}"
            self.diagnostics[status.name] = values

    def watch_scan(self) -> None:
        """Also note when each scan arrives (`last_scan_at`, sim_mono); off by default, as
        360-beam scans at 10 Hz cost the probe's executor time."""
        self.node.create_subscription(LaserScan, topics.SCAN, self._on_scan, SENSOR_DATA)

    def _on_scan(self, msg: LaserScan) -> None:
        self.last_scan_at = self.sim_mono

    # ------------------------------------------------------------------ queries

    @property
    def mode(self) -> str:
        """The last mode the arbiter published ('' before the first)."""
        return self.modes[-1][1] if self.modes else ""

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin the probe until `condition()` holds or `timeout` wall seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def spin_for_sim(self, seconds: float, timeout: float = 60.0) -> None:
        """Spin until `seconds` of sim time have passed (or `timeout` wall seconds)."""
        until = self.sim_mono + seconds
        self.spin_until(lambda: self.sim_mono >= until, timeout)

    def diagnostic(self, name: str, key: str, since: float = -math.inf) -> str | None:
        """A value of the diagnostics status `name` received after `since` (sim_mono)."""
        values = self.diagnostics.get(name)
        if values is None or float(values["received_at"]) < since:
            return None
        return values.get(key)

    def commands_since(self, since: float) -> list[tuple[float, float, float]]:
        """`cmd_vel` records (sim_mono, linear, angular) received after `since`."""
        return [c for c in self.cmd_vel if c[0] > since]

    # ------------------------------------------------------------------ services

    def call(self, client: object) -> Trigger.Response:
        """Call a std_srvs/Trigger service and return its response."""
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        assert self.spin_until(future.done, 10.0)
        return future.result()

    def parameter_client(self, node: str) -> object:
        """The (cached) SetParameters client of `node`, once the service is up."""
        if node not in self._set_clients:
            client = self.node.create_client(SetParameters, f"/{node}/set_parameters")
            assert client.wait_for_service(timeout_sec=10.0), f"{node}/set_parameters"
            self._set_clients[node] = client
        return self._set_clients[node]

    def set_parameters(self, node: str, values: dict[str, object]) -> tuple[bool, str]:
        """Set `values` on `node` in one request; (all successful, reasons joined)."""
        client = self.parameter_client(node)
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        future = client.call_async(request)
        assert self.spin_until(future.done, 20.0), f"{node}/set_parameters timed out"
        results = future.result().results
        return all(r.successful for r in results), "; ".join(r.reason for r in results if r.reason)

    def set_parameters_atomically(self, node: str, values: dict[str, object]) -> tuple[bool, str]:
        """Set `values` on `node` all or nothing; (successful, reason)."""
        client = self.node.create_client(
            SetParametersAtomically, f"/{node}/set_parameters_atomically"
        )
        try:
            assert client.wait_for_service(timeout_sec=10.0), f"{node}/set_parameters_atomically"
            request = SetParametersAtomically.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            )
            future = client.call_async(request)
            assert self.spin_until(future.done, 20.0), f"{node}/set_parameters_atomically"
            result = future.result().result
            return result.successful, result.reason
        finally:
            self.node.destroy_client(client)

    def set_parameter(self, client: object, name: str, value: object) -> bool:
        """Set one parameter through `client`; True if it was accepted."""
        parameter = Parameter(name, value=value).to_parameter_msg()
        request = SetParameters.Request(parameters=[parameter])
        future = client.call_async(request)
        assert self.spin_until(future.done, 10.0)
        return future.result().results[0].successful

    def get_parameters(self, node: str, names: list[str]) -> dict[str, object]:
        """Current values of `names` on `node`."""
        if node not in self._get_clients:
            client = self.node.create_client(GetParameters, f"/{node}/get_parameters")
            assert client.wait_for_service(timeout_sec=10.0), f"{node}/get_parameters"
            self._get_clients[node] = client
        future = self._get_clients[node].call_async(GetParameters.Request(names=names))
        assert self.spin_until(future.done, 10.0), f"{node}/get_parameters timed out"
        values = [parameter_value_to_python(v) for v in future.result().values]
        return dict(zip(names, values, strict=True))

    def close(self) -> None:
        """Destroy the probe node."""
        self.executor.shutdown()
        self.node.destroy_node()
