"""`rl_training dataset RUN_DIR`: a recording's transition records as offline-RL arrays.

Reads ``RUN_DIR/recording.mcap`` (the demo writes it; the policy node publishes
``policy/transition`` when its ``record_transitions`` parameter is true) and writes an
``.npz`` with one row per transition, tick i -> tick i+1 of one model:

- ``obs``, ``next_obs`` (float32 [N, D]): the observations of the two ticks;
- ``action`` (float32 [N, 2]): the policy output clipped to [-1, 1], as training applies it
  (``action_raw``: unclipped); ``command_policy``: the (v, w) it was scaled to;
- ``command_arbiter``, ``command_filter`` (float32 [N, 2]): the first ``cmd_vel_nav`` and
  ``cmd_vel`` whose log time lies in [tick's log time, + one control period); NaN if none;
- ``intervention`` (bool): the filter's command differs from the arbiter's by more than
  ``command_tolerance`` in v or w, or the ``safety/scale`` paired the same way is < 1;
- ``reward`` (float64): `rl_training.reward.step_reward`, the training reward, of the step:
  progress from the distances of the two ticks' odometry poses to tick i's goal,
  collision when the ``sim/collisions`` running count rose between the two ticks' log times
  (never, when the recording has no such topic: ``collisions_recorded`` is False), goal
  reached when tick i+1 lies within the goal tolerance (the ``--goal-tolerance``, else the
  ``--world``'s, else the world of ``RUN_DIR/report.json``, else the node's own
  ``goal_tolerance``), clearance from tick i+1's closest scan range minus the robot's
  footprint radius, smoothness against the previous row's action (zero at an episode start,
  as training resets it);
- ``terminal`` (bool): reached or collided (the training episode would end there);
  ``done`` (bool): terminal, or the goal changed at tick i+1, or the next row does not
  continue from tick i+1 (a gap in ticks longer than ``max_gap_periods`` control periods, a
  tick already within the tolerance, another model, or the end of the recording);
- ``stamp`` (int64 ns, node clock), ``mode`` (hybrid/mode at the tick), ``collided``,
  ``reached``, ``goal_tolerance`` (the one used); scalars ``sha256`` (``--sha unknown``
  selects records without one), ``footprint_radius``, ``period_s``, ``reward_config``
  (JSON) and ``collisions_recorded``.

A tick with no successor within the gap, or whose own pose is already within the goal
tolerance (the training episode has ended), gives no row. The node stops acting at its
own ``goal_tolerance``, so with that tolerance the last step into the goal has no
successor record and no row: a world's (larger) tolerance keeps it. One file holds one model (the
weights' sha256 in the records): a recording of several models is refused unless ``--sha``
picks one (a prefix) or ``--split`` writes one file per model (``<out>_<sha[:12]>.npz``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from rl_policy_node.node_config import PARAMETERS as POLICY_PARAMETERS
from rl_policy_node.transition_record import TransitionLayoutError, TransitionRecord, decode
from rl_training.reward import RewardConfig, StepOutcome, step_reward
from rlguard_common import topics

# The topics a recording needs for a dataset (the demo records them all).
DATASET_TOPICS = (
    topics.POLICY_TRANSITION,
    topics.NAV_CMD_VEL,
    topics.CMD_VEL,
    topics.SAFETY_SCALE,
    topics.SIM_COLLISIONS,
    topics.HYBRID_MODE,
)
RECORDING_FILE = "recording.mcap"
DATASET_FILE = "transitions.npz"
UNKNOWN_SHA = "unknown"  # file-name tag of records without a weights hash


@dataclass(frozen=True)
class DatasetSettings:
    """How a recording becomes transitions (see the module docstring)."""

    footprint_radius: float  # m, the robot's: clearance = closest range - this
    reward: RewardConfig = field(default_factory=RewardConfig)
    goal_tolerance: float | None = None  # m; None: each record's node goal_tolerance
    period_s: float | None = None  # control period; None: the median tick spacing
    max_gap_periods: float = 1.5  # ticks further apart than this many periods: no row
    command_tolerance: float = 1e-3  # m/s, rad/s: filter vs arbiter beyond this intervenes
    namespace: str = ""  # the robot's namespace the recording's topics carry


@dataclass
class Stream:
    """One recorded topic: log times (ns, ascending) and values (one row per message)."""

    times: np.ndarray
    values: np.ndarray

    @staticmethod
    def of(rows: Sequence[tuple[int, Any]], width: int) -> Stream:
        """A stream from (log time, values) rows, sorted by time."""
        rows = sorted(rows, key=lambda row: row[0])
        times = np.array([row[0] for row in rows], dtype=np.int64)
        values = np.array([row[1] for row in rows], dtype=np.float64).reshape(len(rows), width)
        return Stream(times, values)


@dataclass
class Recording:
    """The parts of a recording the dataset needs."""

    ticks: list[tuple[int, TransitionRecord]]  # (log time ns, record), log-time order
    arbiter: Stream  # cmd_vel_nav (v, w)
    filter: Stream  # cmd_vel (v, w)
    scale: Stream  # safety/scale
    collisions: Stream | None  # sim/collisions running count; None: not recorded
    modes: tuple[np.ndarray, list[str]]  # hybrid/mode log times and values


def topic_name(topic: str, namespace: str = "") -> str:
    """The absolute name a recorder gives a relative topic under `namespace`."""
    return "/" + "/".join(part for part in (namespace.strip("/"), topic.strip("/")) if part)


def _twist(message: Any) -> tuple[float, float]:
    twist = getattr(message, "twist", message)  # TwistStamped or Twist
    return float(twist.linear.x), float(twist.angular.z)


def read_recording(path: str | Path, namespace: str = "") -> Recording:
    """Decode the transition records and the topics paired with them from an MCAP file.

    Raises ValueError naming the message when a transition record does not decode.
    """
    names = {topic_name(t, namespace): t for t in DATASET_TOPICS}
    rows: dict[str, list[tuple[int, Any]]] = {t: [] for t in names.values()}
    channels: set[str] = set()
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        if summary is not None:
            channels = {c.topic for c in summary.channels.values()}
        for _, channel, message, decoded in reader.iter_decoded_messages(topics=list(names)):
            channels.add(channel.topic)
            topic, log_time = names[channel.topic], int(message.log_time)
            if topic == topics.POLICY_TRANSITION:
                layout = decoded.layout.dim
                try:
                    record = decode(
                        [d.label for d in layout], [d.size for d in layout], decoded.data
                    )
                except TransitionLayoutError as exc:
                    raise ValueError(
                        f"{path}: {channel.topic} message at log time {log_time} ns: {exc}"
                    ) from exc
                rows[topic].append((log_time, record))
            elif topic in (topics.NAV_CMD_VEL, topics.CMD_VEL):
                rows[topic].append((log_time, _twist(decoded)))
            elif topic == topics.HYBRID_MODE:
                rows[topic].append((log_time, str(decoded.data)))
            else:
                rows[topic].append((log_time, float(decoded.data)))
    modes = sorted(rows[topics.HYBRID_MODE], key=lambda row: row[0])
    collisions_name = topic_name(topics.SIM_COLLISIONS, namespace)
    return Recording(
        ticks=sorted(rows[topics.POLICY_TRANSITION], key=lambda row: row[0]),
        arbiter=Stream.of(rows[topics.NAV_CMD_VEL], 2),
        filter=Stream.of(rows[topics.CMD_VEL], 2),
        scale=Stream.of(rows[topics.SAFETY_SCALE], 1),
        collisions=(
            Stream.of(rows[topics.SIM_COLLISIONS], 1) if collisions_name in channels else None
        ),
        modes=(np.array([m[0] for m in modes], dtype=np.int64), [m[1] for m in modes]),
    )


def models_in(recording: Recording) -> dict[str, int]:
    """Tick count per weights sha256, in order of first appearance ("" when unknown)."""
    counts: dict[str, int] = {}
    for _, record in recording.ticks:
        counts[record.weights_sha256] = counts.get(record.weights_sha256, 0) + 1
    return counts


def _first_in_window(stream: Stream, anchors: np.ndarray, period_ns: int) -> np.ndarray:
    """Per anchor, the first value logged in [anchor, anchor + period); NaN when none."""
    out = np.full((anchors.size, stream.values.shape[1]), np.nan)
    if stream.times.size == 0 or anchors.size == 0:
        return out
    index = np.searchsorted(stream.times, anchors, side="left")
    inside = index < stream.times.size
    inside[inside] &= stream.times[index[inside]] < anchors[inside] + period_ns
    out[inside] = stream.values[index[inside]]
    return out


def _last_at_or_before(times: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Per anchor, the index of the last time <= anchor (-1 when none)."""
    return np.searchsorted(times, anchors, side="right") - 1


