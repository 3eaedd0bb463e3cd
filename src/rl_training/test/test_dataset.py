"""`rl_training dataset`: a recorded run's transition records read back into arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from rclpy.serialization import serialize_message
from std_msgs.msg import Float32, String, UInt32

from rl_policy_node.policy_node import transition_message
from rl_policy_node.transition_record import TransitionRecord, decode, encode
from rl_training.cli import main
from rl_training.dataset import (
    DATASET_TOPICS,
    DatasetSettings,
    build_dataset,
    read_recording,
    select_models,
    write_datasets,
)
from rl_training.reward import RewardConfig, StepOutcome, step_reward
from rlguard_common import topics
from rlguard_tools.demo import RECORDED_TOPICS
from rlguard_tools.mcap_recording import McapRecorder

SHA_A = "a" * 64
SHA_B = "b" * 64
PERIOD_NS = 50_000_000  # 20 Hz
T0 = 1_700_000_000_123_456_789  # past float32's exact range: the stamp must stay an int
LAG = 1_000_000  # ns from a tick to its record's log time
GOAL = (2.0, 0.0)
TOLERANCE = 0.25
FOOTPRINT = 0.1
REWARD = RewardConfig(smoothness=0.5, proximity=1.0, proximity_distance=0.5)
SETTINGS = DatasetSettings(footprint_radius=FOOTPRINT, reward=REWARD, goal_tolerance=TOLERANCE)

TYPES = {
    topics.POLICY_TRANSITION: "std_msgs/msg/Float32MultiArray",
    topics.NAV_CMD_VEL: "geometry_msgs/msg/Twist",
    topics.CMD_VEL: "geometry_msgs/msg/Twist",
    topics.SAFETY_SCALE: "std_msgs/msg/Float32",
    topics.SIM_COLLISIONS: "std_msgs/msg/UInt32",
    topics.HYBRID_MODE: "std_msgs/msg/String",
}


def twist(v: float, w: float) -> Twist:
    message = Twist()
    message.linear.x, message.angular.z = v, w
    return message


class Run:
    """Writes a recording.mcap as the demo's recorder would."""

    def __init__(self, run_dir, with_collisions: bool = True) -> None:
        self.recorder = McapRecorder(run_dir / "recording.mcap")
        for topic, type_name in TYPES.items():
            if with_collisions or topic != topics.SIM_COLLISIONS:
                self.recorder.add_topic(f"/{topic}", type_name)

    def write(self, topic: str, message: object, log_time_ns: int) -> None:
        self.recorder.write(f"/{topic}", serialize_message(message), log_time_ns)

    def tick(self, record: TransitionRecord) -> int:
        log_time = record.stamp_ns + LAG
        self.write(topics.POLICY_TRANSITION, transition_message(record), log_time)
        return log_time


def record(k: int, x: float, action=(0.5, 0.0), sha: str = SHA_A, **changes) -> TransitionRecord:
    values = {
        "stamp_ns": T0 + k * PERIOD_NS,
        "observation": np.full(5, k, dtype=np.float32),
        "action": np.array(action, dtype=np.float32),
        "command": (0.13 * action[0], 1.82 * action[1]),
        "weights_sha256": sha,
        "pose": (x, 0.0, 0.0),
        "goal": GOAL,
        "closest_range": 0.3 + 0.1 * k,
        "goal_tolerance": 0.08,
    }
    values.update(changes)
    return TransitionRecord(**values)


# Ticks 0, 1, 2, then a gap, then 3, 4, 5 (tick 5 lies within the goal tolerance).
TICKS = [
    record(0, 0.0, (0.5, 0.0)),
    record(1, 0.1, (1.5, -0.2)),  # raw output beyond [-1, 1]: clipped for the reward
    record(2, 0.2, (0.5, 0.1)),
    record(8, 1.0, (0.4, 0.0)),  # 6 periods after tick 2: tick 2 has no row
    record(9, 1.1, (0.6, 0.3)),
    record(10, 1.8, (0.2, 0.0)),  # 0.2 m from the goal: reached
]


