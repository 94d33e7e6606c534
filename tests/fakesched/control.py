"""The test side of the fake schedulers: PATH, knobs, recorded calls and jobs, teardown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class FakeScheduler:
    """One fake scheduler installation: its bin dir and its state directory."""

    def __init__(self, kind: str, state: Path) -> None:
        self.kind = kind
        self.state = state
        self.bin_dir = HERE / "bin" / kind
        (state / "jobs").mkdir(parents=True, exist_ok=True)
        # The tools' `python3`: this interpreter, not a slower shim (pyenv) found first.
        self.python_dir = state / "python-bin"
        self.python_dir.mkdir(exist_ok=True)
        link = self.python_dir / "python3"
        if not link.exists():
            link.symlink_to(sys.executable)

    def environ(self) -> dict[str, str]:
        """The variables that put this fake first on PATH."""
        return {
            "PATH": os.pathsep.join(
                [str(self.bin_dir), str(self.python_dir), os.environ.get("PATH", "")]
            ),
            "FAKESCHED_DIR": str(self.state),
        }

    def set(self, **knobs: Any) -> None:
        """Set knobs (see tests/fakesched/README.md); None removes one."""
        path = self.state / "knobs.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(knobs)
        path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))

    def knob(self, name: str) -> Any:
        path = self.state / "knobs.json"
        return json.loads(path.read_text()).get(name) if path.exists() else None

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """Every command run so far (argv with the tool name first)."""
        path = self.state / "calls.log"
        if not path.exists():
            return []
        calls = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [c for c in calls if tool is None or c[0] == tool]

    def jobs(self) -> list[dict[str, Any]]:
        """Every recorded submission (see fakesched/core.py for the fields)."""
        jobs = []
        for path in (self.state / "jobs").glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                jobs.append(json.loads(path.read_text()))
        return sorted(jobs, key=lambda j: int("".join(c for c in j["master"] if c.isdigit())))

    def job_named(self, name: str) -> list[dict[str, Any]]:
        return [job for job in self.jobs() if job["name"] == name]

    def shutdown(self) -> None:
        """Kill what this fake started (executors, task process groups), by pid."""
        for job in self.jobs():
            for entry in job["tasks"].values():
                if entry.get("pid") and entry["state"] == "RUNNING":
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(entry["pid"], signal.SIGKILL)
            executor = job.get("executor")
            if executor:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(executor, signal.SIGKILL)
