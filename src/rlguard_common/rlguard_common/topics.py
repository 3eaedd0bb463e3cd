"""Topic names and their QoS, as plain data (no rclpy): the one place the graph is spelled.

Every node, tool and test takes its topic names from here, so a rename is one edit.
Names are relative (``scan``, not ``/scan``) so a node namespace gives a fleet; only
``/clock`` and ``/diagnostics`` are global, as ROS defines them.

A node turns a `QosSpec` into an rclpy profile with ``QoSProfile(**spec.rclpy_kwargs())``;
the integers it returns are the rmw enum values rclpy's policy enums are built on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# rmw_qos_*_policy_e values (rclpy's ReliabilityPolicy / DurabilityPolicy / HistoryPolicy).
_RELIABILITY = {"reliable": 1, "best_effort": 2}
_DURABILITY = {"transient_local": 1, "volatile": 2}
_KEEP_LAST = 1


@dataclass(frozen=True)
class QosSpec:
    """A keep-last QoS profile: depth, reliability and durability by name."""

    depth: int
    reliability: str = "reliable"
    durability: str = "volatile"

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"QoS depth must be >= 1, got {self.depth}")
        if self.reliability not in _RELIABILITY:
            raise ValueError(f"unknown reliability {self.reliability!r}")
        if self.durability not in _DURABILITY:
            raise ValueError(f"unknown durability {self.durability!r}")

    def rclpy_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``rclpy.qos.QoSProfile``."""
        return {
            "history": _KEEP_LAST,
            "depth": self.depth,
            "reliability": _RELIABILITY[self.reliability],
            "durability": _DURABILITY[self.durability],
        }


# Sensor streams: best effort, shallow (rclpy's qos_profile_sensor_data).
SENSOR_DATA = QosSpec(depth=5, reliability="best_effort")
# Latched state (enable flags, modes, e-stop state, accepted goals): late joiners get the last.
LATCHED = QosSpec(depth=1, durability="transient_local")
# Velocity commands: only the newest matters.
COMMAND = QosSpec(depth=1)
# Events and requests that must not be dropped under a burst.
RELIABLE = QosSpec(depth=10)
# Goals as a goal source publishes them: latched, so a node started later still gets the
# current goal; a RELIABLE (volatile) subscriber receives them too.
GOAL = QosSpec(depth=10, durability="transient_local")
# Events of a model's life (swap, probation passed, rollback, drift): latched, so a
# monitor started later still reads the recent ones.
EVENTS = QosSpec(depth=10, durability="transient_local")

# Inputs of the stack.
SCAN = "scan"
ODOM = "odom"
CLOCK = "/clock"
GOAL_POSE = "goal_pose"
POLICY_ENABLE = "policy/enable"
TELEOP_CMD_VEL = "cmd_vel_teleop"
ESTOP = "safety/estop"
# Between the stack's nodes.
POLICY_CMD_VEL = "policy/cmd_vel"
POLICY_SHADOW_CMD_VEL = "policy/shadow/cmd_vel"
POLICY_ACTIVE = "policy/active"
POLICY_EVENTS = "policy/events"
POLICY_INFERENCE_MS = "policy/inference_ms"
# One transition record per acting tick (Float32MultiArray, RELIABLE; record_transitions).
POLICY_TRANSITION = "policy/transition"
NAV_CMD_VEL = "cmd_vel_nav"
HYBRID_MODE = "hybrid/mode"
HYBRID_MODE_REASON = "hybrid/mode_reason"
HYBRID_GOAL = "hybrid/goal"
# Outputs to the robot and the operator.
CMD_VEL = "cmd_vel"
ESTOP_ACTIVE = "safety/estop_active"
SAFETY_SCALE = "safety/scale"
DIAGNOSTICS = "/diagnostics"
TF = "tf"
# Services.
SAFETY_RESET = "safety/reset"
SAFETY_TRIGGER_ESTOP = "safety/trigger_estop"
POLICY_RELOAD = "policy/reload"
POLICY_ROLLBACK = "policy/rollback"
POLICY_CAPTURE_BASELINE = "policy/capture_baseline"
# The embedded simulator's ground truth.
SIM_GROUND_TRUTH = "sim/ground_truth"
SIM_COLLISIONS = "sim/collisions"
SIM_AT_FAULT_COLLISIONS = "sim/at_fault_collisions"

# The arbiter owns the user's goal: the policy node reads the goal it accepted and handed
# on (latched) instead of goal_pose, so a goal published once reaches both. Per node name,
# {topic: remapped topic}; the launch files and the process runner both apply it.
STACK_REMAPPINGS: dict[str, dict[str, str]] = {"rl_policy_node": {GOAL_POSE: HYBRID_GOAL}}
