"""The campaign's report: per class and per class/world totals, failures, JSON and table."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlguard_tools.benchlib import machine_info
from rlguard_tools.campaign.classes import CLASS_BY_NAME
from rlguard_tools.campaign.results import VIOLATION_KINDS, EpisodeResult, json_ready
from rlguard_tools.campaign.scans import UNHANDLED_REJECTION
from rlguard_tools.campaign.settings import MAX_SUMMARY_EVENTS
from safety_controller.scan_input import CONVERSION_FAILED

FAILURES = ("at_fault", "non_finite", "limit_violations", "stuck_episodes", "exceptions")


def _empty_entry() -> dict[str, Any]:
    return {
        "episodes": 0,
        "steps": 0,
        "filter_steps": 0,
        "sim_seconds": 0.0,
        "collisions": 0,
        "at_fault": 0,
        "not_at_fault": 0,
        "non_finite": 0,
        "exceptions": 0,
        "limit_violations": 0,
        "violations": dict.fromkeys(VIOLATION_KINDS, 0),
        "max_accel_excess": 0.0,
        "stuck_episodes": 0,
        "stuck_events": 0,
        "blocked_escapes": 0,
        "longest_blocked_escape_s": 0.0,
        "guard_steps": 0,
        "hard_stop_steps": 0,
        "faults_injected": 0,
        "held_outputs": 0,
        "min_gap_m": math.inf,
        "closest_approach_m": math.inf,
        "reasons": {},
        "states": {},
        "scan_rejections": {},
    }


def _add(entry: dict[str, Any], result: EpisodeResult) -> None:
    entry["episodes"] += 1
    for name in (
        "steps",
        "filter_steps",
        "sim_seconds",
        "collisions",
        "at_fault",
        "not_at_fault",
        "non_finite",
        "exceptions",
        "limit_violations",
        "stuck_events",
        "blocked_escapes",
        "guard_steps",
        "hard_stop_steps",
        "faults_injected",
        "held_outputs",
    ):
        entry[name] += getattr(result, name)
    for kind, count in result.violations.items():
        entry["violations"][kind] += count
    for key in ("reasons", "states", "scan_rejections"):
        counter = Counter(entry[key])
        counter.update(getattr(result, key))
        entry[key] = dict(sorted(counter.items()))
    entry["stuck_episodes"] += int(result.stuck)
    entry["max_accel_excess"] = max(entry["max_accel_excess"], result.max_accel_excess)
    entry["longest_blocked_escape_s"] = max(
        entry["longest_blocked_escape_s"], result.longest_blocked_escape
    )
    entry["min_gap_m"] = min(entry["min_gap_m"], result.min_gap)
    entry["closest_approach_m"] = min(entry["closest_approach_m"], result.min_approach)


def expected_reason_seen(name: str, entry: dict[str, Any]) -> bool:
    """Whether a class's run named one of its expected reasons (validator or filter)."""
    expected = CLASS_BY_NAME[name].expected_reasons
    if not expected:
        return True
    seen = set(entry["reasons"]) | {r.split("+")[0] for r in entry["scan_rejections"]}
    return bool(seen & set(expected))


def class_failures(name: str, entry: dict[str, Any]) -> list[str]:
    """What a class's counters show wrong (empty: the class holds)."""
    failures = [f"{key}={entry[key]}" for key in FAILURES if entry[key]]
    if not expected_reason_seen(name, entry):
        expected = ", ".join(CLASS_BY_NAME[name].expected_reasons)
        failures.append(f"expected reason not seen ({expected})")
    rejections = entry["scan_rejections"]
    unhandled = sum(n for r, n in rejections.items() if UNHANDLED_REJECTION in r)
    if unhandled:
        failures.append(f"rejected scans not passed to the filter={unhandled}")
    failed = sum(n for r, n in rejections.items() if r.startswith(CONVERSION_FAILED))
    if failed:
        failures.append(f"valid scans whose conversion raised={failed}")
    return failures


def summarize(results: Iterable[EpisodeResult]) -> dict[str, Any]:
    """Totals, per-class entries and per class/world cells of the campaign counters."""
    totals = _empty_entry()
    classes: dict[str, dict[str, Any]] = {}
    cells: dict[str, dict[str, Any]] = {}
    events = []
    for result in results:
        spec = result.spec
        for entry in (
            totals,
            classes.setdefault(spec.class_name, _empty_entry()),
            cells.setdefault(f"{spec.class_name}/{spec.world}", _empty_entry()),
        ):
            _add(entry, result)
        for event in result.events[: max(0, MAX_SUMMARY_EVENTS - len(events))]:
            events.append({**asdict(spec), **event})
    for name, entry in classes.items():
        entry["description"] = CLASS_BY_NAME[name].description
        entry["expected_reasons"] = list(CLASS_BY_NAME[name].expected_reasons)
        entry["failures"] = class_failures(name, entry)
    return {"totals": totals, "classes": classes, "cells": cells, "events": events}


def _reasons_text(entry: dict[str, Any], limit: int = 4) -> str:
    scan = sorted(entry["scan_rejections"].items(), key=lambda kv: -kv[1])[:limit]
    filt = sorted(entry["reasons"].items(), key=lambda kv: -kv[1])[:limit]
    parts = []
    if scan:
        parts.append("scan: " + ", ".join(f"{k} {v}" for k, v in scan))
    if filt:
        parts.append("filter: " + ", ".join(f"{k} {v}" for k, v in filt))
    if entry["held_outputs"]:
        parts.append(f"hold {entry['held_outputs']}")
    return "; ".join(parts) or "-"


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per class: the counters that must be 0, the information, the reasons seen."""
    header = (
        "| class | episodes | steps | collisions at fault / not | non-finite | "
        "limit violations v/a/b/h/n | exceptions | stuck | blocked escapes | "
        "closest approach m | named reasons (steps or scans) | holds |"
    )
    lines = [header, "|" + " --- |" * 12]
    for name, entry in summary["classes"].items():
        v = entry["violations"]
        kinds = "/".join(str(v[k]) for k in VIOLATION_KINDS)
        approach = entry["closest_approach_m"]
        approach_text = f"{approach:.3f}" if isinstance(approach, float) else str(approach)
        holds = "yes" if not entry["failures"] else "**no**: " + "; ".join(entry["failures"])
        lines.append(
            f"| {name} | {entry['episodes']} | {entry['steps']} | "
            f"{entry['at_fault']} / {entry['not_at_fault']} | {entry['non_finite']} | "
            f"{entry['limit_violations']} ({kinds}) | {entry['exceptions']} | "
            f"{entry['stuck_episodes']} | {entry['blocked_escapes']} | {approach_text} | "
            f"{_reasons_text(entry)} | {holds} |"
        )
    return "\n".join(lines)


def write_report(summary: dict[str, Any], settings: dict[str, Any], out_dir: Path) -> Path:
    """Write `<out_dir>/reliability_campaign-<date>.json` and a .md table beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    date = dt.date.today().isoformat()
    path = out_dir / f"reliability_campaign-{date}.json"
    payload = {
        "benchmark": "reliability_campaign",
        "date": date,
        "machine": machine_info(),
        "settings": settings,
        **summary,
    }
    text = json.dumps(json_ready(payload), indent=2, allow_nan=False)
    path.write_text(text + "\n")
    legend = (
        f"Steps per class: {settings['steps_per_class']} requested; scan path: "
        f"{settings['scan_path']}. Limit violations by kind: velocity / accel / brake / "
        "hard_stop / invalid_now.\n\n"
    )
    path.with_suffix(".md").write_text(legend + markdown_table(summary) + "\n")
    return path
