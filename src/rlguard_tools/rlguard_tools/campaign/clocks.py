"""Time sequences for the filter's `now`: stalls, backward and forward jumps, gaps, NaN."""

from __future__ import annotations

import numpy as np

from rlguard_tools.campaign.settings import CONTROL_PERIOD, MAX_GAP_PERIODS, NON_FINITE


class FilterClock:
    """The `now` values the filter sees at a control step, given the true time."""

    def __init__(self, kind: str, rng: np.random.Generator) -> None:
        self.kind = kind
        self.rng = rng
        self._offset = 0.0  # filter time - true time
        self._frozen: float | None = None
        self._event_at = float(rng.uniform(0.3, 2.0))
        self._event_end = -1.0
        self._burst = 0

    def nows(self, true_time: float) -> tuple[list[float], bool]:
        """The filter's `now` values at this step (one, or two at one stamp) and whether
        a fault was injected at this step."""
        rng, kind = self.rng, self.kind
        if kind in ("", "gaps"):
            return [true_time], False
        if kind == "nonfinite":
            if self._burst == 0 and rng.random() < 0.05:
                self._burst = int(rng.integers(1, 10))
            if self._burst > 0:
                self._burst -= 1
                return [float(rng.choice(NON_FINITE))], True
            return [true_time], False
        due = true_time >= self._event_at
        if kind == "stall":
            if self._frozen is None and due:
                self._frozen = true_time + self._offset
                self._event_end = true_time + float(rng.uniform(0.1, 3.0))
            if self._frozen is not None:
                now = self._frozen
                if true_time >= self._event_end:  # resume: catch up, or lag from here
                    if rng.random() < 0.5:
                        self._offset = 0.0
                    else:
                        self._offset = self._frozen - true_time
                    self._frozen = None
                    self._event_at = true_time + float(rng.uniform(0.5, 3.0))
                    now = true_time + self._offset
                twice = rng.random() < 0.3
                return ([now, now] if twice else [now]), True
            return [true_time + self._offset], False
        if due:
            self._event_at = true_time + float(rng.uniform(0.5, 3.0))
            now = true_time + self._offset
            if kind == "backward":
                back = now if rng.random() < 0.2 else float(rng.uniform(0.05, 3.0))
                self._offset -= back
            elif kind == "forward":
                self._offset += float(rng.uniform(0.05, 5.0))
            else:
                raise ValueError(f"unknown clock fault {kind!r}")
            return [true_time + self._offset], True
        return [true_time + self._offset], False

    def period(self, default: float) -> float:
        """The true time until the next filter step."""
        if self.kind == "gaps" and self.rng.random() < 0.4:
            return float(self.rng.uniform(1.0, MAX_GAP_PERIODS)) * CONTROL_PERIOD
        return default
