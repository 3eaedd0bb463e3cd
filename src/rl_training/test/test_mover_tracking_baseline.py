"""The DWA baseline with the hybrid fallback's mover tracking, in simulated mover scenes."""

import pytest

from rl_training.controllers import DwaController
from rl_training.episodes import run_episode
from rl_training.evaluate import evaluation_tasks
from rl_training.nav_env import EnvConfig, NavEnv

SEED = 710_000  # a validation range: neither training's seeds nor the held-out ones
SCENES = 4


@pytest.fixture(scope="module")
def env():
    return NavEnv(EnvConfig(randomize=False))


@pytest.mark.parametrize("family", ["overtaking", "headon"])
def test_the_dwa_keeps_out_of_movers_ways_only_when_it_tracks_them(env, family):
    tasks = evaluation_tasks(family, SCENES, env.task_settings, SEED, max_time=25.0)
    results = {}
    for tracking in (True, False):
        controller = DwaController(overrides={"track_moving_obstacles": tracking})
        results[tracking] = [
            run_episode(env, controller, task, SEED + index, family, family)
            for index, task in enumerate(tasks)
        ]
    outcomes = {key: [r.outcome for r in value] for key, value in results.items()}
    assert "collision" not in outcomes[True], outcomes
    # Out of the way is not standing still: each run still drives on toward its goal.
    assert min(r.path_length for r in results[True]) >= 2.0
    assert outcomes[False].count("collision") >= 2, outcomes  # the scenes do test it
