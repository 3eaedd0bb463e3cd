"""DWA fallback controller and the policy/fallback/teleop/stop arbiter."""
