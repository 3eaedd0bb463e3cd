"""Where relative model paths point (no ROS)."""

from __future__ import annotations

from pathlib import Path

from rl_policy_node.model_paths import models_directory, resolve_model_path


def test_models_directory_precedence(tmp_path):
    share = tmp_path / "share" / "models"

    def lookup():
        return share

    def missing():
        return None

    env = {"RLGUARD_MODELS_DIR": "/env/models", "RLGUARD_WORKSPACE": "/ws"}
    assert models_directory("/param", env, lookup) == Path("/param")
    assert models_directory("", env, lookup) == Path("/env/models")
    assert models_directory("", {"RLGUARD_WORKSPACE": "/ws"}, lookup) == share
    assert models_directory("", {"RLGUARD_WORKSPACE": "/ws"}, missing) == Path("/ws/models")
    assert models_directory("", {}, missing) == Path("models")


def test_resolve_model_path_keeps_absolute_paths():
    assert resolve_model_path("a/b.pt", Path("/m")) == Path("/m/a/b.pt")
    assert resolve_model_path("/x/b.pt", Path("/m")) == Path("/x/b.pt")
