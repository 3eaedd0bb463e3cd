"""Helpers for the safety_controller tests: velocity limits the unit and property tests share."""

from safety_controller.limits import VelocityLimits

# TurtleBot3-Waffle-class limits, deliberately different from the shipped YAML so the
# tests do not silently follow a config change.
TEST_LIMITS = VelocityLimits(
    max_velocity=(0.26, 1.82),
    min_velocity=(-0.26, -1.82),
    max_accel=(2.5, 3.2),
    max_decel=(-2.5, -3.2),
    emergency_decel=(-3.0, -4.0),
)
