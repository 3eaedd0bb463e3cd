"""Campaign-wide settings: timing, budgets, seeds, thresholds and the hostile values."""

from __future__ import annotations

import math
import sys

CONTROL_PERIOD = 0.05  # s: the node's 20 Hz publish rate
JITTER_PERIOD = (0.01, 0.12)  # s: control periods of the jitter stream
MAX_GAP_PERIODS = 5.0  # clock_gaps: up to this many control periods between filter steps
EPISODE_STEPS = 300  # control steps per episode (15 s at 20 Hz)
DEFAULT_STEPS = 100_000  # per class
DEFAULT_SEED = 20261122
STUCK_SECONDS = 1.0  # s of blocked escape requests that make an episode stuck
MIN_ASK = 0.1  # the request must ask for this fraction of the limits to count as "moving"
BLOCKED_FRACTION = 0.01  # outputs below this fraction of the limits count as "blocked"
FAULT_SETTLE = 1.0  # s after an injected fault before blocked time counts towards stuck
LIMIT_TOLERANCE = 1e-9
MAX_EVENTS = 20  # violation records kept per episode for investigation
MAX_SUMMARY_EVENTS = 200  # and in the report
CORRUPT_VALUES = (
    math.nan,
    math.inf,
    -math.inf,
    1e300,
    -1e300,
    1e12,
    -1e12,
    sys.float_info.max,
    5e-324,
    -0.0,
)
NON_FINITE = (math.nan, math.inf, -math.inf)
