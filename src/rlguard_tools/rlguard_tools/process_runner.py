"""Start, watch and stop rlguard nodes as separate processes (no rclpy, no `launch`).

Used by the test fixtures and by the bringup runner on machines without `ros2 launch`:
each node runs as ``python -m <module> --ros-args ...`` so it talks over real DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ParameterValue = bool | int | float | str | Sequence[float] | Sequence[str]


def format_parameter(value: ParameterValue) -> str:
    """Render a parameter value in the syntax ``--ros-args -p name:=value`` accepts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, (int, float)):
        return repr(value)
    items = ", ".join(format_parameter(v) for v in value)
    return f"[{items}]"


@dataclass
class NodeSpec:
    """How to start one node: its Python module, name, parameters and remappings."""

    module: str
    name: str | None = None
    namespace: str | None = None
    params_files: Sequence[str | Path] = ()
    parameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    remappings: Mapping[str, str] = field(default_factory=dict)
    extra_args: Sequence[str] = ()

    def command(self) -> list[str]:
        """The full command line that starts the node."""
        cmd = [sys.executable, "-u", "-m", self.module, *self.extra_args, "--ros-args"]
        if self.name:
            cmd += ["-r", f"__node:={self.name}"]
        if self.namespace:
            cmd += ["-r", f"__ns:={self.namespace}"]
        for params_file in self.params_files:
            cmd += ["--params-file", str(params_file)]
        for key, value in self.parameters.items():
            cmd += ["-p", f"{key}:={format_parameter(value)}"]
        for source, target in self.remappings.items():
            cmd += ["-r", f"{source}:={target}"]
        return cmd


class NodeProcess:
    """A running node process whose output goes to a log file."""

    def __init__(
        self,
        spec: NodeSpec,
        env: Mapping[str, str] | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        self.spec = spec
        self.env = dict(os.environ if env is None else env)
        label = spec.name or spec.module.rsplit(".", 1)[-1]
        directory = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="rlguard-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / f"{label}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        """Start the process (its stdout and stderr go to `log_path`)."""
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            self.spec.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.process is not None, "process not started"
        return self.process.pid

    def is_running(self) -> bool:
        """True while the process has not exited."""
        return self.process is not None and self.process.poll() is None

    def returncode(self) -> int | None:
        """The exit code, or None while running."""
        return None if self.process is None else self.process.poll()

    def output(self) -> str:
        """Everything the process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the process, as a crash would end it."""
        if self.is_running():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop cleanly with SIGINT; escalate to SIGTERM then SIGKILL after `timeout`."""
        if self.process is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        return self.process.poll()

    def wait_for_output(self, text: str, timeout: float = 10.0) -> bool:
        """Wait until `text` appears in the log; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if not self.is_running():
                return text in self.output()
            time.sleep(0.05)
        return False
