"""The bench process's DDS environment and the parameter layers the stack benchmarks run with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlguard_common.profile_yaml import workspace_root

# Parameters that make the stack a transparent pipe for the benchmark policy's commands.
PASS_THROUGH: dict[str, dict[str, Any]] = {
    # Accelerations so high that a step between codes is never limited, even between two
    # outputs 0.1 ms apart (the limits apply over the time since the previous output).
    "safety_controller": {
        "max_accel": [1.0e4, 1.0e5],
        "max_decel": [-1.0e4, -1.0e5],
        "emergency_decel": [-1.0e4, -1.0e5],
    },
    # The policy turns in place: no progress check, no intervention switch, quick return.
    "hybrid_fallback": {
        "stall_window": 600.0,
        "min_progress": 0.0,
        "max_intervention_rate": 1.0,
        "retry_after": 0.0,
        "max_retries": 1000,
    },
}


def bench_environment() -> dict[str, str]:
    """Set up this process's environment for DDS on loopback in a bench domain; return it.

    The domain is RLGUARD_BENCH_DOMAIN_ID, else 101 + pid % 20 (101..120), so bench runs
    never share a domain with the test suite (1..100) or the default domain 0.
    """
    domain = os.environ.get("RLGUARD_BENCH_DOMAIN_ID") or str(101 + os.getpid() % 20)
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    workspace = workspace_root()
    if workspace is not None:
        os.environ.setdefault("RLGUARD_WORKSPACE", str(workspace))
    return dict(os.environ)


def merge_parameters(
    *layers: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per-node parameter dicts merged left to right (later layers win)."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for node, values in layer.items():
            merged.setdefault(node, {}).update(values)
    return merged


# hybrid_fallback and safety_controller on the wall clock (as on a robot); the policy node
# stays on sim time, since it judges the sim-stamped scan and odom by their header stamps.
WALL_CLOCK: dict[str, dict[str, Any]] = {
    "hybrid_fallback": {"use_sim_time": False},
    "safety_controller": {"use_sim_time": False},
}


def rate_parameters(rate_hz: float) -> dict[str, dict[str, Any]]:
    """The read-only rate parameters that run the command chain at `rate_hz`."""
    return {
        "rl_policy_node": {"control_rate_hz": float(rate_hz)},  # range 1..1000
        "hybrid_fallback": {"control_rate_hz": float(rate_hz)},  # range 1..100
        "safety_controller": {"publish_rate": max(20.0, float(rate_hz))},  # range 20..200
    }
