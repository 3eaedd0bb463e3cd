"""The demo's script, log and artefacts (no rclpy): what `make demo` does and shows.

`DemoScript` decides, from what the stack reports, when to switch the policy off and on,
swap the model and press the e-stop. `DemoLog` keeps the trajectory and events, and
writes `report.json`, the trajectory plot and the summary table.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from rlguard_common.world import World

MODE_COLOURS = {
    "POLICY": "tab:blue",
    "FALLBACK": "tab:orange",
    "TELEOP": "tab:purple",
    "IDLE": "tab:gray",
    "STOPPED": "tab:red",
}


class Action(Enum):
    """A step of the scripted demo, carried out by the demo node."""

    ENABLE_POLICY = "enable policy"
    DISABLE_POLICY = "disable policy"
    REENABLE_POLICY = "enable policy again"
    SWAP_TO_ALTERNATE = "swap to the alternate model"
    ROLLBACK_BY_HAND = "roll back by hand (the monitor did not)"
    TRIGGER_ESTOP = "trigger e-stop"
    RESET_ESTOP = "reset e-stop"


# Scripted actions that take the robot from the policy on purpose, and how long (sim s)
# after one the arbiter's hand-over still counts as its consequence.
POLICY_TAKING_ACTIONS = (Action.DISABLE_POLICY, Action.TRIGGER_ESTOP)
SCRIPT_CAUSE_WINDOW_S = 2.0
# The demo fails at this many hand-overs from the policy that the script did not ask for
# (issue 17: fewer than 5).
MAX_UNREQUESTED_HANDOVERS = 5
# Modes the arbiter takes the robot from the policy into (IDLE is a goal reached).
HANDOVER_MODES = ("FALLBACK", "STOPPED")


@dataclass
class DemoScript:
    """The scripted demo: its actions happen in order, each once its condition holds.

    Goal 1 by the policy; goal 2 with the policy switched off (the fallback drives);
    goal 3 with the policy back on and swapped to the alternate (weak) model `swap_delay`
    s later. Nobody swaps back: the node's live monitor must roll the model back on its
    own while it is on probation; only if no rollback was seen `rollback_deadline` s after
    the swap does the script call `policy/rollback` (and the demo fails). Once goal 3 is
    reached and the model is rolled back, `estop_delay` s later an e-stop held for
    `estop_hold` s and reset; the remaining goals by the policy.
    """

    swap_delay: float = 3.0
    estop_delay: float = 3.0
    estop_hold: float = 2.0
    rollback_deadline: float = 150.0
    issued: dict[Action, float] = field(default_factory=dict)
    automatic_rollback: float | None = None  # when the node rolled the alternate back

    def _plan(self) -> list[tuple[Action, int, Action | None, float]]:
        # (action, goals reached at least, previous action, seconds after it)
        return [
            (Action.ENABLE_POLICY, 0, None, 0.0),
            (Action.DISABLE_POLICY, 1, Action.ENABLE_POLICY, 0.0),
            (Action.REENABLE_POLICY, 2, Action.DISABLE_POLICY, 0.0),
            (Action.SWAP_TO_ALTERNATE, 2, Action.REENABLE_POLICY, self.swap_delay),
            (Action.ROLLBACK_BY_HAND, 2, Action.SWAP_TO_ALTERNATE, self.rollback_deadline),
            (Action.TRIGGER_ESTOP, 3, Action.ROLLBACK_BY_HAND, self.estop_delay),
            (Action.RESET_ESTOP, 3, Action.TRIGGER_ESTOP, self.estop_hold),
        ]

    def step(
        self, now: float, goals_reached: int, rolled_back_at: float | None = None
    ) -> list[Action]:
        """Actions due at `now` (sim time, s) with `goals_reached` goals done so far.

        `rolled_back_at` is when the node reported rolling the alternate model back
        (None: not yet); it stands in for the rollback by hand, which is then skipped.
        """
        if (
            rolled_back_at is not None
            and self.automatic_rollback is None
            and Action.SWAP_TO_ALTERNATE in self.issued
            and Action.ROLLBACK_BY_HAND not in self.issued
        ):
            self.automatic_rollback = rolled_back_at
        done = dict(self.issued)
        if self.automatic_rollback is not None:
            done[Action.ROLLBACK_BY_HAND] = self.automatic_rollback
        due = []
        for action, min_goals, after, delay in self._plan():
            if action in done:
                continue
            if goals_reached < min_goals:
                break
            if after is not None and (after not in done or now - done[after] < delay):
                break
            self.issued[action] = done[action] = now
            due.append(action)
        return due

    def pending(self) -> list[Action]:
        """Scripted actions that have not happened (yet); the rollback by hand is only
        pending while no automatic rollback replaced it."""
        skipped = {Action.ROLLBACK_BY_HAND} if self.automatic_rollback is not None else set()
        return [
            action
            for action, *_ in self._plan()
            if action not in self.issued and action not in skipped
        ]


def _model_name(key: object) -> str:
    """A model key ``path@sha256:...`` as its file name."""
    return str(key or "?").split("@", 1)[0].rsplit("/", 1)[-1]


@dataclass
class Sample:
    """One row of the trajectory log."""

    t: float
    x: float
    y: float
    mode: str
    speed: float
    scale: float


@dataclass
class DemoLog:
    """Everything the demo saw, for the report, the plot and the summary."""

    world: str
    goals: list[tuple[float, float]]
    samples: list[Sample] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    goal_times: list[float] = field(default_factory=list)
    collisions: int = 0
    at_fault_collisions: int = 0
    collision_events: list[dict[str, Any]] = field(default_factory=list)
    interventions: int = 0
    estop_max_speed: float = 0.0
    mode_changes: list[tuple[float, str, str]] = field(default_factory=list)
    script_problems: list[str] = field(default_factory=list)
    wall_time: float = 0.0  # s the run took (the simulation waits for a slow stack)
    simulator: dict[str, str] = field(default_factory=dict)  # its last /diagnostics values
    policy_events: list[dict[str, Any]] = field(default_factory=list)  # from policy/events
    expect_rollback: bool = False  # a weak model was swapped in: the monitor must roll it back

    def add_sample(self, sample: Sample) -> None:
        """Record a trajectory sample and any mode change it shows."""
        if not self.samples or self.samples[-1].mode != sample.mode:
            previous = self.samples[-1].mode if self.samples else "-"
            self.mode_changes.append((sample.t, previous, sample.mode))
        self.samples.append(sample)

    def event(self, t: float, what: str, **details: Any) -> None:
        """Record a scripted action or an observation."""
        self.events.append({"t": round(t, 3), "event": what, **details})

    def collision(self, t: float, count: int, at_fault: bool, **details: Any) -> None:
        """Record a running collision count (all, or at fault) and any new episodes.

        Each new episode gets an entry in `collision_events` with the time, the kind and
        `details` (pose, mode, commands: what drove the robot into it).
        """
        previous = self.at_fault_collisions if at_fault else self.collisions
        if count <= previous:
            return
        kind = "at fault" if at_fault else "collision"
        for _ in range(count - previous):
            self.collision_events.append({"t": round(t, 3), "kind": kind, **details})
        if at_fault:
            self.at_fault_collisions = count
        else:
            self.collisions = count

    def policy_event(self, t: float, event: dict[str, Any]) -> None:
        """Record an event the policy node published (swap, probation passed, rollback)."""
        self.policy_events.append({"t": round(t, 3), **event})

    def rollbacks(self) -> list[dict[str, Any]]:
        """The policy node's rollback events, in order."""
        return [e for e in self.policy_events if e.get("type") == "rollback"]

    def unrequested_handovers(self) -> list[dict[str, Any]]:
        """Hand-overs from the policy (POLICY -> FALLBACK or STOPPED) the script did not ask
        for: not within SCRIPT_CAUSE_WINDOW_S after it switched the policy off or pressed
        the e-stop, and not while the alternate (weak) model it swapped in was live (up to
        SCRIPT_CAUSE_WINDOW_S after its rollback)."""
        caused = [
            e["t"] for e in self.events if e["event"] in {a.value for a in POLICY_TAKING_ACTIONS}
        ]
        weak_spans = []
        swaps = [e["t"] for e in self.events if e["event"] == Action.SWAP_TO_ALTERNATE.value]
        ends = [e["t"] for e in self.rollbacks()]
        for start in swaps:
            end = min((t for t in ends if t >= start), default=math.inf)
            weak_spans.append((start, end))
        found = []
        for t, previous, current in self.mode_changes:
            if previous != "POLICY" or current not in HANDOVER_MODES:
                continue
            if any(0.0 <= t - c <= SCRIPT_CAUSE_WINDOW_S for c in caused):
                continue
            # The take-over that triggers the rollback may be sampled just after it.
            if any(start <= t <= end + SCRIPT_CAUSE_WINDOW_S for start, end in weak_spans):
                continue
            found.append({"t": round(t, 3), "to": current})
        return found

    def collisions_not_at_fault(self) -> int:
        """Collision episodes in which the robot was hit while still or moving away."""
        return max(self.collisions - self.at_fault_collisions, 0)

    def collision_summary(self) -> str:
        """Collisions split into at fault and not, e.g. '2 (1 at fault, 1 not at fault)'."""
        return (
            f"{self.collisions} ({self.at_fault_collisions} at fault, "
            f"{self.collisions_not_at_fault()} hit while still or moving away)"
        )

    def modes_seen(self) -> set[str]:
        """Every mode the arbiter reported."""
        return {s.mode for s in self.samples}

    def time_per_mode(self) -> dict[str, float]:
        """Sim seconds spent in each mode."""
        spent: Counter[str] = Counter()
        for previous, current in zip(self.samples, self.samples[1:], strict=False):
            spent[previous.mode] += current.t - previous.t
        return {mode: round(t, 2) for mode, t in spent.items()}

    def path_length(self) -> float:
        """Metres driven."""
        return sum(
            math.hypot(b.x - a.x, b.y - a.y)
            for a, b in zip(self.samples, self.samples[1:], strict=False)
        )

    def failures(self, required_modes: Sequence[str] = ("POLICY", "FALLBACK")) -> list[str]:
        """Why the demo failed (empty when it passed)."""
        problems = list(self.script_problems)
        if len(self.goal_times) < len(self.goals):
            problems.append(f"reached {len(self.goal_times)} of {len(self.goals)} goals")
        if self.collisions or self.at_fault_collisions:
            problems.append(
                f"{self.collisions} collision(s): {self.at_fault_collisions} at fault, "
                f"{self.collisions_not_at_fault()} hit while still or moving away"
            )
        missing = [m for m in required_modes if m not in self.modes_seen()]
        if missing:
            problems.append(f"scripted mode(s) never seen: {', '.join(missing)}")
        if self.expect_rollback and not any(e.get("automatic") for e in self.rollbacks()):
            problems.append("the weak model was not rolled back by the live monitor")
        unrequested = self.unrequested_handovers()
        if len(unrequested) >= MAX_UNREQUESTED_HANDOVERS:
            problems.append(
                f"{len(unrequested)} hand-overs from the policy the script did not ask for "
                f"(limit: fewer than {MAX_UNREQUESTED_HANDOVERS})"
            )
        if self.estop_max_speed > 1e-6:
            problems.append(
                f"cmd_vel not zero during the e-stop (|v| up to {self.estop_max_speed:.3f})"
            )
        return problems

    def summary_rows(self) -> list[tuple[str, str]]:
        """The end-of-demo table as (label, value) rows."""
        duration = self.samples[-1].t - self.samples[0].t if self.samples else 0.0
        rows = [
            ("world", self.world),
            ("goals reached", f"{len(self.goal_times)}/{len(self.goals)}"),
            ("collisions", self.collision_summary()),
            ("sim time", f"{duration:.1f} s"),
            ("wall time", f"{self.wall_time:.1f} s"),
            ("path length", f"{self.path_length():.2f} m"),
            (
                "simulator waited for cmd_vel",
                f"{self.simulator.get('waiting_for_cmd_vel_wall_s', '?')} s wall (lockstep)",
            ),
            ("safety interventions", str(self.interventions)),
            ("mode changes", str(max(len(self.mode_changes) - 1, 0))),
            ("hand-overs the script did not ask for", self._unrequested_summary()),
        ]
        rows += [
            (
                "automatic rollback" if e.get("automatic") else "rollback on request",
                f"{_model_name(e.get('from'))} -> {_model_name(e.get('to'))} at t={e['t']:.1f} s, "
                f"{float(e.get('probation_s', math.nan)):.1f} s after the swap: "
                f"{e.get('reason', '')}",
            )
            for e in self.rollbacks()
        ]
        rows += [
            (f"time in {mode}", f"{t:.1f} s") for mode, t in sorted(self.time_per_mode().items())
        ]
        rows.append(
            ("result", "PASS" if not self.failures() else "FAIL: " + "; ".join(self.failures()))
        )
        return rows

    def _unrequested_summary(self) -> str:
        handovers = self.unrequested_handovers()
        times = ", ".join(f"{h['t']:.1f} s to {h['to']}" for h in handovers)
        return f"{len(handovers)}" + (f" (at {times})" if times else "")

    def summary_table(self) -> str:
        """The summary as a Markdown table."""
        lines = ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in self.summary_rows()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "world": self.world,
            "goals": self.goals,
            "goal_times": self.goal_times,
            "goals_reached": len(self.goal_times),
            "collisions": self.collisions,
            "collisions_at_fault": self.at_fault_collisions,
            "collisions_not_at_fault": self.collisions_not_at_fault(),
            "collision_events": self.collision_events,
            "safety_interventions": self.interventions,
            "estop_max_speed": self.estop_max_speed,
            "path_length_m": round(self.path_length(), 3),
            "wall_time_s": round(self.wall_time, 2),
            "simulator": self.simulator,
            "mode_change_count": max(len(self.mode_changes) - 1, 0),
            "unrequested_handovers": self.unrequested_handovers(),
            "time_per_mode_s": self.time_per_mode(),
            "mode_changes": [
                {"t": round(t, 3), "from": a, "to": b} for t, a, b in self.mode_changes
            ],
            "events": self.events,
            "policy_events": self.policy_events,
            "rollbacks": self.rollbacks(),
            "passed": not self.failures(),
            "failures": self.failures(),
            "trajectory": [asdict(s) for s in self.samples[:: max(1, len(self.samples) // 2000)]],
        }

    def write_report(self, path: str | Path) -> Path:
        """Write report.json."""
        out = Path(path)
        out.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return out


def plot_trajectory(log: DemoLog, world: World, path: str | Path) -> Path:
    """A PNG of the world's obstacles and the robot's path, coloured by arbiter mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Polygon

    fig, ax = plt.subplots(figsize=(8, 8 * world.arena_size[1] / world.arena_size[0] + 0.5))
    for wall in world.all_walls():
        ax.plot([wall.start[0], wall.end[0]], [wall.start[1], wall.end[1]], color="k", linewidth=2)
    for box in world.boxes:
        c, s = math.cos(box.yaw), math.sin(box.yaw)
        hx, hy = box.size[0] / 2, box.size[1] / 2
        corners = [
            (box.center[0] + c * dx - s * dy, box.center[1] + s * dx + c * dy)
            for dx, dy in ((hx, hy), (-hx, hy), (-hx, -hy), (hx, -hy))
        ]
        ax.add_patch(Polygon(corners, closed=True, color="0.55"))
    for cylinder in world.cylinders:
        ax.add_patch(Circle(cylinder.center, cylinder.radius, color="0.55"))
    for mover in world.moving_cylinders:
        xs = [p[0] for p in mover.waypoints] + [mover.waypoints[0][0]]
        ys = [p[1] for p in mover.waypoints] + [mover.waypoints[0][1]]
        ax.plot(xs, ys, linestyle=":", color="0.4")
    for a, b in zip(log.samples, log.samples[1:], strict=False):
        ax.plot([a.x, b.x], [a.y, b.y], color=MODE_COLOURS.get(a.mode, "k"), linewidth=2)
    for i, goal in enumerate(log.goals, start=1):
        reached = i <= len(log.goal_times)
        ax.plot(*goal, marker="*", markersize=14, color="green" if reached else "red")
        ax.annotate(str(i), goal, textcoords="offset points", xytext=(6, 6))
    for event in log.events:
        if event["event"] in ("trigger e-stop", "swap to the alternate model", "disable policy"):
            ax.plot(event.get("x", math.nan), event.get("y", math.nan), marker="x", color="k")
    handles = [
        plt.Line2D([], [], color=colour, linewidth=3, label=mode)
        for mode, colour in MODE_COLOURS.items()
        if mode in log.modes_seen()
    ]
    ax.legend(handles=handles, loc="upper right", title="arbiter mode")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"rlguard demo: {log.world}, {len(log.goal_times)}/{len(log.goals)} goals")
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
