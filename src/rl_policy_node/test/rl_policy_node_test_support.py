"""Helpers for the rl_policy_node tests: small policies and cards, and a scripted probe.

Policies: `LinearTanhPolicy` and `NanPolicy` modules, `small_card`, and writers of
TorchScript (`write_policy`) and ONNX (`write_onnx`) files.

The probe (`PolicyProbe`) publishes a recorded scan/odom (from the golden observation
data) at 20 Hz with fresh stamps, sends goals and enable flags, records every command
with its arrival time, and reads `policy/active` and `/diagnostics`. It spins in a
background thread so the test body can wait on plain conditions. `expected_commands`
and `expected_action` give what the core computes offline on the same recording.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.model_gate import card_digest
from rl_policy_node.observation import ObservationBuilder, ScanInput
from rl_policy_node.policy_card import (
    ActionSpec,
    GateRecord,
    GoalSpec,
    ObservationSpec,
    PolicyCard,
    ScanSpec,
    VelocitySpec,
)
from rl_policy_node.policy_inputs import OdomSample, ScanSample
from rl_policy_node.policy_loader import load_policy, save_policy
from rl_policy_node.policy_runtime import PolicyController
from rl_policy_node.policy_slots import PolicySlot, prepare_policy
from rlguard_common import topics
from rlguard_common.node_support import qos_profile

# ---------------------------------------------------------------- policies and cards


class LinearTanhPolicy(torch.nn.Module):
    """obs[B, D] -> tanh(W obs + b)[B, 2], deterministic weights from a seed."""

    def __init__(self, inputs: int, outputs: int = 2, seed: int = 0, bias: float = 0.0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(outputs, inputs, generator=generator) * 0.1)
        self.bias = torch.nn.Parameter(torch.full((outputs,), bias))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(obs @ self.weight.T + self.bias)


class NanPolicy(torch.nn.Module):
    """Returns NaN for every input (a diverged network)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], 2), float("nan")) + obs[:, :2] * 0.0


def small_card(sectors: int = 16, fov_deg: float = 360.0, **changes: object) -> PolicyCard:
    """A compact card: `sectors` min-reduced scan values, capped goal, velocity, prev action."""
    card = PolicyCard(
        name="test-policy",
        version="1.0.0",
        created="2026-01-01T00:00:00Z",
        observation=ObservationSpec(
            scan=ScanSpec(sectors=sectors, field_of_view_deg=fov_deg, range_cap=3.5),
            goal=GoalSpec(distance_cap=5.0),
            velocity=VelocitySpec(linear_scale=0.26, angular_scale=1.82),
            previous_action=True,
            history_length=1,
        ),
        action=ActionSpec(linear=(-0.1, 0.26), angular=(-1.82, 1.82)),
    )
    return card.with_updates(**changes) if changes else card


def write_policy(
    path: Path, card: PolicyCard | None, inputs: int | None = None, seed: int = 0
) -> Path:
    """Trace a LinearTanhPolicy and save it, with `card` embedded unless None."""
    size = inputs if inputs is not None else (card.observation.size if card else 69)
    module = torch.jit.trace(LinearTanhPolicy(size, seed=seed), torch.zeros(1, size))
    if card is None:
        torch.jit.save(module, str(path))
    else:
        save_policy(module, path, card)
    return path


# ------------------------------------------------------------------- gated models

SHA_A = "a" * 64
GATE_FAILURES = ("corridor: success 0.90 < 0.95", "dynamic: 2 at-fault collision(s)", "x: y")


def evaluated_card(
    passed: bool = True, version: int = 2, card: PolicyCard | None = None
) -> PolicyCard:
    """`card` (default `small_card`) whose evaluation holds a gate verdict, as promote
    writes it."""
    verdict = {
        "passed": passed,
        "mode": "policy_safety",
        "version": version,
        "failures": [] if passed else list(GATE_FAILURES),
    }
    return (card or small_card()).with_updates(
        weights_sha256=SHA_A,
        evaluation={"seed": 900_000, "summary": {"corridor": {}}, "gate": verdict},
    )