def _period_s(records: Sequence[TransitionRecord], settings: DatasetSettings) -> float:
    if settings.period_s is not None:
        return settings.period_s
    stamps = np.array([r.stamp_ns for r in records], dtype=np.int64)
    steps = np.diff(stamps)
    steps = steps[steps > 0]
    if steps.size:
        return float(np.median(steps)) / 1e9
    return 1.0 / float(POLICY_PARAMETERS["control_rate_hz"].default)


def build_dataset(
    recording: Recording, settings: DatasetSettings, sha: str
) -> dict[str, np.ndarray]:
    """The arrays of the model with weights `sha` (see the module docstring)."""
    ticks = [(t, r) for t, r in recording.ticks if r.weights_sha256 == sha]
    if not ticks:
        raise ValueError(f"no transition records of model {sha or UNKNOWN_SHA!r}")
    records = [r for _, r in ticks]
    sizes = {r.observation.size for r in records}
    if len(sizes) != 1:
        raise ValueError(f"model {sha[:12]} records have observation sizes {sorted(sizes)}")
    period = _period_s(records, settings)
    period_ns = int(round(period * 1e9))
    max_gap_ns = settings.max_gap_periods * period * 1e9

    def tolerance(record: TransitionRecord) -> float:
        return (
            settings.goal_tolerance
            if settings.goal_tolerance is not None
            else record.goal_tolerance
        )

    def distance(pose: Sequence[float], goal: Sequence[float]) -> float:
        return math.hypot(goal[0] - pose[0], goal[1] - pose[1])

    # Rows: tick i -> tick i+1 when i+1 follows within the gap and i has not reached.
    rows = [
        i
        for i in range(len(ticks) - 1)
        if 0 < records[i + 1].stamp_ns - records[i].stamp_ns <= max_gap_ns
        and distance(records[i].pose, records[i].goal) > tolerance(records[i])
    ]
    log_times = np.array([t for t, _ in ticks], dtype=np.int64)
    collided = np.zeros(len(rows), dtype=bool)
    if recording.collisions is not None and rows:
        counts = np.concatenate([[0.0], recording.collisions.values[:, 0]])
        before = counts[_last_at_or_before(recording.collisions.times, log_times[rows]) + 1]
        after = counts[
            _last_at_or_before(recording.collisions.times, log_times[[i + 1 for i in rows]]) + 1
        ]
        collided = after > before

    n, width = len(rows), next(iter(sizes))
    out: dict[str, Any] = {
        "obs": np.zeros((n, width), dtype=np.float32),
        "next_obs": np.zeros((n, width), dtype=np.float32),
        "action": np.zeros((n, 2), dtype=np.float32),
        "action_raw": np.zeros((n, 2), dtype=np.float32),
        "command_policy": np.zeros((n, 2), dtype=np.float32),
        "reward": np.zeros(n, dtype=np.float64),
        "reached": np.zeros(n, dtype=bool),
        "collided": collided,
        "terminal": np.zeros(n, dtype=bool),
        "done": np.zeros(n, dtype=bool),
        "stamp": np.array([records[i].stamp_ns for i in rows], dtype=np.int64),
    }
    previous = np.zeros(2)
    for k, i in enumerate(rows):
        now, after = records[i], records[i + 1]
        applied = np.clip(now.action.astype(np.float64), -1.0, 1.0)
        d1 = distance(after.pose, now.goal)
        reached = d1 <= tolerance(now) and not collided[k]
        out["reached"][k] = reached
        out["terminal"][k] = reached or collided[k]
        continues = k + 1 < n and rows[k + 1] == i + 1
        out["done"][k] = out["terminal"][k] or after.goal != now.goal or not continues
        outcome = StepOutcome(
            previous_distance=distance(now.pose, now.goal),
            distance=d1,
            action=tuple(applied),
            previous_action=tuple(previous),
            collided=bool(collided[k]),
            reached=bool(reached),
            clearance=after.closest_range - settings.footprint_radius,
        )
        out["reward"][k] = step_reward(outcome, settings.reward)
        previous = np.zeros(2) if out["done"][k] else applied
        out["obs"][k] = now.observation
        out["next_obs"][k] = after.observation
        out["action"][k] = applied
        out["action_raw"][k] = now.action
        out["command_policy"][k] = now.command

    anchors = log_times[rows] if rows else np.zeros(0, dtype=np.int64)
    arbiter = _first_in_window(recording.arbiter, anchors, period_ns)
    filtered = _first_in_window(recording.filter, anchors, period_ns)
    scale = _first_in_window(recording.scale, anchors, period_ns)[:, 0]
    differs = np.any(np.abs(filtered - arbiter) > settings.command_tolerance, axis=1)
    out["command_arbiter"] = arbiter.astype(np.float32)
    out["command_filter"] = filtered.astype(np.float32)
    out["intervention"] = differs | (scale < 1.0)  # NaN compares False: no evidence
    mode_times, mode_values = recording.modes
    mode_index = _last_at_or_before(mode_times, anchors)
    out["mode"] = np.array([mode_values[j] if j >= 0 else "" for j in mode_index], dtype=np.str_)
    out["sha256"] = np.array(sha)
    out["goal_tolerance"] = np.array([tolerance(records[i]) for i in rows], dtype=np.float64)
    out["footprint_radius"] = np.array(settings.footprint_radius)
    out["period_s"] = np.array(period)
    out["reward_config"] = np.array(json.dumps(asdict(settings.reward), sort_keys=True))
    out["collisions_recorded"] = np.array(recording.collisions is not None)
    return out


