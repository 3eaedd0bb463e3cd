"""Training, export and evaluation of rlguard navigation policies (no rclpy).

The package uses the cores of the colcon packages (`rl_policy_node`, `safety_controller`,
`hybrid_fallback`, `sim_bringup`) and the ground floor (`rlguard_common`), never their
nodes; they are imported from the sourced colcon install (or a PYTHONPATH that holds
them, as the tests set up). The rlguard packages it imports are declared in its
pyproject.toml (``[tool.rlguard] depends``).
"""