def gated(card: PolicyCard, weights: str = SHA_A) -> PolicyCard:
    """`card` with a gate record of its own evaluation verdict, for `weights`."""
    verdict = card.evaluation["gate"]
    record = GateRecord(
        passed=verdict["passed"],
        version=verdict["version"],
        weights_sha256=weights,
        card_sha256=card_digest(card),
        evaluated="2026-03-01T12:00:00Z",
        failures=tuple(verdict["failures"]),
        mode="policy_safety",
        seed=900_000,
        episodes_per_world=4,
        worlds=("corridor", "dynamic"),
    )
    return card.with_updates(gate=record)


def gated_file(path: Path, passed: bool, seed: int = 0, card: PolicyCard | None = None) -> Path:
    """A policy file whose card carries a gate record for its own weights."""
    write_policy(path, evaluated_card(passed, card=card), seed=seed)
    sha = load_policy(path).sha256
    evaluated = evaluated_card(passed, card=card).with_updates(weights_sha256=sha)
    write_policy(path, gated(evaluated, weights=sha), seed=seed)
    return path


def write_onnx(
    path: Path,
    card: PolicyCard | None,
    inputs: int | None = None,
    seed: int = 0,
    module: torch.nn.Module | None = None,
) -> Path:
    """Export a LinearTanhPolicy (or `module`) as an ONNX file, `card` in its metadata.

    With a card, its sha256 is set from the module's weights (as `save_policy` does), so
    `write_policy` and `write_onnx` of the same seed give twins with one sha256.
    """
    from rl_policy_node.onnx_export import onnx_bytes_from_module
    from rl_policy_node.policy_loader import weights_sha256

    size = inputs if inputs is not None else (card.observation.size if card else 69)
    module = module if module is not None else LinearTanhPolicy(size, seed=seed).eval()
    text = card.with_updates(weights_sha256=weights_sha256(module)).to_json() if card else ""
    data = onnx_bytes_from_module(module, size, text) if text else _bare_onnx(module, size)
    path.write_bytes(data)
    return path


def _bare_onnx(module: torch.nn.Module, size: int) -> bytes:
    """ONNX bytes of `module` without metadata (a card-less file)."""
    import onnx

    from rl_policy_node.onnx_export import onnx_bytes_from_module

    model = onnx.load_from_string(onnx_bytes_from_module(module, size, "{}"))
    del model.metadata_props[:]
    return model.SerializeToString()


# ------------------------------------------------------------ controller-level inputs

LIMITS = (0.26, 1.82)
SEC = 1_000_000_000
T0 = 100 * SEC
_DEFAULT_CARD = object()


def scan_input(beams: int = 360, fov_deg: float = 360.0) -> ScanInput:
    """A smooth synthetic scan of `beams` beams over `fov_deg`, centred ahead."""
    fov = math.radians(fov_deg)
    full = fov_deg >= 360.0
    increment = fov / beams if full else fov / (beams - 1)
    ranges = 1.0 + 0.5 * np.sin(np.arange(beams) * 0.1)
    return ScanInput(ranges, -fov / 2, increment, 0.1, 6.0)


def prepared_slot(
    tmp_path: Path,
    name: str = "p.pt",
    seed: int = 0,
    card: object = _DEFAULT_CARD,
    **kwargs: object,
) -> PolicySlot:
    """A LinearTanhPolicy written to `tmp_path/name` and prepared under `LIMITS`.

    ``card`` defaults to `small_card()`; None writes a card-less file.
    """
    card = small_card() if card is _DEFAULT_CARD else card
    path = write_policy(tmp_path / name, card, seed=seed)
    return prepare_policy(path, name, LIMITS, **kwargs)


def controller_with_inputs(
    slot: PolicySlot | None = None, now: int = T0, **kwargs: object
) -> PolicyController:
    """A controller with `slot` installed, fresh scan and odom at `now`, and a goal."""
    controller = PolicyController(**kwargs)
    controller.install(slot)
    controller.scan = ScanSample(scan_input(), now, now)
    controller.odom = OdomSample((0.0, 0.0, 0.3), (0.1, 0.2), now, now)
    controller.set_goal(3.0, 1.0)
    return controller


