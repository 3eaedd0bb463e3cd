"""One evaluation episode, its record, and the summaries and gate over many (no rclpy).

`run_episode` drives a `NavEnv` task with a controller and records the outcome (success,
collision, timeout), time, path, command smoothness and safety interventions, and for a
collision whether the robot drove into it (`Simulator.at_fault_collision_count`) and the
control steps before it. `summarize` turns the episodes of one world and mode into rates
and means (success with its Wilson 95 % interval); `gate_verdict` is the deployment gate:
success >= the world's threshold and no collision in the gated mode, on every world.
For an arbitrated mode (the stack) an episode also records the fraction of its time each
arbiter mode drove and its hand-overs, and `stack_check` compares the stack's success with
the better of the policy behind the filter and the DWA, per world.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid_fallback.arbiter import Mode
from rl_policy_node.action_scaling import velocity_to_action
from rl_training.controllers import Controller
from rl_training.mover_scenes import FAMILIES as MOVER_FAMILIES
from rl_training.nav_env import NavEnv
from rl_training.worlds import Task
from sim_bringup.movers import WaypointLoop

DEFAULT_SUCCESS_THRESHOLD = 0.95  # static worlds and families
# The gate (issue 17): its version is recorded with every verdict.
GATE_VERSION = 2
MOVING_OBSTACLE_WORLDS = (*MOVER_FAMILIES, "dynamic")
MOVING_SUCCESS_THRESHOLD = 0.90
MAX_INTERVENTION_RATE = 0.05  # fraction of steps the filter overrode the request
MAX_TIME_TO_BOUND = 1.15  # mean time-to-goal / shortest-path time at top speed
STACK_STATIC_SUCCESS = 0.98  # the whole stack on static worlds
STILL_SPEED = 0.02  # m/s: below this a collision counts as "hit while still"
CONTACT_STEPS = 6  # control steps before a collision kept in its episode's record


@dataclass
class EpisodeResult:
    """One episode of one mode."""

    world: str
    task: str
    mode: str
    seed: int
    outcome: str  # success, collision, timeout
    time: float  # s of simulated time
    path_length: float  # m travelled (ground truth)
    smoothness: float  # mean |change of the normalized command| per step
    interventions: int  # steps the safety filter overrode for safety
    collision_speed: float  # m/s the robot was moving at when it collided (0: hit while still)
    steps: int
    min_time: float = 0.0  # s: the task's shortest path at top speed, a bound no mode can beat
    trajectory: list[tuple[float, float]] = field(default_factory=list)
    at_fault: bool = False  # a collision the robot drove into (see `Simulator`)
    # For a collision: the last control steps before it (time, request, output, filter
    # state and reasons, measured speed), to reproduce and explain it.
    contact: list[dict[str, Any]] = field(default_factory=list)
    # Arbitrated modes only (the stack): arbiter mode -> fraction of the episode's time it
    # drove, and the hand-overs (see `StackController`).
    mode_fractions: dict[str, float] = field(default_factory=dict)
    handovers: int = 0


def run_episode(
    env: NavEnv, controller: Controller, task: Task, seed: int, mode: str, world: str
) -> EpisodeResult:
    """One episode of `task` with `controller`; the env's randomization is seeded by `seed`."""
    observation, _ = env.reset(seed=seed, options={"task": task})
    controller.reset(env)
    trajectory = [env.sim.pose[:2]]
    previous = np.zeros(2)
    change = 0.0
    interventions = 0
    steps = 0
    info: dict[str, Any] = {}
    recent: deque[dict[str, Any]] = deque(maxlen=CONTACT_STEPS)
    while True:
        controller.last_step = None
        measured = env.sim.velocity
        v, w, intervened = controller.command(env, observation)
        record = {"time": round(env.sim.time, 3), "command": [float(v), float(w)]}
        record["measured"] = [float(measured[0]), float(measured[1])]
        record.update(controller.last_step or {})
        recent.append(record)
        observation, _, terminated, truncated, info = env.step_velocity(
            v, w, controller.last_action
        )
        applied = velocity_to_action(v, w, env.card.action)
        change += float(np.linalg.norm(applied - previous)) if steps else 0.0
        previous = applied
        interventions += int(intervened)
        steps += 1
        trajectory.append(env.sim.pose[:2])
        if terminated or truncated:
            break
    path = np.asarray(trajectory)
    length = float(np.sum(np.hypot(np.diff(path[:, 0]), np.diff(path[:, 1]))))
    outcome = "success" if info["is_success"] else "collision" if info["collision"] else "timeout"
    at_fault = outcome == "collision" and env.sim.at_fault_collision_count > 0
    contact: list[dict[str, Any]] = []
    if outcome == "collision":
        x, y, yaw = env.sim.pose
        contact = [*recent, {"time": round(env.sim.time, 3), "pose": [x, y, yaw]}]
        contact[-1]["measured"] = list(env.sim.velocity)
        contact[-1]["movers"] = [list(p) for p in mover_positions(env)]
    account = controller.mode_account
    return EpisodeResult(
        world=world,
        task=task.label,
        mode=mode,
        seed=seed,
        outcome=outcome,
        time=float(info["time"]),
        path_length=length,
        smoothness=change / max(steps - 1, 1),
        interventions=interventions,
        collision_speed=abs(env.sim.velocity[0]) if outcome == "collision" else 0.0,
        steps=steps,
        min_time=task.path_length / max(abs(v) for v in env.card.action.linear),
        trajectory=[(float(x), float(y)) for x, y in trajectory[:: max(1, len(trajectory) // 400)]],
        at_fault=at_fault,
        contact=contact,
        mode_fractions=account.fractions() if account is not None else {},
        handovers=account.handovers if account is not None else 0,
    )


def mover_positions(env: NavEnv) -> list[tuple[float, float]]:
    """Where the world's moving cylinders are now (world frame)."""
    t = env.sim.time
    return [WaypointLoop(m.waypoints, m.speed).position(t) for m in env.task.world.moving_cylinders]


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Rates and means over a set of episodes of one world and mode."""
    count = len(results)
    if count == 0:
        return {"episodes": 0}
    successes = [r for r in results if r.outcome == "success"]
    steps = sum(r.steps for r in results)
    collided = [r for r in results if r.outcome == "collision"]

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    stats: dict[str, Any] = {
        "episodes": count,
        "success_rate": len(successes) / count,
        "collision_rate": sum(r.outcome == "collision" for r in results) / count,
        "timeout_rate": sum(r.outcome == "timeout" for r in results) / count,
        "successes": len(successes),
        "success_ci95": list(wilson_interval(len(successes), count)),
        "timeouts": sum(r.outcome == "timeout" for r in results),
        "collisions": len(collided),
        # Of those, the ones the robot drove into, and the others (hit while still or
        # while moving away: a moving obstacle ran into it).
        "collisions_at_fault": sum(r.at_fault for r in collided),
        "collisions_not_at_fault": sum(not r.at_fault for r in collided),
        # Contacts where the robot was (nearly) still (the older, speed-only split).
        "collisions_while_still": sum(r.collision_speed < STILL_SPEED for r in collided),
        "mean_time_to_goal": mean([r.time for r in successes]),
        # Shortest path at top speed over the same episodes: how much faster any mode
        # could be at all (a ratio to the baseline below this bound's is unreachable).
        "mean_min_time": mean([r.min_time for r in successes]),
        "mean_path_length": mean([r.path_length for r in successes]),
        "smoothness": mean([r.smoothness for r in results]),
        "intervention_rate": sum(r.interventions for r in results) / max(steps, 1),
    }
    arbitrated = [r for r in results if r.mode_fractions]
    if arbitrated:
        # Mean over the episodes of each arbiter mode's share of the episode's time.
        seen = {mode for r in arbitrated for mode in r.mode_fractions}
        modes = [mode.value for mode in Mode if mode.value in seen]
        stats["mode_time_fraction"] = {
            mode: float(np.mean([r.mode_fractions.get(mode, 0.0) for r in arbitrated]))
            for mode in modes
        }
        stats["handovers_mean"] = float(np.mean([r.handovers for r in arbitrated]))
        stats["handovers_total"] = sum(r.handovers for r in arbitrated)
    return stats


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (default 95 %); (0, 1) without trials."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2.0 * trials)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def time_ratio(results: Sequence[EpisodeResult], mode: str, baseline: str = "dwa") -> float | None:
    """Mean of mode's time / baseline's time over episodes both completed successfully."""
    by_key = {(r.world, r.seed, r.mode): r for r in results}
    ratios = []
    for r in results:
        if r.mode != mode or r.outcome != "success":
            continue
        other = by_key.get((r.world, r.seed, baseline))
        if other is not None and other.outcome == "success" and other.time > 0:
            ratios.append(r.time / other.time)
    return float(np.mean(ratios)) if ratios else None


def success_threshold(world: str, thresholds: Mapping[str, float] | None = None) -> float:
    """The gate's success threshold of a world: given, or by kind (moving obstacles or not)."""
    if thresholds and world in thresholds:
        return float(thresholds[world])
    return (
        MOVING_SUCCESS_THRESHOLD if world in MOVING_OBSTACLE_WORLDS else DEFAULT_SUCCESS_THRESHOLD
    )


def gate_verdict(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
    thresholds: Mapping[str, float] | None = None,
    mode: str = "policy_safety",
) -> dict[str, Any]:
    """The deployment gate (version `GATE_VERSION`) on `mode`, world by world.

    Every world: success >= its threshold (`success_threshold`), no at-fault collision,
    safety interventions below `MAX_INTERVENTION_RATE` of the steps, mean time-to-goal
    within `MAX_TIME_TO_BOUND` times the shortest-path bound (top speed along the grid
    path) of the same episodes. Moving-obstacle worlds, where the DWA ran: success above
    the DWA's (or both 1.0). Static worlds, where the stack ran: the stack's success >=
    `STACK_STATIC_SUCCESS`. Each failure says by how much it misses.
    """
    failures = []
    for world, modes in summary.items():
        stats = modes.get(mode)
        if stats is None or not stats.get("episodes"):
            failures.append(f"{world}: no {mode} episodes")
            continue
        needed = success_threshold(world, thresholds)
        success = stats["success_rate"]
        if success < needed:
            failures.append(
                f"{world}: success {success:.2f} < {needed:.2f} (by {needed - success:.2f})"
            )
        at_fault = stats.get("collisions_at_fault", stats.get("collisions", 0))
        if at_fault > 0:
            failures.append(f"{world}: {at_fault} at-fault collision(s) in mode {mode}")
        interventions = stats.get("intervention_rate")
        if interventions is not None and interventions >= MAX_INTERVENTION_RATE:
            failures.append(
                f"{world}: interventions {interventions:.1%} of steps"
                f" >= {MAX_INTERVENTION_RATE:.0%}"
            )
        taken, bound = stats.get("mean_time_to_goal"), stats.get("mean_min_time")
        if taken is not None and bound:
            ratio = taken / bound
            if ratio > MAX_TIME_TO_BOUND:
                failures.append(
                    f"{world}: time-to-goal {ratio:.2f}x the bound > {MAX_TIME_TO_BOUND:.2f}x"
                )
        dwa = modes.get("dwa")
        if world in MOVING_OBSTACLE_WORLDS and dwa is not None and dwa.get("episodes"):
            rival = dwa["success_rate"]
            if success <= rival and not success == rival == 1.0:
                failures.append(f"{world}: success {success:.2f} not above the DWA's {rival:.2f}")
        stack = modes.get("stack")
        if world not in MOVING_OBSTACLE_WORLDS and stack is not None and stack.get("episodes"):
            stack_success = stack["success_rate"]
            if stack_success < STACK_STATIC_SUCCESS:
                failures.append(
                    f"{world}: stack success {stack_success:.2f} < {STACK_STATIC_SUCCESS:.2f}"
                )
    return {"passed": not failures, "mode": mode, "version": GATE_VERSION, "failures": failures}


STACK_RIVALS = ("policy_safety", "dwa")  # the stack must do no worse than the better of these


def stack_check(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], mode: str = "stack"
) -> dict[str, Any] | None:
    """Per world, whether `mode` succeeds at least as often as the better of `STACK_RIVALS`.

    Only worlds where all three ran (with episodes) are judged; None when there is none.
    """
    worlds: dict[str, dict[str, Any]] = {}
    for world, modes in summary.items():
        ran = [modes.get(m) for m in (mode, *STACK_RIVALS)]
        if any(stats is None or not stats.get("episodes") for stats in ran):
            continue
        best = max(STACK_RIVALS, key=lambda m: modes[m]["success_rate"])
        success = modes[mode]["success_rate"]
        worlds[world] = {
            "success": success,
            "best_rival": best,
            "best_rival_success": modes[best]["success_rate"],
            "ok": success >= modes[best]["success_rate"],
        }
    if not worlds:
        return None
    return {"mode": mode, "passed": all(w["ok"] for w in worlds.values()), "worlds": worlds}