def select_models(counts: dict[str, int], sha: str | None = None, split: bool = False) -> list[str]:
    """The models (weights sha256) to write: `sha` (a prefix), the only one, or all with
    `split`; raises ValueError when that is ambiguous or absent."""
    listing = ", ".join(f"{s[:12] or UNKNOWN_SHA} ({n} ticks)" for s, n in counts.items())
    if not counts:
        raise ValueError(
            f"the recording has no {topics.POLICY_TRANSITION} records "
            "(was the policy node's record_transitions parameter true?)"
        )
    if sha is not None:
        if sha == UNKNOWN_SHA:
            matches = [s for s in counts if not s]
        else:
            matches = [s for s in counts if s and s.startswith(sha.lower())]
        if len(matches) != 1:
            raise ValueError(f"--sha {sha!r} matches {len(matches)} of the models: {listing}")
        return matches
    if len(counts) == 1 or split:
        return list(counts)
    raise ValueError(
        f"the recording holds {len(counts)} models ({listing}); one file holds one model: "
        "pick one with --sha PREFIX or write one file each with --split"
    )


def output_paths(out: Path, models: Iterable[str], split: bool) -> dict[str, Path]:
    """Where each model's arrays go: `out`, or with `split` `<out>_<sha[:12]>.npz`."""
    models = list(models)
    if not split:
        return {models[0]: out}
    return {s: out.with_name(f"{out.stem}_{s[:12] or UNKNOWN_SHA}{out.suffix}") for s in models}