class NanOnInput(torch.nn.Module):
    """Finite on the all-zero load check, NaN on any real observation."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros(obs.shape[0], 2)
        live = obs.abs().sum(dim=1, keepdim=True) > 0
        return torch.where(live, torch.full_like(zeros, float("nan")), zeros)


def nan_on_input_policy(tmp_path: Path) -> Path:
    """A carded TorchScript file of `NanOnInput` (passes loading, fails a live dry run)."""
    path = tmp_path / "nan.pt"
    save_policy(torch.jit.script(NanOnInput()), path, small_card())
    return path


# ------------------------------------------------------ recorded inputs and the probe


GOLDEN = Path(__file__).parent / "data" / "golden_observations.json"
NODE_MODULE = "rl_policy_node.policy_node"


@dataclasses.dataclass(frozen=True)
class Recording:
    """One recorded scan (270 deg, 1081 beams, with NaN/inf/0 readings), odom and goal."""

    ranges: np.ndarray
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float
    pose: tuple[float, float, float]
    velocity: tuple[float, float]
    goal: tuple[float, float]
    card: PolicyCard

    def scan_input(self) -> ScanInput:
        """The scan as the node sees it after transport (LaserScan fields are float32)."""
        f32 = np.float32
        return ScanInput(
            self.ranges.astype(np.float32),
            float(f32(self.angle_min)),
            float(f32(self.angle_increment)),
            float(f32(self.range_min)),
            float(f32(self.range_max)),
        )


def load_recording(case: str = "compact-270") -> Recording:
    """The recorded inputs of one golden case."""
    data = json.loads(GOLDEN.read_text())[case]
    scan = data["scan"]
    return Recording(
        ranges=np.array([np.nan if r is None else r for r in scan["ranges"]], dtype=np.float64),
        angle_min=scan["angle_min"],
        angle_increment=scan["angle_increment"],
        range_min=scan["range_min"],
        range_max=scan["range_max"],
        pose=tuple(data["pose"]),
        velocity=tuple(data["velocity"]),
        goal=tuple(data["goal"]),
        card=PolicyCard.from_json(json.dumps(data["card"])),
    )


def stateless_card(sectors: int = 24, fov_deg: float = 240.0) -> PolicyCard:
    """A card without previous action or history: constant inputs give a constant command."""
    card = small_card(sectors, fov_deg)
    return card.with_updates(
        observation=dataclasses.replace(card.observation, previous_action=False)
    )


def expected_commands(
    path: Path, recording: Recording, ticks: int = 1, max_velocity=(0.26, 1.82)
) -> list[tuple[float, float]]:
    """Commands the core computes offline for `ticks` ticks on the constant recording."""
    implicit = ActionSpec((-max_velocity[0], max_velocity[0]), (-max_velocity[1], max_velocity[1]))
    policy = load_policy(path, implicit_action=implicit)
    builder = ObservationBuilder(policy.card.observation)
    action_spec = policy.card.action if policy.has_card else implicit
    previous = np.zeros(2)
    commands = []
    for _ in range(ticks):
        observation = builder.build(
            recording.scan_input(), recording.pose, recording.velocity, recording.goal, previous
        )
        action = policy(observation)
        commands.append(action_to_velocity(action, action_spec))
        previous = np.clip(action.astype(np.float64), -1.0, 1.0)
    return commands


def expected_action(path: Path, recording: Recording) -> np.ndarray:
    """The clipped [-1, 1] action of a stateless policy on the recording."""
    policy = load_policy(path)
    builder = ObservationBuilder(policy.card.observation)
    observation = builder.build(
        recording.scan_input(), recording.pose, recording.velocity, recording.goal, (0.0, 0.0)
    )
    return np.clip(policy(observation).astype(np.float64), -1.0, 1.0)


def scan_message(recording: Recording) -> LaserScan:
    """The recorded scan as a LaserScan (stamp left for the sender).

    The float32 fields hold float32 values already, as they arrive after transport
    (an in-process message would otherwise keep the float64 the recording has).
    """
    f32 = np.float32
    msg = LaserScan()
    msg.header.frame_id = "base_scan"
    msg.angle_min = float(f32(recording.angle_min))
    msg.angle_increment = float(f32(recording.angle_increment))
    last = recording.angle_min + recording.angle_increment * (recording.ranges.size - 1)
    msg.angle_max = float(f32(last))
    msg.range_min = float(f32(recording.range_min))
    msg.range_max = float(f32(recording.range_max))
    msg.ranges = recording.ranges.astype(np.float32).tolist()
    return msg


def odom_message(recording: Recording) -> Odometry:
    """The recorded pose and velocity as Odometry in frame odom (stamp left for the sender)."""
    x, y, yaw = recording.pose
    msg = Odometry()
    msg.header.frame_id = "odom"
    msg.child_frame_id = "base_footprint"
    msg.pose.pose.position.x = x
    msg.pose.pose.position.y = y
    msg.pose.pose.orientation.z = math.sin(yaw / 2.0)
    msg.pose.pose.orientation.w = math.cos(yaw / 2.0)
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = recording.velocity
    return msg


def goal_message(x: float, y: float, frame: str = "odom") -> PoseStamped:
    """A goal pose (stamp left for the sender)."""
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x = x
    msg.pose.position.y = y
    msg.pose.orientation.w = 1.0
    return msg


def _parameter_msg(name: str, value: object) -> ParameterMsg:
    if isinstance(value, bool):
        pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, int):
        pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    elif isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    elif isinstance(value, str):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    else:
        pv = ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float(v) for v in value]
        )
    return ParameterMsg(name=name, value=pv)


class PolicyProbe:
    """Feeds the policy node and records what it says."""

    def __init__(self, context: object, recording: Recording, node_name: str = "rl_policy_node"):
        self.recording = recording
        # Earlier tests in this process (hypothesis, torch) leave a large heap; a full
        # collection over it stalls this probe's callbacks for long enough to look like
        # missed commands. Freezing the heap keeps collections short; long ones are
        # recorded so a timing failure can say whether the probe itself was stalled.
        gc.collect()
        gc.freeze()
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)
        self.node = rclpy.create_node("policy_probe", context=context)
        node = self.node
        latched = qos_profile(topics.LATCHED)
        self.scan_pub = node.create_publisher(
            LaserScan, topics.SCAN, qos_profile(topics.SENSOR_DATA)
        )
        self.odom_pub = node.create_publisher(Odometry, topics.ODOM, 10)
        self.goal_pub = node.create_publisher(PoseStamped, topics.GOAL_POSE, 10)
        self.enable_pub = node.create_publisher(Bool, topics.POLICY_ENABLE, latched)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, float, float]] = []
        self.shadow_commands: list[tuple[float, float, float]] = []
        self.active: list[tuple[float, bool]] = []
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_message = ""
        self.diagnostics_level = -1
        # Every status this node publishes, by name suffix ("policy", "model", ...):
        # (level, message, values).
        self.statuses: dict[str, tuple[int, str, dict[str, str]]] = {}
        self._node_name = node_name
        self.status_name = f"{node_name}: policy"
        node.create_subscription(Twist, topics.POLICY_CMD_VEL, self._on_cmd, 50)
        node.create_subscription(Twist, topics.POLICY_SHADOW_CMD_VEL, self._on_shadow, 50)
        node.create_subscription(Bool, topics.POLICY_ACTIVE, self._on_active, latched)
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)
        self.set_client = node.create_client(SetParameters, f"/{node_name}/set_parameters")
        self.reload_client = node.create_client(Trigger, topics.POLICY_RELOAD)
        # Feed settings the test may change while the probe runs.
        self.feed_scan = True
        self.feed_odom = True
        self.scan_stamp_offset = 0.0
        self._scan = scan_message(recording)
        self._odom = odom_message(recording)
        node.create_timer(0.05, self._feed)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    # --- feeding

    def _stamp(self, offset: float = 0.0):
        now = self.node.get_clock().now()
        if offset:
            now = now - rclpy.duration.Duration(nanoseconds=int(offset * 1e9))
        return now.to_msg()

    def _feed(self) -> None:
        if self.feed_scan:
            self._scan.header.stamp = self._stamp(self.scan_stamp_offset)
            self.scan_pub.publish(self._scan)
        if self.feed_odom:
            self._odom.header.stamp = self._stamp()
            self.odom_pub.publish(self._odom)

    def publish_odom(self, msg: Odometry) -> None:
        """Publish one extra odometry message (e.g. a malformed one)."""
        self.odom_pub.publish(msg)

    def wait_for_node(self, timeout: float = 20.0) -> None:
        """Wait until the node's subscriptions and the probe's command subscription match."""
        assert wait_until(
            lambda: (
                self.goal_pub.get_subscription_count() > 0
                and self.enable_pub.get_subscription_count() > 0
                and self.set_client.service_is_ready()
            ),
            timeout,
        ), "policy node did not come up"
        assert wait_until(lambda: self.node.count_publishers(topics.POLICY_CMD_VEL) > 0, timeout)
        time.sleep(0.3)  # let the command subscription's match settle on both sides

    def send_goal(self, x: float, y: float, frame: str = "odom") -> None:
        """Publish a goal pose."""
        msg = goal_message(x, y, frame)
        msg.header.stamp = self._stamp()
        self.goal_pub.publish(msg)

    def set_enabled(self, enabled: bool) -> None:
        """Publish policy/enable."""
        self.enable_pub.publish(Bool(data=enabled))

    # --- recording

    def _on_cmd(self, msg: Twist) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def _on_shadow(self, msg: Twist) -> None:
        with self.lock:
            self.shadow_commands.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def _on_active(self, msg: Bool) -> None:
        with self.lock:
            self.active.append((time.monotonic(), msg.data))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        prefix = f"{self._node_name}: "
        for status in msg.status:
            if status.name.startswith(prefix):
                level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.statuses[status.name[len(prefix) :]] = (level, status.message, values)
            if status.name == self.status_name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics_message = status.message
                    self.diagnostics_level = (
                        status.level[0] if isinstance(status.level, bytes) else int(status.level)
                    )

    def is_active(self) -> bool:
        """The last policy/active value (False before any)."""
        with self.lock:
            return bool(self.active) and self.active[-1][1]

    def commands_since(self, since: float) -> list[tuple[float, float, float]]:
        """Commands (arrival time, v, w) received after `since` (time.monotonic)."""
        with self.lock:
            return [c for c in self.commands if c[0] > since]

    def wait_reason(self, prefix: str, contains: str = "", timeout: float = 5.0) -> str:
        """Wait until diagnostics report a reason starting with `prefix` (and holding
        `contains`); return it."""

        def matches() -> bool:
            reason = self.diagnostics.get("reason", "")
            return reason.startswith(prefix) and contains in reason

        ok = wait_until(matches, timeout)
        reason = self.diagnostics.get("reason", "")
        assert ok, f"reason {reason!r} is not {prefix!r}...{contains!r}"
        return reason

    def wait_diagnostics(self, predicate: Callable[[dict[str, str]], bool], timeout=5.0) -> dict:
        """Wait until the diagnostics values satisfy `predicate`; return them."""
        assert wait_until(lambda: predicate(dict(self.diagnostics)), timeout), self.diagnostics
        return dict(self.diagnostics)

    def wait_status(
        self, name: str, predicate: Callable[[int, str, dict[str, str]], bool], timeout=10.0
    ) -> tuple[int, str, dict[str, str]]:
        """Wait until the status `name` (e.g. "model") satisfies `predicate(level, message,
        values)`; return it."""

        def current() -> tuple[int, str, dict[str, str]] | None:
            with self.lock:
                return self.statuses.get(name)

        ok = wait_until(lambda: current() is not None and predicate(*current()), timeout)
        assert ok, f"status {name!r}: {current()}"
        return current()

    # --- services

    def set_parameters(self, timeout: float = 20.0, **values: object) -> tuple[bool, str]:
        """Set node parameters through /<node>/set_parameters; (successful, reason)."""
        request = SetParameters.Request(
            parameters=[_parameter_msg(name, value) for name, value in values.items()]
        )
        future = self.set_client.call_async(request)
        assert wait_until(future.done, timeout), "set_parameters timed out"
        result = future.result().results[0]
        return result.successful, result.reason

    def reload(self, timeout: float = 20.0) -> tuple[bool, str]:
        """Call policy/reload; (success, message)."""
        assert wait_until(self.reload_client.service_is_ready, timeout)
        future = self.reload_client.call_async(Trigger.Request())
        assert wait_until(future.done, timeout), "reload timed out"
        response = future.result()
        return response.success, response.message

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif time.perf_counter() - self._gc_started > 0.02:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    def close(self) -> None:
        """Stop spinning and destroy the probe node."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        gc.callbacks.remove(self._on_gc)
        gc.unfreeze()


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


def max_gap(commands: list[tuple[float, float, float]]) -> float:
    """The longest interval between consecutive command arrivals (s)."""
    times = [c[0] for c in commands]
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
