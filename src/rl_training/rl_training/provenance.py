"""Where a training run or an exported policy came from: the workspace's git revision."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rlguard_common.profile_yaml import workspace_root


def git_revision(root: Path | None = None) -> str:
    """The workspace's git commit (with "-dirty" when the tree has changes), or "unknown"."""
    root = root or workspace_root()
    if root is None:
        return "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def portable_path(path: str | Path | None, root: Path | None = None) -> str | None:
    """`path` as a record may carry it: relative to the workspace when inside it, else the
    file name alone (a record that ships must not name a directory of this machine)."""
    if path is None:
        return None
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    root = root or workspace_root()
    if root is not None:
        try:
            return candidate.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return candidate.name
