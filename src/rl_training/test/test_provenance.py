"""Records that ship (the card's training section) name no directory of the machine."""

from __future__ import annotations

from pathlib import Path

from rl_training.provenance import portable_path


def test_a_path_inside_the_workspace_is_kept_relative_to_it(tmp_path):
    root = tmp_path / "ws"
    (root / "config").mkdir(parents=True)
    assert portable_path(root / "config" / "a.yaml", root) == "config/a.yaml"


def test_a_path_outside_the_workspace_keeps_only_its_name(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    elsewhere = tmp_path / "scratch" / "run.yaml"
    assert portable_path(elsewhere, root) == "run.yaml"
    assert portable_path(str(elsewhere), root) == "run.yaml"


def test_relative_paths_and_none_pass_unchanged():
    assert portable_path("training_runs/x/config.yaml") == "training_runs/x/config.yaml"
    assert portable_path(Path("a/b.yaml")) == "a/b.yaml"
    assert portable_path(None) is None
