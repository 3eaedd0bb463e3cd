"""Sensor drift in the policy node, without ROS: which baseline, the capture, the hold.

`DriftWatch` judges every scan the node accepts (`scan_drift.DriftDetector`) against a
calibration captured on request (`start_capture`), else the live model's training
statistics (its card's ``scan_statistics``); a model without them and no calibration
leaves drift unjudged. With ``drift_deactivates_policy`` an ERROR holds the controller's
policy off (`PolicyController.hold_reason`) until the drift clears. Level changes and
capture results come back as events for ``policy/events``.
"""

from __future__ import annotations

from typing import Any

from rl_policy_node.policy_card import ScanSpec
from rl_policy_node.policy_diagnostics import LEVEL_OK
from rl_policy_node.policy_runtime import PolicyController
from rl_policy_node.scan_drift import (
    OK,
    BaselineCapture,
    DriftDetector,
    DriftSettings,
    ScanLike,
    ScanStatistics,
)

# Sectors of a calibration capture when no model gives its card's: the shipped policies'.
CALIBRATION_LAYOUT = ScanSpec(sectors=36, field_of_view_deg=360.0, range_cap=3.5)
NO_BASELINE = "no baseline (the card has no scan statistics; call policy/capture_baseline)"

Event = dict[str, Any]


class DriftWatch:
    """Drift of the scans `controller` gets, against the current baseline (see the module
    docstring)."""

    def __init__(self, controller: PolicyController, settings: DriftSettings) -> None:
        self.controller = controller
        self.settings = settings
        self.calibration: ScanStatistics | None = None
        self.capture: BaselineCapture | None = None
        self.detector: DriftDetector | None = None
        self.baseline_problem = ""
        self._level = OK

    def refresh(self, settings: DriftSettings | None = None) -> str:
        """Choose the baseline again (after a swap, a capture or new `settings`); returns
        why the card's statistics are unusable ("" when they are, or there are none)."""
        if settings is not None:
            self.settings = settings
        baseline = self.calibration
        self.baseline_problem = ""
        slot = self.controller.slot
        if baseline is None and slot is not None and slot.policy.card.scan_statistics:
            try:
                baseline = ScanStatistics.from_dict(
                    slot.policy.card.scan_statistics, f"{slot.label}: scan_statistics"
                )
            except ValueError as exc:
                self.baseline_problem = str(exc)
        self.detector = DriftDetector(baseline, self.settings) if baseline is not None else None
        self._level = OK
        self.controller.hold_reason = None
        return self.baseline_problem

    def on_scan(self, scan: ScanLike, now_s: float) -> list[Event]:
        """Judge one accepted scan; returns the events it caused."""
        events = []
        capture = self.capture
        if capture is not None and capture.add(scan, now_s):
            events.append(self._finish_capture(capture, now_s))
        detector = self.detector
        if detector is None:
            return events
        report = detector.update(scan, now_s)
        if report.level != self._level:
            self._level = report.level
            events.append(
                {
                    "type": "drift",
                    "time": now_s,
                    "level": report.level_name,
                    "reasons": list(report.reasons),
                    "baseline": detector.baseline.kind,
                }
            )
            blocked = detector.blocks_policy
            self.controller.hold_reason = (
                "sensor drift: " + "; ".join(report.reasons) if blocked else None
            )
        return events

    def start_capture(self, now_s: float) -> str:
        """Start recording a calibration baseline; returns what to tell the caller."""
        slot = self.controller.slot
        spec = slot.policy.card.observation.scan if slot is not None else CALIBRATION_LAYOUT
        self.capture = BaselineCapture.from_settings(spec, now_s, self.settings)
        return (
            f"capturing a calibration baseline over {self.settings.capture_duration:g} s of "
            "scans (keep the robot where it is calibrated); the result comes on policy/events"
        )

    def poll(self, now_s: float) -> list[Event]:
        """Finish a capture whose time is up even if no scan came (from a timer)."""
        capture = self.capture
        if capture is not None and capture.poll(now_s):
            return [self._finish_capture(capture, now_s)]
        return []

    def status(self, now_s: float) -> tuple[int, str, dict[str, str]]:
        """(level, message, values) for the drift diagnostics status."""
        detector, capture = self.detector, self.capture
        values: dict[str, str] = {}
        if capture is not None:
            values["capture"] = f"{capture.scans} scans so far"
        if detector is None:
            return LEVEL_OK, self.baseline_problem or NO_BASELINE, values
        report = detector.report(now_s)
        values.update(report.values)
        values["baseline"] = detector.baseline.kind
        values["deactivates_policy"] = str(self.settings.deactivates_policy).lower()
        message = "; ".join(report.reasons) if report.reasons else report.level_name
        return report.level, message, values

    def _finish_capture(self, capture: BaselineCapture, now_s: float) -> Event:
        self.capture = None
        if capture.baseline is None:
            return {"type": "baseline_capture_failed", "time": now_s, "reason": capture.error}
        self.calibration = capture.baseline
        self.refresh()
        return {"type": "baseline_captured", "time": now_s, "scans": capture.scans}
