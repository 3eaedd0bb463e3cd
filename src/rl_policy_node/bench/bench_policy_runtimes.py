"""Benchmark the two policy runtimes on the shipped policy: TorchScript vs ONNX Runtime.

Both files of `models/nav_policy` (the same weights and card) are measured in this
process, pinned to one core, one thread per inference (as the node runs them), in
alternating rounds so a busy neighbour slows both alike:

- inference: one observation through `LoadedPolicy` (what the node calls per tick),
  and a batch of 1,000 (what evaluation and parity checks do);
- tick_compute: the policy node's whole control callback (observation, inference,
  publish) with each model live;
- load: `prepare_policy` (load, checks, warm-up) and a hot swap between the two kinds;
- footprint: a fresh process that imports the loader and loads the file, its wall time
  and peak RSS (the ONNX one with torch blocked, as on a robot), and the installed size
  of each runtime's Python distribution.

Run: python src/rl_policy_node/bench/bench_policy_runtimes.py --out /tmp/bench
"""

from __future__ import annotations

import faulthandler
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlguard_tools import benchlib

MODELS = benchlib.WORKSPACE_ROOT / "models"
FILES = {"torchscript": MODELS / "nav_policy.pt", "onnxruntime": MODELS / "nav_policy.onnx"}
LIMITS = (0.26, 2.0)
ROUNDS = 4
CALLS = 1000
BATCH = 1000
BATCH_CALLS = 20
TICKS = 500
LOADS = 3
HANG_TIMEOUT_S = 300

FOOTPRINT = """
import json, resource, sys, time
started = time.perf_counter()
from rl_policy_node.policy_loader import load_policy
policy = load_policy(sys.argv[1])
policy(__import__("numpy").zeros(policy.observation_size, dtype="float32"))
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "torch_loaded": bool(sys.modules.get("torch")),
}))
"""
TORCH_BLOCKER = "import sys\nsys.modules['torch'] = None\nsys.modules['onnx'] = None\n"


def _installed_mb(distribution: str) -> float | None:
    """Size on disk of an installed distribution's files, MB (None if not installed)."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    total = 0
    for file in files:
        try:
            total += file.locate().stat().st_size
        except OSError:
            pass
    return total / 1e6


def _footprint(figures: dict) -> None:
    with tempfile.TemporaryDirectory() as blocker:
        Path(blocker, "sitecustomize.py").write_text(TORCH_BLOCKER)
        for runtime, path in FILES.items():
            env = dict(os.environ)
            if runtime == "onnxruntime":
                env["PYTHONPATH"] = os.pathsep.join([blocker, env.get("PYTHONPATH", "")])
            runs = []
            for _ in range(3):
                out = subprocess.run(
                    [sys.executable, "-c", FOOTPRINT, str(path)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            figures[f"{runtime}_process_import_and_load"] = benchlib.summarize(
                [r["seconds"] * 1e3 for r in runs], "ms"
            )
            figures[f"{runtime}_process_peak_rss"] = benchlib.summarize(
                [r["peak_rss_mb"] for r in runs], "MB"
            )
            figures[f"{runtime}_process_torch_loaded"] = {"value": runs[0]["torch_loaded"]}
    for distribution in ("torch", "onnxruntime"):
        size = _installed_mb(distribution)
        if size is not None:
            figures[f"{distribution}_installed_size"] = {"value": size, "unit": "MB"}


def _inference(slots: dict, figures: dict) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    size = next(iter(slots.values())).policy.observation_size
    observations = rng.uniform(0.0, 1.0, (BATCH, size)).astype(np.float32)
    single = {runtime: [] for runtime in slots}
    batch = {runtime: [] for runtime in slots}
    for _ in range(ROUNDS):
        for runtime, slot in slots.items():
            policy = slot.policy
            for i in range(CALLS):
                obs = observations[i % BATCH]
                started = time.perf_counter()
                policy(obs)
                single[runtime].append((time.perf_counter() - started) * 1e3)
            for _ in range(BATCH_CALLS // ROUNDS):
                started = time.perf_counter()
                policy(observations)
                batch[runtime].append((time.perf_counter() - started) * 1e3)
    for runtime in slots:
        figures[f"{runtime}_inference"] = benchlib.summarize(single[runtime], "ms")
        figures[f"{runtime}_inference_batch_{BATCH}"] = benchlib.summarize(batch[runtime], "ms")
    difference = np.abs(
        slots["torchscript"].policy(observations) - slots["onnxruntime"].policy(observations)
    ).max()
    figures["max_action_difference"] = {"value": float(difference), "count": BATCH}


def _ticks(figures: dict) -> None:
    from bench_policy_node import _feed  # the sibling script, run from this directory
    from rclpy.parameter import Parameter

    from rl_policy_node.policy_node import PolicyNode

    samples: dict[str, list[float]] = {runtime: [] for runtime in FILES}
    swaps: dict[str, list[float]] = {runtime: [] for runtime in FILES}
    overrides = [
        Parameter("model_path", value=str(FILES["torchscript"])),
        Parameter("source_timeout", value=10.0),
        Parameter("max_inference_ms", value=1000.0),
        Parameter("max_velocity", value=list(LIMITS)),
    ]
    node = PolicyNode(parameter_overrides=overrides)
    try:
        for _ in range(ROUNDS):
            for runtime, path in FILES.items():
                started = time.perf_counter()
                result = node.set_parameters([Parameter("model_path", value=str(path))])
                swaps[runtime].append((time.perf_counter() - started) * 1e3)
                assert result[0].successful, result[0].reason
                assert node._controller.slot.policy.runtime == runtime
                _feed(node)
                commands = node._controller.commands
                for _ in range(TICKS):
                    started = time.perf_counter()
                    node._on_control_tick()
                    samples[runtime].append((time.perf_counter() - started) * 1e3)
                assert node._controller.commands - commands == TICKS, node._controller.reason
    finally:
        node.destroy_node()
    for runtime in FILES:
        figures[f"{runtime}_tick_compute"] = benchlib.summarize(samples[runtime], "ms")
        figures[f"swap_to_{runtime}"] = benchlib.summarize(swaps[runtime], "ms")


def main() -> None:
    """Run the benchmark and write the results."""
    args = benchlib.bench_arguments(__doc__.splitlines()[0])
    faulthandler.dump_traceback_later(HANG_TIMEOUT_S, exit=True)
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    figures: dict = {}
    _footprint(figures)  # before this process imports torch or pins itself
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})
    import rclpy

    from rl_policy_node.policy_loader import set_inference_threads
    from rl_policy_node.policy_slots import prepare_policy

    set_inference_threads(1)
    loads: dict[str, list[float]] = {runtime: [] for runtime in FILES}
    slots = {}
    for _ in range(LOADS):
        for runtime, path in FILES.items():
            started = time.perf_counter()
            slots[runtime] = prepare_policy(path, path.name, LIMITS)
            loads[runtime].append((time.perf_counter() - started) * 1e3)
    for runtime in FILES:
        figures[f"{runtime}_prepare"] = benchlib.summarize(loads[runtime], "ms")
    _inference(slots, figures)
    rclpy.init()
    try:
        _ticks(figures)
    finally:
        rclpy.try_shutdown()
        faulthandler.cancel_dump_traceback_later()
    figures["pinned_core"] = {"value": core}
    figures["load_average_1min"] = {"value": os.getloadavg()[0], "unit": "runnable"}
    benchlib.write_results("policy_runtimes", figures, args.out)


if __name__ == "__main__":
    main()
