"""Build a replicated environment on the login node: once per hash, under a lock.

``envs/<hash>/`` is the venv (ready once ``READY`` exists), ``envs/<hash>.src/`` holds
the requirements and shipped wheels, ``envs/<hash>.log`` pip's output, and
``envs/<hash>.lock/`` (made with the atomic ``mkdir``) says who is building: host, pid
and start time. A lock whose owner is gone (same host, pid dead) or that is older than
the build timeout is broken, so a builder that died cannot block everyone forever.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath

from ..._environment import EnvironmentSpec, mentioned_modules, spec_for_modules
from ..._exceptions import EnvironmentMismatchError
from ..._options import Replicate, Venv
from ..base import Submission
from .area import RemoteArea

log = logging.getLogger("clustrix")
BUILD_TIMEOUT = 1800  # seconds a lock may be held before it is considered stale

# $1 env dir, $2 python, $3 lock timeout, $4 offline (1/0). Prints one word: ready,
# busy or built; exit 1 (after printing the log's tail) when pip failed.
_BUILD = r"""
env=$1; lock=$1.lock; log=$1.log; src=$1.src
[ -f "$env/READY" ] && { echo ready; exit 0; }
if ! mkdir "$lock" 2>/dev/null; then
    read -r host pid started <"$lock/owner" 2>/dev/null || { echo busy; exit 0; }
    now=$(date +%s)
    if { [ "$host" = "$(hostname)" ] && ! kill -0 "$pid" 2>/dev/null; } ||
       [ $((now - started)) -gt "$3" ]; then
        echo "clustrix: breaking the stale lock of $host pid $pid" >>"$log"
        rm -rf "$lock"
        mkdir "$lock" 2>/dev/null || { echo busy; exit 0; }
    else
        echo busy; exit 0
    fi
fi
echo "$(hostname) $$ $(date +%s)" >"$lock/owner"
trap 'rm -rf "$lock"' EXIT
[ -f "$env/READY" ] && { echo ready; exit 0; }
rm -rf "$env"
echo "clustrix: building $env" >>"$log"
index=""
[ "$4" = 1 ] && index="--no-index"
if "$2" -m venv "$env" >>"$log" 2>&1 &&
   "$env/bin/python" -m pip install --disable-pip-version-check $index \
       --find-links "$src/wheels" -r "$src/requirements.txt" >>"$log" 2>&1; then
    touch "$env/READY"
    echo built
else
    echo "clustrix: build failed" >>"$log"
    tail -n 40 "$log" >&2
    exit 1
fi
"""


class EnvironmentBuilder:
    """Ensures replicated environments exist on one login node (one client's view)."""

    def __init__(self, area: RemoteArea) -> None:
        self._area = area
        self._locks: dict[str, asyncio.Lock] = {}
        self._specs: dict[tuple[frozenset[str], str, bool], EnvironmentSpec] = {}
        self.builds = 0  # how many times this client built an environment

    async def venv_for(self, submission: Submission) -> str | None:
        """The absolute path of the venv the submission's tasks run in, if any: the
        replicated one (built now if needed) or the user's own (``venv:PATH``)."""
        environment = submission.resources.environment
        if isinstance(environment, Replicate):
            return await self._replicate(submission)
        if isinstance(environment, Venv):
            return await self._area.expand(environment.path)
        return None

    async def _replicate(self, submission: Submission) -> str:
        """The replicated environment for this payload (built once per hash).

        The spec (which may build wheels of editable distributions with pip) is worked
        out once per set of modules for the life of this client, not per submission.
        """
        config, payload = submission.config, submission.payload
        pickles = [payload.function, *payload.arguments]
        modules = frozenset(await asyncio.to_thread(mentioned_modules, pickles))
        key = (modules, config.replicate_scope, config.replicate_offline)
        if key not in self._specs:
            self._specs[key] = await asyncio.to_thread(
                spec_for_modules,
                modules,
                scope=config.replicate_scope,
                offline=config.replicate_offline,
            )
        return await self.ensure(self._specs[key], offline=config.replicate_offline)

    async def ensure(self, spec: EnvironmentSpec, *, offline: bool = False) -> str:
        """The path of the venv for `spec`, built now if no one has built it yet."""
        lock = self._locks.setdefault(spec.digest, asyncio.Lock())
        async with lock:  # concurrent submissions of this client wait for one build
            area = self._area
            await area.prepare()
            env = posixpath.join(area.work_dir, "envs", spec.digest)
            await self._upload(spec, env + ".src")
            argv = [
                "sh",
                "-c",
                _BUILD,
                "sh",
                env,
                area.config.python_executable,
                str(BUILD_TIMEOUT),
                "1" if offline else "0",
            ]
            for _ in range(BUILD_TIMEOUT * 2):
                result = await area.transport.run(argv, check=False)
                word = result.stdout.strip().split()[-1:] or [""]
                if result.exit_status != 0:
                    raise EnvironmentMismatchError(
                        f"building the replicated environment {spec.digest} failed (log: "
                        f"{env}.log on the cluster); pip said:\n{result.stderr.strip()[-3000:]}"
                    )
                if word[0] == "built":
                    self.builds += 1
                if word[0] in ("built", "ready"):
                    return env
                await asyncio.sleep(0.5)  # another process is building it: wait
            raise EnvironmentMismatchError(f"environment {spec.digest} is still being built")

    async def _upload(self, spec: EnvironmentSpec, src: str) -> None:
        transport = self._area.transport
        await transport.mkdir(posixpath.join(src, "wheels"))
        requirements = spec.requirements_txt(posixpath.join(src, "wheels"))
        await transport.write_file(posixpath.join(src, "requirements.txt"), requirements)
        for name, data in spec.wheels:
            await transport.write_file(posixpath.join(src, "wheels", name), data)
