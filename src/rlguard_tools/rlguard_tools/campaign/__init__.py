"""The adversarial reliability campaign; run it with the CLI `rlguard_tools.reliability_campaign`.

Hostile inputs through the real safety filter core, in-process against the embedded
simulator core, counted per class. The modules, from the inputs to the report:

- `settings`: timing, budgets, seeds, thresholds and the hostile values;
- `classes`: the classes (one kind of hostility each) and what each must show;
- `filter_setup`: the filter built from the node's YAML by the node's builder, the base model;
- `worlds`, `ground_truth`: the scenes, and clearances / escapes judged on ground truth;
- `scans`, `clocks`, `streams`: malformed scans, time sequences and command streams;
- `results`, `episode`: what an episode is and counts, the episode loop and the worker pool;
- `report`: per-class totals, failures, the JSON file and the Markdown table.

The names below are the campaign's public API, re-exported for convenience.
"""

from rlguard_tools.campaign.classes import (
    BLIND_DIRECTION,
    CLASS_BY_NAME,
    CLASSES,
    CLOCK_FAULTS,
    LIDAR270,
    MOVER_DESCRIPTIONS,
    MOVER_WORLDS,
    SCAN_FAULTS,
    STATIC_WORLDS,
    CampaignClass,
)
from rlguard_tools.campaign.clocks import FilterClock
from rlguard_tools.campaign.episode import (
    Episode,
    plan_episodes,
    probe_commands,
    run_campaign,
    run_episode,
    shared_simulator,
)
from rlguard_tools.campaign.filter_setup import (
    FilterFactory,
    FilterLike,
    base_horizon,
    build_config,
    robot_profile,
    safety_config_path,
    safety_parameters,
)
from rlguard_tools.campaign.ground_truth import (
    arc_poses,
    clearance,
    is_escape,
    nearest_obstacle_point,
    obstacle_clearances,
    random_start,
)
from rlguard_tools.campaign.report import (
    class_failures,
    expected_reason_seen,
    markdown_table,
    summarize,
    write_report,
)
from rlguard_tools.campaign.results import VIOLATION_KINDS, EpisodeResult, EpisodeSpec
from rlguard_tools.campaign.scans import (
    SCAN_PATH,
    UNHANDLED_REJECTION,
    FaultSchedule,
    ScanMessage,
    corrupt_scan,
    feed_scan,
    scan_message,
    validate_scan_message,
)
from rlguard_tools.campaign.settings import (
    CONTROL_PERIOD,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    EPISODE_STEPS,
    MAX_GAP_PERIODS,
)
from rlguard_tools.campaign.streams import STREAM_TYPES, CommandStream, StreamInput
from rlguard_tools.campaign.worlds import load_campaign_world, mover_world_data

__all__ = [
    "BLIND_DIRECTION",
    "CLASSES",
    "CLASS_BY_NAME",
    "CLOCK_FAULTS",
    "CONTROL_PERIOD",
    "DEFAULT_SEED",
    "DEFAULT_STEPS",
    "EPISODE_STEPS",
    "LIDAR270",
    "MAX_GAP_PERIODS",
    "MOVER_DESCRIPTIONS",
    "MOVER_WORLDS",
    "SCAN_FAULTS",
    "SCAN_PATH",
    "STATIC_WORLDS",
    "STREAM_TYPES",
    "UNHANDLED_REJECTION",
    "VIOLATION_KINDS",
    "CampaignClass",
    "CommandStream",
    "Episode",
    "EpisodeResult",
    "EpisodeSpec",
    "FaultSchedule",
    "FilterClock",
    "FilterFactory",
    "FilterLike",
    "ScanMessage",
    "StreamInput",
    "arc_poses",
    "base_horizon",
    "build_config",
    "class_failures",
    "clearance",
    "corrupt_scan",
    "expected_reason_seen",
    "feed_scan",
    "is_escape",
    "load_campaign_world",
    "markdown_table",
    "mover_world_data",
    "nearest_obstacle_point",
    "obstacle_clearances",
    "plan_episodes",
    "probe_commands",
    "random_start",
    "robot_profile",
    "run_campaign",
    "run_episode",
    "safety_config_path",
    "safety_parameters",
    "scan_message",
    "shared_simulator",
    "summarize",
    "validate_scan_message",
    "write_report",
]
