"""The embedded base's command horizon is covered by the safety controller's reaction budget."""

import yaml
from rlguard_tools.stack_runner import config_dir


def parameters(node: str) -> dict:
    path = config_dir() / f"{node}.yaml"
    return yaml.safe_load(path.read_text())[node]["ros__parameters"]


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
    from sim_bringup.sim_node import PARAMETERS

    sim = parameters("mujoco_sim")
    for name in ("velocity_timeout", "max_command_lead", "command_patience"):
        assert PARAMETERS[name][0] == sim[name], name
