import math

import numpy as np
import pytest

from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.policy_card import ActionSpec

ASYMMETRIC = ActionSpec(linear=(-0.1, 0.3), angular=(-2.0, 2.0))


def test_ends_and_middle_map_to_the_card_velocities():
    assert action_to_velocity([-1.0, -1.0], ASYMMETRIC) == pytest.approx((-0.1, -2.0))
    assert action_to_velocity([1.0, 1.0], ASYMMETRIC) == pytest.approx((0.3, 2.0))
    assert action_to_velocity([0.0, 0.0], ASYMMETRIC) == pytest.approx((0.1, 0.0))


def test_outputs_beyond_one_are_clipped():
    assert action_to_velocity([5.0, -7.0], ASYMMETRIC) == pytest.approx((0.3, -2.0))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_output_is_refused(bad):
    with pytest.raises(ValueError, match="not finite"):
        action_to_velocity([bad, 0.0], ASYMMETRIC)


def test_round_trip():
    for action in np.linspace(-1, 1, 9):
        v, w = action_to_velocity([action, -action], ASYMMETRIC)
        np.testing.assert_allclose(
            velocity_to_action(v, w, ASYMMETRIC), [action, -action], atol=1e-12
        )


def test_wrong_size_is_refused():
    with pytest.raises(ValueError, match="2 values"):
        action_to_velocity([0.1, 0.2, 0.3], ASYMMETRIC)
