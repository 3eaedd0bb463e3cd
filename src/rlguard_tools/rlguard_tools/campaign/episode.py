"""Running the campaign: planning episodes, one episode's loop, and the worker pool.

Each control step the lidar (10 Hz, on simulated time) goes through the node's scan path,
wheel odometry and the stream's request go into the filter, and the simulator executes
the output. The base is modelled as the contract requires: it executes a command for at
most `base_command_timeout` and stops on an older one; an output the filter marks `hold`
is not published, like the node does.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlguard_tools.campaign.classes import BLIND_DIRECTION, CLASS_BY_NAME, CLASSES
from rlguard_tools.campaign.clocks import FilterClock
from rlguard_tools.campaign.filter_setup import (
    FilterFactory,
    FilterLike,
    base_horizon,
    build_config,
    robot_profile,
    safety_parameters,
)
from rlguard_tools.campaign.ground_truth import clearance, is_escape, random_start
from rlguard_tools.campaign.results import EpisodeResult, EpisodeSpec, json_ready
from rlguard_tools.campaign.scans import (
    FaultSchedule,
    ScanMessage,
    corrupt_scan,
    feed_scan,
    scan_message,
)
from rlguard_tools.campaign.settings import (
    BLOCKED_FRACTION,
    DEFAULT_SEED,
    EPISODE_STEPS,
    FAULT_SETTLE,
    LIMIT_TOLERANCE,
    MAX_EVENTS,
    MIN_ASK,
    STUCK_SECONDS,
)
from rlguard_tools.campaign.streams import STREAM_TYPES, StreamInput
from rlguard_tools.campaign.worlds import load_campaign_world
from safety_controller.limits import (
    TINY,
    Velocity,
    VelocityLimits,
    clamp_velocity,
    in_box,
    reachable_box,
)
from safety_controller.safety_filter import (
    HARD_STOP_REASONS,
    SAFETY_REASONS,
    FilterOutput,
    SafetyFilter,
)
from sim_bringup.sim_core import Simulator


def plan_episodes(
    steps_per_class: int,
    seed: int = DEFAULT_SEED,
    classes: Sequence[str] | None = None,
    episode_steps: int = EPISODE_STEPS,
) -> list[EpisodeSpec]:
    """Episodes covering at least `steps_per_class` for each class, cycling its worlds.

    A class's seeds depend on its name and the base seed only, so running a subset of the
    classes gives the same episodes for those classes.
    """
    names = list(classes) if classes is not None else [c.name for c in CLASSES]
    specs: list[EpisodeSpec] = []
    per_class = []
    for name in names:
        cls = CLASS_BY_NAME[name]
        count = max(len(cls.worlds), math.ceil(steps_per_class / episode_steps))
        base = seed + (zlib.crc32(name.encode()) % 100_000) * 10_000
        per_class.append([(name, cls.worlds[i % len(cls.worlds)], base + i) for i in range(count)])
    # Interleave the classes so that a worker pool shares the heavy ones.
    for round_ in range(max(len(p) for p in per_class)):
        for episodes in per_class:
            if round_ < len(episodes):
                name, world, episode_seed = episodes[round_]
                specs.append(EpisodeSpec(len(specs), name, world, episode_seed, episode_steps))
    return specs


_SIMULATORS: dict[tuple[str, str], Simulator] = {}


def shared_simulator(robot: str, world: str) -> Simulator:
    """One simulator per robot, world and process, reset per episode."""
    key = (robot, world)
    if key not in _SIMULATORS:
        _SIMULATORS[key] = Simulator(
            robot_profile(robot), load_campaign_world(world), randomize=True
        )
    return _SIMULATORS[key]


def _normalized(value: Velocity, limits: VelocityLimits) -> float:
    span_v = max(limits.max_velocity[0], -limits.min_velocity[0], 1e-9)
    span_w = max(limits.max_velocity[1], -limits.min_velocity[1], 1e-9)
    return abs(value[0]) / span_v + abs(value[1]) / span_w


def _within_velocity_limits(value: Velocity, limits: VelocityLimits) -> bool:
    return all(
        limits.min_velocity[i] - LIMIT_TOLERANCE
        <= value[i]
        <= limits.max_velocity[i] + LIMIT_TOLERANCE
        for i in range(2)
    )


def probe_commands(limits: VelocityLimits) -> list[Velocity]:
    """Motions tried to see whether the filter would let the robot move at all."""
    v = max(limits.max_velocity[0], -limits.min_velocity[0])
    w = max(limits.max_velocity[1], -limits.min_velocity[1])
    probes = [(0.0, w), (0.0, -w), (v, 0.0), (-v, 0.0)]
    probes += [(sv * v / 2.0, sw * w / 2.0) for sv in (1.0, -1.0) for sw in (1.0, -1.0)]
    return [clamp_velocity(pv, pw, limits) for pv, pw in probes]


def _any_probe_passes(filt: FilterLike, limits: VelocityLimits, now: float) -> bool:
    """Whether a copy of the filter would pass some probe command at `now`."""
    for command in probe_commands(limits):
        probe = copy.deepcopy(filt)
        probe.set_command(command[0], command[1], now)
        out = probe.step(now)
        if _normalized((out.linear, out.angular), limits) >= BLOCKED_FRACTION:
            return True
    return False


def _box_excess(value: Velocity, box: tuple[np.ndarray, np.ndarray], elapsed: float) -> float:
    """How far (per second of `elapsed`) `value` lies outside `box`, largest axis; 0 inside."""
    lo, hi = box
    excess = max(max(float(lo[i]) - value[i], value[i] - float(hi[i])) for i in range(2))
    if excess <= LIMIT_TOLERANCE:
        return 0.0
    return min(excess, 1e12) / max(elapsed, 1e-3)


_STOPPED = FilterOutput(0.0, 0.0, 0.0, frozenset(), math.inf, "EXCEPTION")


class Episode:
    """The state of one running episode (see `run_episode`)."""

    def __init__(
        self,
        spec: EpisodeSpec,
        overrides: dict[str, Any] | None,
        filter_factory: FilterFactory | None,
    ) -> None:
        self.spec = spec
        self.cls = CLASS_BY_NAME[spec.class_name]
        profile = robot_profile(self.cls.robot)
        values = safety_parameters(profile)
        values.update(overrides or {})
        self.config, self.mount = build_config(values)
        self.limits = self.config.limits
        self.horizon = base_horizon(values)  # the base stops on older commands
        self.filt = (filter_factory or SafetyFilter)(self.config)
        self.sim = sim = shared_simulator(self.cls.robot, spec.world)
        self.rng = rng = np.random.default_rng(spec.seed)
        self.moving = bool(sim.world.moving_cylinders)
        self.stream = STREAM_TYPES[self.cls.stream](rng)
        sim.reset(spec.seed)
        geometry = sim.obstacles()
        start = sim.world.start
        if not (self.stream.from_world_start and clearance(np.array(start[:2]), geometry) > 0.3):
            band = rng.choice([0, 1, 2])  # start near a wall, in the open, or anywhere
            low, high = ((0.125, 0.2), (0.35, math.inf), (0.2, math.inf))[band]
            start = random_start(sim, geometry, rng, low, high, inset=0.1)
        sim.reset(spec.seed, start=start)
        self.geometry = sim.obstacles()
        self.clock = FilterClock(self.cls.clock, rng)
        self.schedule = FaultSchedule(rng) if self.cls.scan_fault else None
        self.radius = sim.robot.footprint_radius
        self.scan_period = 1.0 / sim.robot.lidar.rate_hz
        self.result = EpisodeResult(spec=spec)
        self.time = 0.0  # true (simulated) time, unrounded
        self.next_scan = 0.0
        self.pending: list[ScanMessage] = []
        self.base_command: Velocity = (0.0, 0.0)
        self.base_time = -math.inf
        self.previous: Velocity = (0.0, 0.0)
        self.previous_now: float | None = None
        self.last_fault = -math.inf

    # ---- helpers --------------------------------------------------------------------

    def record(self, kind: str, **extra: Any) -> None:
        """Keep an event of the episode (up to MAX_EVENTS) for investigation."""
        if len(self.result.events) < MAX_EVENTS:
            self.result.events.append(
                {"kind": kind, "time": round(self.time, 6), **json_ready(extra)}
            )

    def cast_scan(self) -> None:
        """Ray-cast the lidar now (malformed during a fault burst) and queue the scan."""
        msg = scan_message(self.sim)
        msg.stamp = self.time
        if self.schedule is not None and self.schedule.active(self.time):
            msg = corrupt_scan(msg, self.cls.scan_fault, self.rng)
            self.result.faults_injected += 1
            self.last_fault = self.time
        self.pending.append(msg)

    def feed_scans(self, now: float) -> None:
        """Feed the queued scans through the node's scan path at `now`, counting refusals."""
        for msg in self.pending:
            try:
                reason = feed_scan(self.filt, msg, now, self.mount)
            except Exception as exc:  # noqa: BLE001 - a crash is what the campaign counts
                self.result.exceptions += 1
                self.record("exception", where="scan", error=repr(exc))
                continue
            if reason is not None:
                rejections = self.result.scan_rejections
                rejections[reason] = rejections.get(reason, 0) + 1
        self.pending.clear()

    def filter_step(self, now: float, request: Velocity) -> tuple[FilterOutput, Velocity]:
        """Odometry, request and one filter step at `now`; checks the output."""
        result, limits = self.result, self.limits
        odom = self.sim.odometry()
        try:
            self.filt.set_odometry(odom.v, odom.w, now)
            self.filt.set_command(request[0], request[1], now)
            out = self.filt.step(now)
        except Exception as exc:  # noqa: BLE001 - the node would publish zero
            result.exceptions += 1
            self.record("exception", where="step", now=now, error=repr(exc))
            out = _STOPPED
        result.filter_steps += 1
        for reason in out.reasons:
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
        result.states[out.state] = result.states.get(out.state, 0) + 1
        output = (out.linear, out.angular)
        seen = dict(
            now=now,
            request=request,
            output=output,
            previous=self.previous,
            odometry=(odom.v, odom.w),
            reasons=sorted(out.reasons),
            state=out.state,
        )
        if not (math.isfinite(output[0]) and math.isfinite(output[1])):
            result.non_finite += 1
            self.record("non_finite", **seen)
            output = (0.0, 0.0)  # what the simulator does with it; keeps the checks defined
        if not _within_velocity_limits(output, limits):
            result.violations["velocity"] += 1
            self.record("velocity", **seen)
        if not math.isfinite(now):
            if output != (0.0, 0.0):
                result.violations["invalid_now"] += 1
                self.record("invalid_now", **seen)
            self.previous = output
            return out, output
        if out.reasons & HARD_STOP_REASONS:
            result.hard_stop_steps += 1
            if output != (0.0, 0.0):
                result.violations["hard_stop"] += 1
                self.record("hard_stop", **seen)
        elif self.previous_now is not None:
            elapsed = max(0.0, now - self.previous_now)
            safety = bool(out.reasons & (SAFETY_REASONS | {BLIND_DIRECTION}))
            reference = tuple(x if abs(x) >= TINY else 0.0 for x in self.previous)
            box = reachable_box(reference, limits, elapsed, emergency=safety)
            if safety:
                result.guard_steps += 1
            if not in_box(output, box, LIMIT_TOLERANCE):
                kind = "brake" if safety else "accel"
                result.violations[kind] += 1
                excess = _box_excess(output, box, elapsed)
                result.max_accel_excess = max(result.max_accel_excess, excess)
                self.record(kind, elapsed=elapsed, **seen)
        self.previous, self.previous_now = output, now
        return out, output

    def advance(self, duration: float) -> None:
        """Run the base for `duration`: the last command until its horizon, then zero."""
        sim, result = self.sim, self.result
        target = self.time + duration
        while True:
            stops = [target]
            if self.next_scan < target - 1e-9:
                stops.append(self.next_scan)
            cutoff = self.base_time + self.horizon
            if self.time < cutoff < target - 1e-9:
                stops.append(cutoff)
            end = min(stops)
            command = self.base_command if self.time < cutoff - 1e-12 else (0.0, 0.0)
            before = (sim.collision_count, sim.at_fault_collision_count)
            sim.step(command[0], command[1], end - self.time)
            self.time = end
            new = sim.collision_count - before[0]
            if new > 0:
                fault = sim.at_fault_collision_count - before[1]
                result.collisions += new
                result.at_fault += fault
                self.record(
                    "collision" if fault else "collision_not_at_fault",
                    pose=sim.pose,
                    velocity=sim.velocity,
                    command=command,
                )
            if end >= target - 1e-9:
                return
            if abs(end - self.next_scan) <= 1e-9:
                self.cast_scan()
                self.next_scan += self.scan_period

    # ---- the loop -------------------------------------------------------------------

    def run(self) -> EpisodeResult:
        """Drive the episode's control steps; the counters of the episode."""
        sim, result, limits, config = self.sim, self.result, self.limits, self.config
        margin = config.footprint.margin
        blocked_escape, counted_blocked = 0.0, False
        trapped_time, counted_trap = 0.0, False
        left_margin = clearance(np.array(sim.pose[:2]), self.geometry) - self.radius >= margin
        for _ in range(self.spec.steps):
            if self.time >= self.next_scan - 1e-9:
                self.cast_scan()
                self.next_scan += self.scan_period
            if self.moving:
                self.geometry = sim.obstacles()
            nows, clock_fault = self.clock.nows(self.time)
            if clock_fault:
                result.faults_injected += 1
                self.last_fault = self.time
            pose = sim.pose
            movers = sim.moving_obstacles() if self.moving else np.zeros((0, 5))
            request = self.stream.command(
                StreamInput(self.time, pose, self.geometry, limits.max_velocity, movers)
            )
            if not (math.isfinite(request[0]) and math.isfinite(request[1])):
                self.last_fault = self.time
            for k, now in enumerate(nows):
                if k == 0:
                    self.feed_scans(now)
                out, output = self.filter_step(now, request)
                if getattr(out, "hold", False):
                    # A repeat at no later time: the node does not publish it, so the
                    # base keeps its last command until that command's horizon.
                    result.held_outputs += 1
                else:
                    self.base_command, self.base_time = output, self.time
            output = self.base_command if self.time < self.base_time + self.horizon else (0.0, 0.0)

            nominal = self.stream.period()
            period = self.clock.period(nominal)
            if period > nominal:  # a gap between filter steps
                result.faults_injected += 1
                self.last_fault = self.time
            settled = self.time - self.last_fault > FAULT_SETTLE
            escape_blocked = settled and _normalized(output, limits) < BLOCKED_FRACTION
            if escape_blocked:
                asked = clamp_velocity(request[0], request[1], limits)
                escape_blocked = _normalized(asked, limits) >= MIN_ASK and is_escape(
                    pose, asked, self.geometry, self.radius, margin
                )
            trapped = escape_blocked and not _any_probe_passes(self.filt, limits, nows[-1] + period)
            if escape_blocked:
                blocked_escape += period
                result.longest_blocked_escape = max(result.longest_blocked_escape, blocked_escape)
                if blocked_escape > STUCK_SECONDS and not counted_blocked:
                    counted_blocked = True
                    result.blocked_escapes += 1
                    self.record("blocked_escape", blocked_seconds=blocked_escape, request=request)
            else:
                blocked_escape, counted_blocked = 0.0, False
            if trapped:
                trapped_time += period
                if trapped_time > STUCK_SECONDS and not counted_trap:
                    counted_trap = True
                    result.stuck_events += 1
                    result.stuck = True
                    self.record("stuck", blocked_seconds=trapped_time, request=request)
            else:
                trapped_time, counted_trap = 0.0, False

            self.advance(period)
            if self.moving:
                self.geometry = sim.obstacles()
            gap = clearance(np.array(sim.pose[:2]), self.geometry) - self.radius
            left_margin = left_margin or gap >= margin
            if left_margin:
                result.min_approach = min(result.min_approach, gap)
            result.min_gap = min(result.min_gap, gap)
            result.steps += 1
        result.sim_seconds = self.time
        return result


def run_episode(
    spec: EpisodeSpec,
    overrides: dict[str, Any] | None = None,
    filter_factory: FilterFactory | None = None,
) -> EpisodeResult:
    """Drive one episode of its class; `overrides` replace safety parameter values."""
    return Episode(spec, overrides, filter_factory).run()


Job = tuple[EpisodeSpec, dict[str, Any] | None, FilterFactory | None]


def _run_one(job: Job) -> EpisodeResult:
    return run_episode(*job)


def run_campaign(
    specs: Sequence[EpisodeSpec],
    overrides: dict[str, Any] | None = None,
    workers: int = 2,
    filter_factory: FilterFactory | None = None,
) -> list[EpisodeResult]:
    """Run every episode (in `workers` processes when > 1), results in episode order."""
    jobs = [(spec, overrides, filter_factory) for spec in specs]
    if workers <= 1:
        return [_run_one(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(pool.imap(_run_one, jobs, chunksize=1))
