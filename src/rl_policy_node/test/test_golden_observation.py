"""Golden vectors: stored scan/odom/goal inputs must give the stored observation to 1e-6.

Any change to the observation layout or its arithmetic fails here. After a deliberate
change (which also needs a new card format version), regenerate with
``RLGUARD_REGENERATE_GOLDEN=1 python -m pytest src/rl_policy_node/test/test_golden_observation.py``.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from rl_policy_node.observation import ObservationBuilder, ScanInput
from rl_policy_node.policy_card import PolicyCard, implicit_card

GOLDEN = Path(__file__).parent / "data" / "golden_observations.json"


def _case_inputs(name: str, beams: int, fov_deg: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    ranges = rng.uniform(0.15, 8.0, beams)
    ranges[rng.choice(beams, beams // 20, replace=False)] = np.nan
    ranges[rng.choice(beams, beams // 20, replace=False)] = np.inf
    ranges[rng.choice(beams, 3, replace=False)] = -np.inf
    ranges[rng.choice(beams, 5, replace=False)] = 0.0
    full = math.isclose(fov_deg, 360.0)
    fov = math.radians(fov_deg)
    return {
        "name": name,
        "scan": {
            "ranges": [None if math.isnan(r) else r for r in ranges.tolist()],
            "angle_min": -math.pi if full else -fov / 2,
            "angle_increment": fov / beams if full else fov / (beams - 1),
            "range_min": 0.12,
            "range_max": 6.0,
        },
        "pose": [1.25, -0.5, 0.7],
        "velocity": [0.18, -0.4],
        "goal": [4.0, 2.5],
        "previous_action": [0.3, -0.2],
    }


def _cards() -> dict[str, PolicyCard]:
    seed = implicit_card(0.26, 1.82)
    compact = PolicyCard.from_json(
        json.dumps(
            {
                "format": "rlguard.policy/1",
                "name": "golden-compact",
                "version": "1",
                "observation": {
                    "scan": {"sectors": 40, "field_of_view_deg": 240.0, "range_cap": 3.5},
                    "goal": {"distance_cap": 5.0},
                    "velocity": {"linear_scale": 0.26, "angular_scale": 1.82},
                    "previous_action": True,
                    "history_length": 2,
                },
                "action": {"linear": [-0.1, 0.26], "angular": [-1.82, 1.82]},
            }
        )
    )
    return {"seed-360": seed, "compact-270": compact}


def _observe(card: PolicyCard, case: dict) -> np.ndarray:
    scan = case["scan"]
    ranges = np.array([np.nan if r is None else r for r in scan["ranges"]], dtype=np.float64)
    builder = ObservationBuilder(card.observation)
    scan_input = ScanInput(
        ranges, scan["angle_min"], scan["angle_increment"], scan["range_min"], scan["range_max"]
    )
    first = builder.build(scan_input, case["pose"], case["velocity"], case["goal"], (0.0, 0.0))
    if card.observation.history_length == 1:
        return first
    moved = [case["pose"][0] + 0.05, case["pose"][1], case["pose"][2] + 0.1]
    return builder.build(scan_input, moved, case["velocity"], case["goal"], case["previous_action"])


def _generate() -> dict:
    cases = {"seed-360": _case_inputs("seed-360", 360, 360.0, 1)}
    cases["compact-270"] = _case_inputs("compact-270", 1081, 270.0, 2)
    out = {}
    for key, card in _cards().items():
        case = cases[key]
        out[key] = {
            "card": json.loads(card.to_json()),
            **case,
            "observation": _observe(card, case).tolist(),
        }
    return out


def test_golden_observations_match():
    if os.environ.get("RLGUARD_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(_generate(), indent=1, allow_nan=True) + "\n")
    stored = json.loads(GOLDEN.read_text())
    assert set(stored) == {"seed-360", "compact-270"}
    for key, case in stored.items():
        card = PolicyCard.from_json(json.dumps(case["card"]))
        expected = np.array(case["observation"], dtype=np.float64)
        assert expected.shape == (card.observation.size,)
        np.testing.assert_allclose(_observe(card, case), expected, atol=1e-6, err_msg=key)


def test_golden_inputs_exercise_every_special_range():
    stored = json.loads(GOLDEN.read_text())
    for case in stored.values():
        ranges = case["scan"]["ranges"]
        assert None in ranges and 0.0 in ranges
        assert any(r == math.inf for r in ranges) and any(r == -math.inf for r in ranges)


@pytest.mark.parametrize("key", ["seed-360", "compact-270"])
def test_golden_cards_are_the_current_cards(key):
    stored = json.loads(GOLDEN.read_text())
    assert PolicyCard.from_json(json.dumps(stored[key]["card"])) == _cards()[key]
