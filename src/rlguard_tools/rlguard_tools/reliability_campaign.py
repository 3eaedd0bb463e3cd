"""Adversarial reliability campaign: hostile inputs through the real safety filter, per class.

Runs the safety filter core in-process against the embedded MuJoCo simulator core (no DDS,
no rclpy), with randomized physics (friction, payload, wheel radius, actuator delay, lidar
noise and dropout drawn per episode from the robot profile). Each control step the lidar
(10 Hz, on simulated time) goes through the node's scan path (the ground-floor validator
`rlguard_common.scan_validity.validate_scan`, then `SafetyFilter.reject_scan` or
`scan_to_points` + `SafetyFilter.set_scan`), wheel odometry and a command stream's request
go into the filter, and the simulator executes the output. The base is modelled as the
contract requires (ARCHITECTURE.md, "the guarantee"): it executes a command for at most
`base_command_timeout` (whose default equals `reaction_time`) and stops (command zero) on
an older one; an output the filter marks `hold` is not published, like the node does. The
filter is configured from config/safety_controller.yaml plus the robot-profile overrides
(rlguard_common.robot_parameters) by the node's own builder (`node_config.build_safety_config`).

Each **class** is one kind of hostility, run and reported on its own (CLASSES):

- command streams in the static worlds: ``random`` (piecewise-constant requests up to 1.5x
  the limits), ``full_speed``, ``aim_nearest`` (full speed at the nearest obstacle, front or
  rear), ``oscillating`` (bang-bang or sinusoidal, 0.2-10 Hz), ``jitter`` (control periods
  of 10-120 ms), ``alternating`` (full forward / full reverse requests, flipped every
  0.05-0.5 s, closed loop), ``nonfinite_commands`` (requests laced with NaN, +-inf, huge and
  denormal values);
- malformed scans (``scan_<kind>``, SCAN_FAULTS): bursts of 0.3-3 s in which every scan is
  malformed in one way (angle_increment zero / negative / NaN, 720 ranges on a 360-beam
  geometry, range_min > range_max, range_max <= 0 or non-finite, empty ranges, non-finite
  stamp, intensities of another length, every range +inf, every range NaN), between good
  stretches, while a ``drive`` stream aims at obstacles; ``nonfinite_scans``: bursts of
  NaN/+-inf in beams and header fields;
- time sequences for the filter's `now` (``clock_<kind>``): a stalled clock (with two
  filter steps at one stamp), backward jumps, forward jumps, gaps of 1-5 control periods
  between filter steps (the base horizon stops the wheels meanwhile), non-finite `now`;
- ``lidar270_reverse``: a forward-facing 270-degree lidar robot (config/robots/lidar270.yaml)
  reversing at full speed into walls;
- moving obstacles (``movers_<world>``): the shipped `dynamic` world and generated scenes
  (crossing, head-on in a corridor, overtaking, several movers); the robot cruises from
  the world's start, chases where the nearest mover will be, aims at the nearest obstacle,
  drives randomly or stands still.

Counted per class (and per class and world):

- ``collisions``, split into ``at_fault`` (contact while the robot's velocity has a
  positive component toward the contact point: `Simulator.at_fault_collision_count`) and
  not at fault (hit while still or moving away);
- ``non_finite``: outputs with a NaN or infinite component; ``exceptions``: filter calls
  that raised (the node would publish zero);
- ``limit_violations`` by kind, judged between consecutive outputs over the filter's
  elapsed time max(0, now - previous now) (the contract: "time cannot make it faster").
  ``velocity``: outside [min_velocity, max_velocity]. ``accel``: a step without a safety
  reason outside the box max_accel / max_decel allow around the previous output.
  ``brake``: a safety step (collision, blind, blind direction, stale input) outside the box
  emergency_decel allows around the previous output (only a safety stop may brake harder
  than max_decel, and no harder than emergency_decel). ``hard_stop``: an e-stop or
  invalid-input step whose output is not exactly zero. ``invalid_now``: a step at a
  non-finite `now` whose output is not exactly zero;
- ``stuck``: an episode in which, for more than STUCK_SECONDS of simulated time in a row
  and with no injected fault in the last FAULT_SETTLE seconds, (1) the request was finite
  and asked for at least MIN_ASK of the limits, (2) the requested motion was an escape on
  ground truth (`is_escape`), (3) the output was below BLOCKED_FRACTION of the limits, and
  (4) every probe motion (`probe_commands`, tried on a copy of the filter) was blocked too;
- ``blocked_escapes`` (information): stretches in which (1)-(3) held but a probe passed;
- the named reasons seen: the validator's rejection reasons and the filter's reasons
  (steps with each), its states, guard and hard-stop steps, the smallest ground-truth gap
  and the closest approach (the smallest gap once the gap had been at least the margin).

Run ``python -m rlguard_tools.reliability_campaign --steps 100000 --out bench/results``
(steps per class). Seeds are fixed per class: the same budget and seed give the same counts.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rlguard_tools.campaign.classes import CLASS_BY_NAME, CLASSES
from rlguard_tools.campaign.episode import plan_episodes, run_campaign
from rlguard_tools.campaign.filter_setup import safety_parameters
from rlguard_tools.campaign.report import markdown_table, summarize, write_report
from rlguard_tools.campaign.scans import SCAN_PATH
from rlguard_tools.campaign.settings import (
    DEFAULT_SEED,
    DEFAULT_STEPS,
    EPISODE_STEPS,
    STUCK_SECONDS,
)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the campaign, print the table, write JSON; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="control steps per class")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="output dir")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base episode seed")
    parser.add_argument("--workers", type=int, default=2, help="processes (1: in-process)")
    parser.add_argument("--episode-steps", type=int, default=EPISODE_STEPS)
    parser.add_argument(
        "--classes", nargs="+", choices=sorted(CLASS_BY_NAME), help="only these classes"
    )
    parser.add_argument(
        "--feedback",
        choices=("CLOSED_LOOP", "OPEN_LOOP"),
        help="override the YAML's feedback mode",
    )
    args = parser.parse_args(argv)

    specs = plan_episodes(args.steps, args.seed, args.classes, episode_steps=args.episode_steps)
    overrides = {"feedback": args.feedback} if args.feedback else None
    start = time.perf_counter()
    results = run_campaign(specs, overrides, workers=args.workers)
    wall = time.perf_counter() - start
    summary = summarize(results)
    settings = {
        "command": "python -m rlguard_tools.reliability_campaign "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "steps_per_class": args.steps,
        "episodes": len(specs),
        "episode_steps": args.episode_steps,
        "seed": args.seed,
        "workers": args.workers,
        "wall_seconds": round(wall, 2),
        "classes": {c.name: asdict(c) for c in CLASSES if c.name in summary["classes"]},
        "scan_path": SCAN_PATH,
        "stuck_seconds": STUCK_SECONDS,
        "base_horizon": "reaction_time",
        "safety_parameters": safety_parameters(),
        "overrides": overrides,
    }
    path = write_report(summary, settings, args.out)
    totals = summary["totals"]
    print(f"## reliability campaign\n\n{markdown_table(summary)}\n")
    print(
        f"{totals['steps']} control steps, {totals['sim_seconds']:.0f} s simulated, "
        f"{len(specs)} episodes, wall {wall:.1f} s with {args.workers} worker(s)"
    )
    print(f"scan path: {SCAN_PATH}")
    for event in summary["events"][:10]:
        print(f"event: {event}")
    print(f"written: {path}")
    failed = any(entry["failures"] for entry in summary["classes"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
