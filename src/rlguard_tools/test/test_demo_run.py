"""`make demo`'s director end to end: real node processes, the script, the artefacts.

Runs the scripted demo on the `corridor` world (four goals: enough for every scripted
step) and checks what `make demo` promises: every goal reached, no collision, the
scripted mode changes, `report.json`, the trajectory PNG, and an MCAP recording that
reads back with the `mcap` reader and holds every recorded topic; the weak model is rolled
back by the live monitor, and the transition records read back into arrays.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from rlguard_tools.demo import RECORDED_TOPICS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_reaches_every_goal_and_writes_the_three_artefacts(tmp_path, ros_env):
    out = tmp_path / "demo"
    models = Path(ros_env["RLGUARD_WORKSPACE"]) / "models"
    primary = "nav_policy.pt" if (models / "nav_policy.pt").is_file() else "weak_policy.pt"
    command = [
        sys.executable,
        "-m",
        "rlguard_tools.demo",
        "--world",
        "corridor",
        "--model",
        primary,
        "--alternate-model",
        "weak_policy.pt",
        "--rtf",
        "2",
        "--timeout",
        "500",  # wall s: the sim waits for a loaded stack (lockstep), so runs stretch
        "--out",
        str(out),
        "--record-transitions",
    ]
    run = subprocess.run(command, env=ros_env, capture_output=True, text=True, timeout=560)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    report = json.loads((out / "report.json").read_text())
    assert report["passed"], report["failures"]
    assert report["goals_reached"] == len(report["goals"]) == 4
    assert report["collisions"] == 0
    assert report["collisions_at_fault"] == report["collisions_not_at_fault"] == 0
    modes = {change["to"] for change in report["mode_changes"]}
    assert {"POLICY", "FALLBACK"} <= modes
    assert (out / "trajectory.png").stat().st_size > 10_000
    # Nobody swapped the weak model back: the policy node's live monitor did.
    rollbacks = report["rollbacks"]
    assert rollbacks and rollbacks[0]["automatic"] and rollbacks[0]["on_probation"], rollbacks
    assert rollbacks[0]["from"].startswith("weak_policy.pt")

    with (out / "recording.mcap").open("rb") as stream:
        reader = make_reader(stream)
        counts: dict[str, int] = {}
        for _, channel, _ in reader.iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
    for topic, *_ in RECORDED_TOPICS:
        name = topic if topic.startswith("/") else f"/{topic}"
        assert counts.get(name, 0) > 0, (topic, counts)

    # The transition records read back into offline-RL arrays, one file per model.
    dataset = subprocess.run(
        [sys.executable, "-m", "rl_training.cli", "dataset", str(out), "--split"],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dataset.returncode == 0, dataset.stdout + dataset.stderr
    files = sorted(out.glob("transitions_*.npz"))
    assert len(files) == 2, dataset.stdout
    for file in files:
        arrays = np.load(file)
        rows = len(arrays["reward"])
        assert rows > 50 and arrays["obs"].shape == (rows, 43)
        assert arrays["action"].shape == arrays["command_filter"].shape == (rows, 2)
        assert np.isfinite(arrays["reward"]).all() and arrays["done"].any()
