"""A remote traceback through a function from ``__main__`` names the user's file and line.

cloudpickle names the file of code it pickles by value ``<dynamic-code>``; clustrix
keeps the real name. Checked with a real script run as ``__main__`` in a subprocess,
on the local backend and on the lab's sshd.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ssh_config

SCRIPT = """\
import asyncio, json, sys
from clustrix import Client, ClusterConfig


def helper(x):
    raise ValueError(f"bad {x}")


def task(x):
    return helper(x) + 1


async def main():
    async with Client(ClusterConfig(**json.loads(sys.argv[1]))) as client:
        try:
            await client.submit(task, 3)
        except ValueError as error:
            print("\\n".join(error.__notes__))
            print("CAUSE", error.__cause__)

asyncio.run(main())
"""
RAISING_LINE = 6  # `raise ValueError(...)` in SCRIPT
CALLING_LINE = 10  # `return helper(x) + 1`


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_remote_traceback_names_the_script_and_the_raising_line(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert SCRIPT.splitlines()[RAISING_LINE - 1].strip().startswith("raise ValueError")
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    fields: dict[str, Any] = {"cluster_type": "local"}
    if kind == "ssh":
        lab = request.getfixturevalue("lab")
        remote_dir = request.getfixturevalue("remote_dir")
        fields = json.loads(ssh_config(lab, remote_dir).model_dump_json())
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(fields)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "<dynamic-code>" not in out
    assert f'File "{script}", line {RAISING_LINE}, in helper' in out
    assert f'File "{script}", line {CALLING_LINE}, in task' in out
    assert "ValueError: bad 3" in out
