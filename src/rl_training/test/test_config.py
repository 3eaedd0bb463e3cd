"""Run files as a base plus overrides (`base:`), merged by rl_training.config."""

import hashlib
import json

import pytest
import yaml

from rl_training.config import (
    config_from_mapping,
    load_config,
    load_config_mapping,
    merge_override,
)

# sha256 of json.dumps(mapping, sort_keys=True) of each run's full, self-contained file as
# it was before the runs became overrides of base.yaml (commit f3dcc03; reproduce with
# `git show f3dcc03:config/training/nav_ppo.yaml` and the same two calls). Loading a run
# file now must give exactly that mapping: the shipped models' cards record it.
FULL_RUN_DIGESTS = {
    "nav_ppo.yaml": "4dacc59e9f31ad183ffd2fccd3d5e75eb37f5f7a2bff6f34aec8fe641846fd1b",
    "weak_ppo.yaml": "6c77bfacc6fe85b5ea8e95852c281ca1901ee3100ed503eedbcd9e998152c9ef",
    "experiments/nav_yield.yaml": (
        "fe8ed6413dcaea7efd58cd852a97bffa692a7ebece3285a2bfa5bde8d991099b"
    ),
}
# The top-level key order of the full files (the run's config.yaml copy keeps it).
FULL_RUN_KEYS = [
    "name",
    "seed",
    "algorithm",
    "total_timesteps",
    "n_envs",
    "vec_env",
    "normalize_observations",
    "normalize_rewards",
    "checkpoint_every",
    "output_dir",
    "torch_threads",
    "curriculum",
    "env",
    "pretrain",
    "policy",
    "ppo",
    "sac",
]


def digest(mapping):
    return hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("run", sorted(FULL_RUN_DIGESTS))
def test_run_files_give_exactly_the_full_configs_they_replaced(workspace_root, run):
    path = workspace_root / "config" / "training" / run
    merged = load_config_mapping(path)
    assert digest(merged) == FULL_RUN_DIGESTS[run], json.dumps(merged, indent=1)
    assert "base" not in merged
    config = load_config(path)
    assert config.raw == merged and config.source == str(path)
    # The recorded mapping (run copy, policy card) reads back as the same config.
    assert config_from_mapping(config.raw, str(path)) == config


def test_the_runs_differ_from_the_base_where_they_say(workspace_root):
    folder = workspace_root / "config" / "training"
    nav, weak = load_config(folder / "nav_ppo.yaml"), load_config(folder / "weak_ppo.yaml")
    yielding = load_config(folder / "experiments" / "nav_yield.yaml")
    assert list(nav.raw) == FULL_RUN_KEYS
    assert list(weak.raw) == [k for k in FULL_RUN_KEYS if k != "pretrain"]
    assert nav.pretrain.enabled and not weak.pretrain.enabled
    assert "target_kl" in nav.ppo and "target_kl" not in weak.ppo
    assert weak.env.reward.proximity == 0.05 and nav.env.reward.proximity == 0.3
    assert weak.env.reward.progress == nav.env.reward.progress  # merged, not replaced
    assert yielding.pretrain.yield_to_moving and yielding.pretrain.safety_filter
    assert yielding.env.history_length == 4 and not yielding.env.previous_action
    assert yielding.env.scan_sectors == nav.env.scan_sectors


def test_the_base_is_not_a_run(workspace_root):
    with pytest.raises(ValueError, match="name: missing"):
        load_config(workspace_root / "config" / "training" / "base.yaml")


def test_merge_rules():
    base = {"a": 1, "env": {"x": 1, "reward": {"p": 1.0, "q": 2.0}}, "lst": [1, 2], "gone": {}}
    override = {"env": {"reward": {"q": 3.0}, "y": 2}, "lst": [3], "gone": None, "new": "n"}
    merged = merge_override(base, override)
    assert merged == {
        "a": 1,
        "env": {"x": 1, "reward": {"p": 1.0, "q": 3.0}, "y": 2},
        "lst": [3],
        "new": "n",
    }
    assert list(merged) == ["a", "env", "lst", "new"]  # base order, new keys appended
    assert base["env"]["reward"]["q"] == 2.0 and "gone" in base  # inputs unchanged
    merged["env"]["reward"]["p"] = 9.0
    assert base["env"]["reward"]["p"] == 1.0  # no shared nested mappings
    # A value replaces a mapping and a mapping replaces a value as a whole.
    assert merge_override({"k": {"x": 1}}, {"k": 5}) == {"k": 5}
    assert merge_override({"k": 5}, {"k": {"x": 1}}) == {"k": {"x": 1}}
    with pytest.raises(ValueError, match=r"run.yaml: env\.reward\.typo: null removes a base key"):
        merge_override(base, {"env": {"reward": {"typo": None}}}, "run.yaml")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_run_file_merges_over_its_base_chain(tmp_path):
    write(tmp_path / "base.yaml", "seed: 1\nenv:\n  scan_sectors: 18\n  randomize: false\n")
    write(tmp_path / "mid.yaml", "base: base.yaml\ntotal_timesteps: 64\n")
    run = write(
        tmp_path / "sub" / "run.yaml", "base: ../mid.yaml\nname: run\nenv:\n  randomize: true\n"
    )
    config = load_config(run)
    assert (config.name, config.seed, config.total_timesteps) == ("run", 1, 64)
    assert config.env.scan_sectors == 18 and config.env.randomize
    assert list(config.raw)[0] == "name" and "base" not in config.raw


def test_unknown_keys_are_still_refused_after_the_merge(tmp_path):
    write(tmp_path / "base.yaml", "seed: 1\n")
    bogus = write(tmp_path / "a.yaml", "base: base.yaml\nname: a\nepochs: 3\n")
    with pytest.raises(ValueError, match=r"a.yaml: unknown field\(s\) epochs"):
        load_config(bogus)
    typo = write(tmp_path / "b.yaml", "base: base.yaml\nname: b\nenv:\n  scan_sector: 3\n")
    with pytest.raises(ValueError, match="env: unknown env setting"):
        load_config(typo)
    # An effective mapping (a card's, a run copy's) has no base: the key is unknown there.
    with pytest.raises(ValueError, match=r"unknown field\(s\) base"):
        config_from_mapping({"name": "c", "base": "base.yaml"})


def test_bad_bases_are_named(tmp_path):
    missing = write(tmp_path / "a.yaml", "base: nowhere.yaml\nname: a\n")
    with pytest.raises(ValueError, match="a.yaml: base: nowhere.yaml not found"):
        load_config(missing)
    not_a_name = write(tmp_path / "b.yaml", "base: [x]\nname: b\n")
    with pytest.raises(ValueError, match="b.yaml: base: must name a YAML file"):
        load_config(not_a_name)
    write(tmp_path / "c.yaml", "base: d.yaml\nname: c\n")
    write(tmp_path / "d.yaml", "base: c.yaml\nseed: 1\n")
    with pytest.raises(ValueError, match="the chain of bases loops"):
        load_config(tmp_path / "c.yaml")
    listed = write(tmp_path / "e.yaml", "- 1\n")
    with pytest.raises(ValueError, match="e.yaml: a training config must be a mapping"):
        load_config(listed)


def test_a_full_file_without_base_loads_as_before(tmp_path):
    data = {"name": "full", "seed": 4, "env": {"randomize": False}}
    path = write(tmp_path / "full.yaml", yaml.safe_dump(data))
    assert load_config(path) == config_from_mapping(data, str(path))
