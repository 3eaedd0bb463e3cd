"""The campaign's classes: one kind of hostility each (command streams, malformed scans,
clock faults, the 270-degree lidar robot, moving obstacles), and what each must show."""

from __future__ import annotations

from dataclasses import dataclass

STATIC_WORLDS = ("empty", "corridor", "warehouse")
BLIND_DIRECTION = "blind_direction"  # the filter's reason for unseen directions (new core)


@dataclass(frozen=True)
class CampaignClass:
    """One kind of hostility: a command stream, worlds, robot, and the faults injected."""

    name: str
    description: str
    stream: str  # a STREAM_TYPES key
    worlds: tuple[str, ...] = STATIC_WORLDS  # names in worlds/ or MOVER_WORLDS keys
    robot: str = "default"  # a robot profile name (LIDAR270: the 270-degree lidar robot)
    scan_fault: str = ""  # a SCAN_FAULTS key, "" for none
    clock: str = ""  # a CLOCK_FAULTS key, "" for the true clock
    # At least one of these reasons (validator or filter) must be seen in the class.
    expected_reasons: tuple[str, ...] = ()


# kind -> (description, validator reasons any of which names it correctly)
SCAN_FAULTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "angle_increment_zero": ("angle_increment = 0", ("angle_increment_not_positive",)),
    "angle_increment_negative": (
        "angle_increment < 0 (a mirrored, self-consistent geometry)",
        ("angle_increment_not_positive",),
    ),
    "angle_increment_nan": ("angle_increment = NaN", ("angle_increment_not_finite",)),
    "beam_count_mismatch": (
        "720 ranges on a 360-beam geometry",
        ("beam_count_mismatch",),
    ),
    "range_min_above_range_max": (
        "range_min and range_max swapped",
        ("range_min_above_range_max",),
    ),
    "range_max_nonpositive": (
        "range_max 0 or negative",
        ("range_max_not_positive", "range_min_above_range_max"),
    ),
    "range_max_nonfinite": (
        "range_max NaN or +-inf",
        ("range_max_not_finite", "range_max_not_positive"),
    ),
    "empty_ranges": ("no ranges at all", ("empty_ranges", "beam_count_mismatch")),
    "stamp_nonfinite": ("header stamp NaN or +-inf", ("stamp_not_finite",)),
    "intensities_mismatch": (
        "intensities of another length than ranges",
        ("intensities_length_mismatch",),
    ),
    "all_inf": ("every range +inf (well-formed: 'nothing anywhere')", ("blind",)),
    "all_nan": ("every range NaN (well-formed: no measurement)", ("blind",)),
    "nonfinite": (
        "NaN/+-inf bursts in beams and in header fields",
        ("blind", "angle_not_finite", "range_max_not_finite", "range_min_not_finite"),
    ),
}

CLOCK_FAULTS: dict[str, str] = {
    "stall": "now stalls for 0.1-3 s (steps repeat one stamp, some twice), then catches up or lags",
    "backward": "now jumps back by 0.05-3 s (or to 0) every 0.5-3 s",
    "forward": "now jumps forward by 0.05-5 s every 0.5-3 s",
    "gaps": "1-5 control periods between filter steps; the base stops after reaction_time",
    "nonfinite": "bursts of NaN / +-inf now",
}

LIDAR270 = "lidar270"

MOVER_WORLDS = ("dynamic", "crossing", "headon", "overtaking", "crowd")


def _classes() -> tuple[CampaignClass, ...]:
    streams = [
        CampaignClass("random", "random requests up to 1.5x the limits", "random"),
        CampaignClass("full_speed", "one constant full-speed request", "full_speed"),
        CampaignClass("aim_nearest", "full speed at the nearest obstacle", "aim_nearest"),
        CampaignClass("oscillating", "bang-bang / sinusoidal requests", "oscillating"),
        CampaignClass("jitter", "control periods of 10-120 ms", "jitter"),
        CampaignClass(
            "alternating", "full forward / full reverse requests, closed loop", "alternating"
        ),
        CampaignClass(
            "nonfinite_commands",
            "requests laced with NaN, +-inf, huge values",
            "nonfinite",
            expected_reasons=("invalid_input",),
        ),
    ]
    scans = [
        CampaignClass(
            "nonfinite_scans" if kind == "nonfinite" else f"scan_{kind}",
            description,
            "drive",
            scan_fault=kind,
            expected_reasons=reasons,
        )
        for kind, (description, reasons) in SCAN_FAULTS.items()
    ]
    clocks = [
        CampaignClass(
            f"clock_{kind}",
            description,
            "drive",
            clock=kind,
            expected_reasons=("invalid_input",) if kind == "nonfinite" else (),
        )
        for kind, description in CLOCK_FAULTS.items()
    ]
    others = [
        CampaignClass(
            "lidar270_reverse",
            "270-degree forward lidar reversing at full speed into walls",
            "reverse",
            robot=LIDAR270,
            expected_reasons=(BLIND_DIRECTION,),
        ),
        *(
            CampaignClass(f"movers_{world}", MOVER_DESCRIPTIONS[world], "movers", worlds=(world,))
            for world in MOVER_WORLDS
        ),
    ]
    return (*streams, *scans, *clocks, *others)


MOVER_DESCRIPTIONS = {
    "dynamic": "the shipped dynamic world (three movers, 0.2-0.3 m/s)",
    "crossing": "movers crossing the robot's path at 0.3-0.45 m/s",
    "headon": "a mover coming head-on in a 1.2 m corridor at 0.35 m/s",
    "overtaking": "a 0.45 m/s mover catching up from behind in a corridor",
    "crowd": "five movers at 0.25-0.45 m/s in an open hall",
}
CLASSES = _classes()
CLASS_BY_NAME = {c.name: c for c in CLASSES}
