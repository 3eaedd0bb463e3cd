"""Run the simulator and the rlguard stack without `ros2 launch` (no rclpy here).

Starts the same nodes as `launch/sim.launch.py sim:=mujoco`, each as its own process
with ``--ros-args --params-file config/<node>.yaml`` plus the overrides the robot
profile implies (`rlguard_common.robot_parameters`), supervises them, and stops them
cleanly on Ctrl-C.

    python -m rlguard_tools.stack_runner --world warehouse --model nav_policy.pt
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlguard_common.profile_yaml import workspace_root
from rlguard_common.robot_parameters import robot_parameter_overrides
from rlguard_common.topics import STACK_REMAPPINGS
from rlguard_tools.process_runner import NodeProcess, NodeSpec

# (node name, Python module) in start order: the simulator first, the output stage last.
SIM_NODE = ("mujoco_sim", "sim_bringup.sim_node")
STACK_NODES = (
    ("safety_controller", "safety_controller.safety_node"),
    ("hybrid_fallback", "hybrid_fallback.hybrid_node"),
    ("rl_policy_node", "rl_policy_node.policy_node"),
)


@dataclass
class StackOptions:
    """What to run: world, robot profile, policy, simulation speed and extra parameters."""

    world: str = "warehouse"
    robot: str = "default"
    model_path: str | None = None
    real_time_factor: float = 1.0
    seed: int = 0
    randomize: bool = False
    use_stamped: bool = False
    with_sim: bool = True
    record_transitions: bool = False  # the policy node publishes policy/transition
    extra_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def config_dir() -> Path:
    """The workspace config/ directory holding one YAML per node."""
    root = workspace_root()
    if root is None:
        raise FileNotFoundError("cannot find the rlguard workspace (set RLGUARD_WORKSPACE)")
    return root / "config"


def stack_node_specs(options: StackOptions) -> list[NodeSpec]:
    """The node processes for `options`, in start order."""
    overrides = robot_parameter_overrides(options.robot)
    per_node: dict[str, dict[str, Any]] = {
        name: dict(overrides.get(name, {})) for name, _ in STACK_NODES
    }
    per_node["mujoco_sim"] = {
        "world": options.world,
        "robot": options.robot,
        "seed": options.seed,
        "randomize": options.randomize,
        "real_time_factor": options.real_time_factor,
        "enable_stamped_cmd_vel": options.use_stamped,
        "publish_goals": True,
    }
    per_node["safety_controller"]["enable_stamped_cmd_vel"] = options.use_stamped
    if options.model_path is not None:
        per_node["rl_policy_node"]["model_path"] = options.model_path
    if options.record_transitions:
        per_node["rl_policy_node"]["record_transitions"] = True
    for name, values in options.extra_parameters.items():
        per_node.setdefault(name, {}).update(values)

    nodes = ([SIM_NODE] if options.with_sim else []) + list(STACK_NODES)
    specs = []
    for name, module in nodes:
        params_file = config_dir() / f"{name}.yaml"
        specs.append(
            NodeSpec(
                module=module,
                name=name,
                params_files=[params_file] if params_file.is_file() else [],
                parameters={"use_sim_time": options.with_sim, **per_node.get(name, {})},
                remappings=STACK_REMAPPINGS.get(name, {}),
            )
        )
    return specs


class StackRunner:
    """Starts, watches and stops the node processes of one stack."""

    def __init__(
        self, options: StackOptions, log_dir: str | Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.options = options
        self.log_dir = Path(log_dir)
        environment = dict(os.environ if env is None else env)
        environment.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.processes = [
            NodeProcess(spec, env=environment, log_dir=self.log_dir)
            for spec in stack_node_specs(options)
        ]

    def start(self) -> StackRunner:
        """Start every node process."""
        for process in self.processes:
            process.start()
        return self

    def dead(self) -> list[NodeProcess]:
        """Processes that have exited."""
        return [p for p in self.processes if not p.is_running()]

    def process(self, name: str) -> NodeProcess:
        """The process of the node called `name`."""
        for process in self.processes:
            if process.spec.name == name:
                return process
        raise KeyError(name)

    def stop(self, timeout: float = 5.0) -> dict[str, int | None]:
        """Stop all nodes (SIGINT, escalating), output stage last; exit codes by node."""
        codes = {}
        for process in reversed(self.processes):
            codes[process.spec.name or process.spec.module] = process.stop(timeout)
        return codes


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="warehouse", help="world name or YAML path")
    parser.add_argument("--robot", default="default", help="robot profile name or YAML path")
    parser.add_argument("--model", default=None, help="policy file (relative: models/)")
    parser.add_argument("--rtf", type=float, default=1.0, help="simulation real-time factor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--randomize", action="store_true", help="domain randomization on")
    parser.add_argument("--use-stamped", action="store_true", help="TwistStamped cmd_vel")
    parser.add_argument("--no-sim", action="store_true", help="stack only (real robot)")
    parser.add_argument(
        "--record-transitions",
        action="store_true",
        help="the policy node publishes policy/transition records (offline-RL logs)",
    )
    parser.add_argument("--log-dir", default=None, help="where node logs go")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack until Ctrl-C or until a node dies; non-zero if one died."""
    args = _parse(argv)
    options = StackOptions(
        world=args.world,
        robot=args.robot,
        model_path=args.model,
        real_time_factor=args.rtf,
        seed=args.seed,
        randomize=args.randomize,
        use_stamped=args.use_stamped,
        with_sim=not args.no_sim,
        record_transitions=args.record_transitions,
    )
    log_dir = Path(args.log_dir or f"runs/stack-{time.strftime('%Y%m%d-%H%M%S')}")
    runner = StackRunner(options, log_dir).start()
    print(f"started {len(runner.processes)} nodes, logs in {log_dir}; Ctrl-C stops them")
    stopping = False

    def _request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    failed: list[str] = []
    while not stopping:
        dead = runner.dead()
        if dead:
            failed = [p.spec.name or p.spec.module for p in dead]
            print(f"node(s) exited: {', '.join(failed)}; stopping the stack", file=sys.stderr)
            break
        time.sleep(0.2)
    codes = runner.stop()
    print("stopped: " + ", ".join(f"{name}={code}" for name, code in codes.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
