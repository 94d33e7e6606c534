"""The peers on the same lab: submitit and dask-jobqueue, from PyPI, in their own venv.

`ensure_venv()` makes benchmarks/.peers-venv (gitignored) with the lab's Python and
pip-installs the versions PEERS.md measured; `run_peer()` runs `peer_script.py` there
as the lab user on the login side (this machine), as those tools are meant to run
(both need `sbatch` and a filesystem shared with the jobs). A peer that fails raises;
the caller records the error and goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from pathlib import Path

from ._lab import LAB, run

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
PINS = ["submitit==1.5.4", "dask-jobqueue==0.9.0", "distributed"]
PEERS = {"submitit": "submitit", "dask": "dask-jobqueue"}
TIMEOUT = 900.0


async def ensure_venv() -> Path:
    """The peers' interpreter, installing them on first use."""
    python = VENV / "bin" / "python"
    probe = "import submitit, dask_jobqueue, distributed"
    if python.exists():
        try:
            await run([str(python), "-c", probe])
            return python
        except RuntimeError:
            pass
    base = LAB.get("remote_python", "/usr/bin/python3")
    await run([base, "-m", "venv", "--clear", str(VENV)])
    await run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS])
    await run([str(python), "-c", probe])
    return python


def _as_lab_user(argv: list[str]) -> list[str]:
    home = LAB.get("home", f"/home/{LAB['user']}")
    env = [
        f"HOME={home}",
        f"USER={LAB['user']}",
        f"LOGNAME={LAB['user']}",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "LANG=C.UTF-8",
    ]
    if os.geteuid() == 0:
        return ["runuser", "-u", LAB["user"], "--", "env", "-i", *env, *argv]
    return ["sudo", "-n", "-u", LAB["user"], "--", "env", "-i", *env, *argv]


async def run_peer(python: Path, peer: str, tasks: int) -> tuple[float, dict[str, str]]:
    """Seconds the peer took for `tasks` trivial tasks, and the versions it ran."""
    name = f"cxbench-{peer}-{secrets.token_hex(3)}"
    argv = _as_lab_user([str(python), str(HERE / "peer_script.py"), peer, str(tasks), name])
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=LAB.get("home", "/"),
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)  # the session this call started
        await process.wait()
        await _cancel_leftovers(name)
        raise RuntimeError(f"{peer} did not finish {tasks} tasks in {TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        await _cancel_leftovers(name)
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{peer} exited {process.returncode}: {' | '.join(tail)}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    return float(report["elapsed"]), dict(report["versions"])


async def _cancel_leftovers(name: str) -> None:
    """Cancel the Slurm jobs the failed peer left (they carry this run's job name)."""
    await run(_as_lab_user(["scancel", f"--name={name}"]), check=False)
