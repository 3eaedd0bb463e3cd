"""A robot install without torch: the policy path and the node run on onnxruntime alone.

Child processes get a `sitecustomize` on PYTHONPATH that makes torch (and the other
training-only packages: onnx, mujoco, gymnasium, stable_baselines3) unimportable, as in
an install from requirements-robot.txt. The shipped ONNX policy must load and drive
there; a TorchScript file must be refused with a reason, not crash anything.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from rl_policy_node_test_support import (
    NODE_MODULE,
    PolicyProbe,
    expected_commands,
    load_recording,
    stateless_card,
    wait_until,
    write_onnx,
    write_policy,
)

WORKSPACE = Path(__file__).resolve().parents[3]
MODELS = WORKSPACE / "models"
BLOCKED = ("torch", "onnx", "mujoco", "gymnasium", "stable_baselines3")
BLOCKER = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in BLOCKED)


@pytest.fixture
def torch_free_env(tmp_path) -> dict[str, str]:
    """The environment of a process in which `import torch` fails."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env.get("PYTHONPATH", "")])
    return env


POLICY_PATH_SCRIPT = textwrap.dedent(
    """
    import json, math, sys
    import numpy as np
    try:
        import torch  # noqa: F401
        sys.exit("torch is importable: the blocker did not work")
    except ImportError:
        pass
    from rl_policy_node.observation import ScanInput
    from rl_policy_node.policy_loader import set_inference_threads
    from rl_policy_node.policy_inputs import OdomSample, ScanSample
    from rl_policy_node.policy_runtime import PolicyController
    from rl_policy_node.policy_slots import prepare_policy

    models, limits = sys.argv[1], (0.26, 2.0)
    set_inference_threads(1)
    slot = prepare_policy(f"{models}/nav_policy.onnx", "nav_policy.onnx", limits)
    controller = PolicyController(source_timeout=1.0)
    controller.install(slot)
    beams = 360
    ranges = 1.2 + 0.8 * np.sin(np.arange(beams) * 0.07) ** 2
    scan = ScanInput(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5)
    controller.set_goal(2.5, 1.0)
    commands = []
    for tick in range(20):
        now = 10**9 + tick * 50_000_000
        controller.scan = ScanSample(scan, now, now)
        pose = (0.01 * tick, 0.0, 0.1)
        controller.odom = OdomSample(pose, (0.1, 0.05), now, now)
        result = controller.step(now)
        commands.append(list(result.command) if result.command else None)
    try:
        prepare_policy(f"{models}/nav_policy.pt", "nav_policy.pt", limits)
        refusal = None
    except ValueError as exc:
        refusal = str(exc)
    heavy = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED and sys.modules[n])
    print(json.dumps({
        "runtime": slot.policy.runtime, "commands": commands, "refusal": refusal,
        "heavy_modules": heavy, "label": slot.label,
    }))
    """
).replace("BLOCKED", repr(BLOCKED))


def _same_run_in_process() -> list[list[float]]:
    """The commands the TorchScript file gives for the script's inputs (this process)."""
    from rl_policy_node.observation import ScanInput
    from rl_policy_node.policy_inputs import OdomSample, ScanSample
    from rl_policy_node.policy_runtime import PolicyController
    from rl_policy_node.policy_slots import prepare_policy

    slot = prepare_policy(MODELS / "nav_policy.pt", "nav_policy.pt", (0.26, 2.0))
    controller = PolicyController(source_timeout=1.0)
    controller.install(slot)
    beams = 360
    ranges = 1.2 + 0.8 * np.sin(np.arange(beams) * 0.07) ** 2
    scan = ScanInput(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5)
    controller.set_goal(2.5, 1.0)
    commands = []
    for tick in range(20):
        now = 10**9 + tick * 50_000_000
        controller.scan = ScanSample(scan, now, now)
        controller.odom = OdomSample((0.01 * tick, 0.0, 0.1), (0.1, 0.05), now, now)
        commands.append(list(controller.step(now).command))
    return commands


def test_blocker_makes_torch_unimportable(torch_free_env):
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"], env=torch_free_env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "torch" in probe.stderr


def test_policy_path_runs_the_onnx_model_without_torch(torch_free_env):
    run = subprocess.run(
        [sys.executable, "-c", POLICY_PATH_SCRIPT, str(MODELS)],
        env=torch_free_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "onnxruntime" and result["heavy_modules"] == []
    commands = result["commands"]
    assert all(c is not None for c in commands), commands
    # The same ticks through the TorchScript file (torch is here, in the test process).
    np.testing.assert_allclose(commands, _same_run_in_process(), atol=1e-5)
    assert len({tuple(np.round(c, 4)) for c in commands}) > 1  # it reacts to the inputs
    refusal = result["refusal"]
    assert refusal and "nav_policy.pt" in refusal and "needs torch" in refusal


@pytest.mark.integration
@pytest.mark.slow
def test_policy_node_process_drives_with_onnx_and_refuses_pt_without_torch(
    start_node, ros_env, torch_free_env, rclpy_context, tmp_path
):
    ros_env["PYTHONPATH"] = torch_free_env["PYTHONPATH"]  # the node process: no torch
    recording = load_recording()
    card = stateless_card()
    model = write_onnx(tmp_path / "stateless.onnx", card, seed=1)
    twin = write_policy(tmp_path / "stateless.pt", card, seed=1)
    expected = expected_commands(model, recording)[0]
    np.testing.assert_allclose(expected, expected_commands(twin, recording)[0], atol=1e-6)
    start_node(NODE_MODULE, parameters={"model_path": str(model)})
    probe = PolicyProbe(rclpy_context, recording)
    try:
        probe.wait_for_node()
        probe.send_goal(*recording.goal)
        assert wait_until(probe.is_active, 20.0), probe.diagnostics
        start = time.monotonic()
        assert wait_until(lambda: len(probe.commands_since(start)) >= 10, 10.0)
        values = np.array([[v, w] for _, v, w in probe.commands_since(start)])
        np.testing.assert_allclose(values, np.tile(expected, (len(values), 1)), atol=1e-6)
        ok, reason = probe.set_parameters(model_path=str(twin))
        assert not ok and "needs torch" in reason, reason
        after = time.monotonic()
        assert wait_until(lambda: len(probe.commands_since(after)) >= 10, 10.0)
        assert probe.is_active()
    finally:
        probe.close()


def _requirements(path: Path) -> dict[str, str]:
    """name -> the requirement line of a pip requirements file (comments dropped)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = line.split("==")[0].split("<")[0].split(">")[0].strip().lower()
            pins[name] = line.replace(" ", "")
    return pins


def test_robot_requirements_are_torch_free_and_pinned_like_the_workspace():
    robot = _requirements(WORKSPACE / "requirements-robot.txt")
    workspace = _requirements(WORKSPACE / "requirements.txt")
    assert "onnxruntime" in robot and "ros-jazzy-rclpy" in robot
    training_only = {"torch", "onnx", "mujoco", "gymnasium", "stable-baselines3", "pytest"}
    assert not training_only & set(robot)
    for name, line in robot.items():
        assert workspace.get(name) == line, (name, line, workspace.get(name))