def write_scenario(run_dir, with_collisions: bool = True) -> None:
    run = Run(run_dir, with_collisions)
    run.write(topics.HYBRID_MODE, String(data="POLICY"), T0 - 10)
    if with_collisions:
        run.write(topics.SIM_COLLISIONS, UInt32(data=0), T0 - 10)
    # Commands after the arbiter and the filter, and the filter's scale, per tick.
    answers = {
        0: ((0.1, 0.0), (0.1, 0.0), 1.0),  # untouched
        1: ((0.13, -0.3), (0.05, -0.3), 1.0),  # the filter slowed it: intervention
        3: ((0.1, 0.0), (0.1, 0.0), 0.5),  # scale < 1: intervention
        4: (None, (0.08, 0.5), 1.0),  # no arbiter command within the period
    }
    for index, tick in enumerate(TICKS):
        log_time = run.tick(tick)
        if index in answers:
            arbiter, filtered, scale = answers[index]
            if arbiter is not None:
                run.write(topics.NAV_CMD_VEL, twist(*arbiter), log_time + 2 * LAG)
            else:  # too late for this tick
                run.write(topics.NAV_CMD_VEL, twist(9.0, 9.0), log_time + PERIOD_NS + LAG)
            run.write(topics.CMD_VEL, twist(*filtered), log_time + 3 * LAG)
            run.write(topics.SAFETY_SCALE, Float32(data=scale), log_time + 3 * LAG)
        if index == 3:
            run.write(topics.HYBRID_MODE, String(data="FALLBACK"), log_time + 4 * LAG)
            if with_collisions:  # a contact between ticks 3 and 4
                run.write(topics.SIM_COLLISIONS, UInt32(data=1), log_time + 5 * LAG)
    run.recorder.close()


def expected_reward(
    before, after, action, previous, collided=False, reached=False, goal=GOAL
) -> float:
    """The training reward function on the step's inputs, computed independently."""
    outcome = StepOutcome(
        previous_distance=math.hypot(goal[0] - before.pose[0], goal[1] - before.pose[1]),
        distance=math.hypot(goal[0] - after.pose[0], goal[1] - after.pose[1]),
        action=action,
        previous_action=previous,
        collided=collided,
        reached=reached,
        clearance=after.closest_range - FOOTPRINT,
    )
    return step_reward(outcome, REWARD)


def test_a_recording_reads_back_into_transition_arrays(tmp_path):
    write_scenario(tmp_path)
    written = write_datasets(tmp_path, SETTINGS)
    path, _ = written[SHA_A]
    assert path == tmp_path / "transitions.npz"
    data = np.load(path)
    assert str(data["sha256"]) == SHA_A

    # Rows 0->1, 1->2, 3->4, 4->5: tick 2 is followed by a gap, tick 5 is at the goal.
    np.testing.assert_array_equal(data["stamp"], [TICKS[i].stamp_ns for i in (0, 1, 3, 4)])
    assert data["stamp"].dtype == np.int64 and data["stamp"][0] == T0
    np.testing.assert_array_equal(data["obs"][:, 0], [0, 1, 8, 9])
    np.testing.assert_array_equal(data["next_obs"][:, 0], [1, 2, 9, 10])
    assert data["obs"].dtype == np.float32 and data["obs"].shape == (4, 5)
    np.testing.assert_allclose(data["action"][1], [1.0, -0.2], rtol=1e-6)
    np.testing.assert_allclose(data["action_raw"][1], [1.5, -0.2], rtol=1e-6)

    np.testing.assert_array_equal(data["collided"], [False, False, True, False])
    np.testing.assert_array_equal(data["reached"], [False, False, False, True])
    np.testing.assert_array_equal(data["terminal"], [False, False, True, True])
    np.testing.assert_array_equal(data["done"], [False, True, True, True])

    sent = [decode(*encode(t)) for t in TICKS]  # the float32 values on the wire
    a = [np.clip(t.action.astype(np.float64), -1, 1) for t in sent]
    zero = (0.0, 0.0)
    expected = [
        expected_reward(sent[0], sent[1], tuple(a[0]), zero),
        expected_reward(sent[1], sent[2], tuple(a[1]), tuple(a[0])),
        expected_reward(sent[3], sent[4], tuple(a[3]), zero, collided=True),
        # After the collision ended the episode the previous action restarts at zero.
        expected_reward(sent[4], sent[5], tuple(a[4]), zero, reached=True),
    ]
    np.testing.assert_allclose(data["reward"], expected, rtol=1e-12)
    assert data["reward"][3] > REWARD.goal - 1.0  # the goal bonus is in

    np.testing.assert_array_equal(data["intervention"], [False, True, True, False])
    np.testing.assert_allclose(data["command_filter"][1], [0.05, -0.3], rtol=1e-6)
    np.testing.assert_allclose(data["command_arbiter"][1], [0.13, -0.3], rtol=1e-6)
    assert np.isnan(data["command_arbiter"][3]).all()
    np.testing.assert_allclose(data["command_filter"][3], [0.08, 0.5], rtol=1e-6)
    assert list(data["mode"]) == ["POLICY", "POLICY", "POLICY", "FALLBACK"]
    assert bool(data["collisions_recorded"])
    np.testing.assert_allclose(data["period_s"], 0.05)


def test_without_collision_counts_the_step_is_no_collision(tmp_path):
    write_scenario(tmp_path, with_collisions=False)
    arrays = build_dataset(read_recording(tmp_path / "recording.mcap"), SETTINGS, SHA_A)
    assert not arrays["collided"].any() and not bool(arrays["collisions_recorded"])
    np.testing.assert_array_equal(arrays["done"], [False, True, False, True])