def run_world(run_dir: Path) -> str | None:
    """The world named in ``run_dir/report.json`` (the demo's), None when there is none."""
    report = run_dir / "report.json"
    if not report.is_file():
        return None
    world = json.loads(report.read_text()).get("world")
    return str(world) if world else None


def dataset_settings(
    run_dir: str | Path,
    robot: str = "default",
    world: str | None = None,
    goal_tolerance: float | None = None,
    training_config: str | Path | None = None,
    period_s: float | None = None,
    namespace: str = "",
) -> DatasetSettings:
    """Settings from the command line's choices: the robot profile's footprint, the goal
    tolerance (given, else the world's: `world` or the run's report, else None: the
    node's), and the reward weights of a training config (default: `RewardConfig()`)."""
    from rlguard_common.robot_profile import load_robot_profile
    from rlguard_common.world import load_world

    if goal_tolerance is None:
        world = world or run_world(Path(run_dir))
        if world:
            goal_tolerance = float(load_world(world).goal_tolerance)
    reward = RewardConfig()
    if training_config is not None:
        from rl_training.config import load_config

        reward = load_config(training_config).env.reward
    return DatasetSettings(
        footprint_radius=float(load_robot_profile(robot).footprint_radius),
        reward=reward,
        goal_tolerance=goal_tolerance,
        period_s=period_s,
        namespace=namespace,
    )


def write_datasets(
    run_dir: str | Path,
    settings: DatasetSettings,
    out: str | Path | None = None,
    sha: str | None = None,
    split: bool = False,
) -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    """Turn ``run_dir/recording.mcap`` into .npz files; {sha: (path, arrays)}."""
    run_dir = Path(run_dir)
    recording = read_recording(run_dir / RECORDING_FILE, settings.namespace)
    models = select_models(models_in(recording), sha, split)
    paths = output_paths(Path(out) if out else run_dir / DATASET_FILE, models, split)
    written = {}
    for model, path in paths.items():
        arrays = build_dataset(recording, settings, model)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        written[model] = (path, arrays)
    return written
