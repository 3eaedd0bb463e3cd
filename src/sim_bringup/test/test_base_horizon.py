"""The embedded base's command horizon is covered by the safety controller's reaction budget."""

from rlguard_common.parameters import load_node_parameters
from rlguard_common.profile_yaml import workspace_root


def parameters(node: str) -> dict:
    root = workspace_root()
    assert root is not None, "cannot find the rlguard workspace (set RLGUARD_WORKSPACE)"
    return load_node_parameters(root / "config" / f"{node}.yaml", node)


def test_sim_base_timeout_does_not_exceed_the_safety_reaction_time():
    # The guard assumes a command runs at most reaction_time before braking starts; a
    # base that runs a command longer than that (its velocity_timeout) breaks the promise.
    reaction = float(parameters("safety_controller")["reaction_time"])
    sim = parameters("mujoco_sim")
    assert float(sim["velocity_timeout"]) <= reaction
    # Lockstep's lead must leave the base timeout room to act on a stalled stack, and cover
    # the longest gap between the safety controller's outputs (else the sim waits it out).
    from safety_controller.node_config import WATCHDOG_GAP

    gap = WATCHDOG_GAP / float(parameters("safety_controller")["publish_rate"])
    assert gap <= float(sim["max_command_lead"]) < float(sim["velocity_timeout"])


def test_sim_node_defaults_match_the_shipped_config():
    # A sim node started without the params file has the same horizon and lockstep.
    from sim_bringup.node_config import PARAMETERS

    sim = parameters("mujoco_sim")
    for name in ("velocity_timeout", "max_command_lead", "command_patience"):
        assert PARAMETERS[name].default == sim[name], name
