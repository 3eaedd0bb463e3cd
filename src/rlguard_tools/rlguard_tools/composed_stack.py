"""Run several rlguard stack nodes in one process on one executor (no `launch`).

An alternative process layout for measurements: the node classes of rl_policy_node,
hybrid_fallback and safety_controller are instantiated unchanged in this process and spun
by one SingleThreadedExecutor or MultiThreadedExecutor. Parameters come from the usual
``--ros-args --params-file`` files, keyed by node name, so each node reads its own section
(`composed_parameters_file` writes the per-node overrides the stack runner would pass).

    python -m rlguard_tools.composed_stack --nodes rl_policy_node,hybrid_fallback \\
        --executor single --ros-args --params-file config/rl_policy_node.yaml ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

NODE_NAMES = ("rl_policy_node", "hybrid_fallback", "safety_controller")
EXECUTORS = ("single", "multi")


def _create_node(name: str) -> Any:
    """An instance of the node class called `name` (imported on demand)."""
    if name == "rl_policy_node":
        import torch

        from rl_policy_node.policy_node import PolicyNode

        try:
            torch.set_num_interop_threads(1)  # as rl_policy_node's own main does
        except RuntimeError:
            pass
        return PolicyNode()
    if name == "hybrid_fallback":
        from hybrid_fallback.hybrid_node import HybridFallbackNode

        return HybridFallbackNode()
    if name == "safety_controller":
        from safety_controller.safety_node import SafetyControllerNode

        return SafetyControllerNode()
    raise ValueError(f"unknown node {name!r}; expected one of {NODE_NAMES}")


def composed_parameters_file(parameters: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Write per-node parameters as a ROS 2 params file (``<node>: ros__parameters:``)."""
    import yaml

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True  # rcl's params parser refuses YAML anchors and aliases

    data = {name: {"ros__parameters": dict(values)} for name, values in parameters.items()}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.dump(data, Dumper=_NoAliases, default_flow_style=None, sort_keys=True))
    return target


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nodes", default=",".join(NODE_NAMES), help="comma-separated node names to compose"
    )
    parser.add_argument("--executor", choices=EXECUTORS, default="single")
    parser.add_argument("--threads", type=int, default=2, help="threads of the multi executor")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Create the requested nodes in this process and spin them until shutdown."""
    import rclpy
    from rclpy.executors import (
        ExternalShutdownException,
        MultiThreadedExecutor,
        SingleThreadedExecutor,
    )

    full = list(sys.argv if argv is None else argv)
    args = _parse(rclpy.utilities.remove_ros_args(full)[1:])
    rclpy.init(args=full)
    nodes = []
    try:
        nodes = [_create_node(name) for name in args.nodes.split(",") if name]
        executor = (
            MultiThreadedExecutor(num_threads=args.threads)
            if args.executor == "multi"
            else SingleThreadedExecutor()
        )
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