def test_the_node_tolerance_applies_when_none_is_given(tmp_path):
    write_scenario(tmp_path)
    settings = DatasetSettings(footprint_radius=FOOTPRINT, reward=REWARD)
    arrays = build_dataset(read_recording(tmp_path / "recording.mcap"), settings, SHA_A)
    # Within the node's 0.08 m nothing is reached; the 4->5 step is an ordinary last row.
    assert not arrays["reached"].any()
    np.testing.assert_allclose(arrays["goal_tolerance"], 0.08, rtol=1e-6)


def test_several_models_are_refused_unless_one_is_picked_or_split(tmp_path):
    run = Run(tmp_path)
    for k in range(3):
        run.tick(record(k, 0.1 * k))
    for k in range(3, 6):
        run.tick(record(k, 0.1 * k, sha=SHA_B))
    run.recorder.close()
    recording = read_recording(tmp_path / "recording.mcap")
    with pytest.raises(ValueError, match="2 models.*--sha PREFIX.*--split"):
        select_models({SHA_A: 3, SHA_B: 3})
    assert select_models({SHA_A: 3, SHA_B: 3}, sha="bbb") == [SHA_B]
    written = write_datasets(tmp_path, SETTINGS, out=tmp_path / "d.npz", split=True)
    assert {path.name for path, _ in written.values()} == {
        f"d_{SHA_A[:12]}.npz",
        f"d_{SHA_B[:12]}.npz",
    }
    # The swap ends model A's last tick: no row crosses models.
    b = build_dataset(recording, SETTINGS, SHA_B)
    np.testing.assert_array_equal(b["obs"][:, 0], [3, 4])
    assert b["done"][-1]

    assert main(["dataset", str(tmp_path), "--goal-tolerance", "0.25"]) == 1
    assert not (tmp_path / "transitions.npz").exists()
    assert main(["dataset", str(tmp_path), "--goal-tolerance", "0.25", "--sha", "aaaa"]) == 0
    assert str(np.load(tmp_path / "transitions.npz")["sha256"]) == SHA_A


def test_a_malformed_record_is_refused_with_its_log_time(tmp_path):
    run = Run(tmp_path)
    message = transition_message(record(0, 0.0))
    message.layout.dim[0].label = "format:other/1"
    run.write(topics.POLICY_TRANSITION, message, 42)
    run.recorder.close()
    with pytest.raises(ValueError, match="log time 42 ns.*format"):
        read_recording(tmp_path / "recording.mcap")


def test_a_recording_without_records_says_how_to_get_them(tmp_path):
    Run(tmp_path).recorder.close()
    with pytest.raises(ValueError, match="record_transitions"):
        write_datasets(tmp_path, SETTINGS)


def test_the_demo_records_every_topic_a_dataset_reads():
    recorded = {topic: type_name for topic, _, type_name, _ in RECORDED_TOPICS}
    assert {topic: recorded.get(topic) for topic in DATASET_TOPICS} == {
        topic: TYPES[topic] for topic in DATASET_TOPICS
    }


def test_a_new_goal_ends_the_episode_and_the_step_is_scored_on_the_old_goal(tmp_path):
    run = Run(tmp_path)
    new_goal = (-1.0, 0.0)
    ticks = [record(0, 0.0), record(1, 0.1), record(2, 0.2, goal=new_goal)]
    ticks.append(record(3, 0.15, goal=new_goal))
    for tick in ticks:
        run.tick(tick)
    run.recorder.close()
    arrays = build_dataset(read_recording(tmp_path / "recording.mcap"), SETTINGS, SHA_A)
    np.testing.assert_array_equal(arrays["done"], [False, True, True])
    assert not arrays["terminal"].any()
    # Row 1 (tick 1 -> 2) gains 0.1 m toward the old goal (2, 0): positive progress.
    sent = [decode(*encode(t)) for t in ticks]
    action = tuple(np.clip(sent[1].action.astype(np.float64), -1, 1))
    previous = tuple(np.clip(sent[0].action.astype(np.float64), -1, 1))
    assert arrays["reward"][1] == pytest.approx(
        expected_reward(sent[1], sent[2], action, previous), rel=1e-12
    )
    # Row 2 starts the new goal's episode (previous action zero again) and moving back
    # 0.05 m is progress toward the new goal.
    action = tuple(np.clip(sent[2].action.astype(np.float64), -1, 1))
    assert arrays["reward"][2] == pytest.approx(
        expected_reward(sent[2], sent[3], action, (0.0, 0.0), goal=new_goal), rel=1e-12
    )
    assert arrays["reward"][2] > 0.0
