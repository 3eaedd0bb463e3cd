"""The policy node's parameters as plain data (no rclpy): name, default, description, range.

The node declares them from `PARAMETERS` (`rlguard_common.node_support`); the defaults
match ``config/rl_policy_node.yaml``.
"""

from __future__ import annotations

import math

from hybrid_fallback.hybrid_config import PARAMETERS as HYBRID_PARAMETERS
from rl_policy_node.live_monitor import MONITOR_PARAMETERS
from rl_policy_node.model_gate import GATE_PARAMETERS
from rl_policy_node.probation import PROBATION_PARAMETERS
from rl_policy_node.scan_drift import DRIFT_PARAMETERS
from rl_policy_node.transition_record import TRANSITION_PARAMETERS
from rlguard_common.parameters import ParameterSpec

NODE_NAME = "rl_policy_node"

PARAMETERS: dict[str, ParameterSpec] = {
    "model_path": ParameterSpec(
        "",
        "Policy file (TorchScript with card); relative paths resolve against models_dir. "
        "Empty: no model, the node stays inactive. Setting it loads, checks and swaps.",
    ),
    "shadow_model_path": ParameterSpec(
        "",
        "Optional second policy run on the same observation; publishes "
        "policy/shadow/cmd_vel and its divergence, never drives. Empty: off.",
    ),
    "models_dir": ParameterSpec(
        "",
        "Directory for relative model paths. Empty: $RLGUARD_MODELS_DIR, else the installed "
        "share/rl_policy_node/models, else $RLGUARD_WORKSPACE/models, else ./models.",
    ),
    "enabled_on_start": ParameterSpec(
        True,
        "Produce commands from start-up (policy/enable switches at run time).",
        read_only=True,
    ),
    "control_rate_hz": ParameterSpec(
        20.0, "Control loop rate (Hz).", bounds=(1.0, 1000.0), read_only=True
    ),
    "source_timeout": ParameterSpec(
        0.5,
        "scan/odom older than this (header stamp or arrival, s) stop the policy.",
        bounds=(0.01, 10.0),
    ),
    "goal_tolerance": ParameterSpec(
        0.08,
        "Distance to the goal (m) at which it counts as reached: one zero, then inactive.",
        bounds=(0.0, 10.0),
    ),
    "max_velocity": ParameterSpec(
        [0.26, 1.82],
        "[linear m/s, angular rad/s]: a card exceeding these is refused; card-less "
        "policies map -1..1 to -max..max.",
    ),
    "max_inference_ms": ParameterSpec(
        25.0,
        "An inference slower than this (ms) is an overrun: its command is dropped.",
        bounds=(0.001, 1000.0),
    ),
    "device": ParameterSpec("cpu", "Torch device: cpu, or cuda / cuda:N when CUDA is available."),
    "warmup_runs": ParameterSpec(
        10, "Inferences run on a candidate model before it may drive.", bounds=(1, 1000)
    ),
    "publish_inference_ms": ParameterSpec(
        False, "Publish each inference time on policy/inference_ms."
    ),
    # Where the scan's points lie in the base frame: used only by a policy whose goal terms
    # describe a grid waypoint (its navigation grid marks each scan's points).
    "lidar_x": ParameterSpec(-0.032, "Lidar x in the base frame (m)", bounds=(-10.0, 10.0)),
    "lidar_y": ParameterSpec(0.0, "Lidar y in the base frame (m)", bounds=(-10.0, 10.0)),
    "lidar_yaw": ParameterSpec(
        0.0, "Lidar yaw in the base frame (rad)", bounds=(-math.pi, math.pi)
    ),
    **GATE_PARAMETERS,
    # The live monitor's notion of an intervention is the arbiter's (same name, same default).
    "intervention_scale_threshold": ParameterSpec(
        HYBRID_PARAMETERS["intervention_scale_threshold"].default,
        "A safety/scale below this counts as a safety intervention for the live monitor "
        "(keep equal to hybrid_fallback's).",
        bounds=(0.0, 1.0),
    ),
    **MONITOR_PARAMETERS,
    **PROBATION_PARAMETERS,
    **TRANSITION_PARAMETERS,
    **DRIFT_PARAMETERS,
}
