"""`environment="replicate"`: which local distributions a payload needs, pinned.

By default only what the payload really uses: every module name the pickles mention
(cloudpickle refers to installed code by module name) mapped to its distribution, plus
that distribution's own requirements, recursively, each pinned to the version
installed here. `replicate_scope="all"` takes every installed distribution instead.
Distributions that no index has (editable installs, local directories, such as
clustrix from a checkout) are built into wheels here and shipped. The hash of the
pins, the wheels and the Python version names the remote environment, so it is built
once and reused until a requirement changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import pickletools
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ._exceptions import EnvironmentMismatchError

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_BUILD_TOOLS = {"pip", "setuptools", "wheel"}
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class EnvironmentSpec:
    """Pinned requirements and locally built wheels; `digest` names the environment."""

    python: str
    requirements: tuple[str, ...]
    wheels: tuple[tuple[str, bytes], ...] = field(default=())  # (file name, content)
    #: requirement lines installed from a shipped wheel, never from an index (an index
    #: may hold another project of the same name and version)
    local: tuple[tuple[str, str], ...] = field(default=())  # (requirement, wheel name)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.python.encode())
        for line in self.requirements:
            h.update(b"\0" + line.encode())
        for name, data in self.wheels:
            h.update(b"\0" + name.encode() + hashlib.sha256(data).digest())
        return h.hexdigest()[:16]

    def requirements_txt(self, wheel_dir: str) -> bytes:
        """requirements.txt for the cluster; shipped wheels by their path there."""
        shipped = dict(self.local)
        lines = [
            f"{wheel_dir}/{shipped[line]}" if line in shipped else line
            for line in self.requirements
        ]
        return "".join(f"{line}\n" for line in lines).encode()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def mentioned_modules(pickles: Iterable[bytes]) -> set[str]:
    """Top-level module names a pickle refers to (its GLOBALs and strings, such as the
    names in a function's code: ``import numpy`` inside its body counts), whether or not
    they are imported here yet."""
    loaded = {name.split(".")[0] for name in sys.modules} | set(metadata.packages_distributions())
    found: set[str] = set()
    for data in pickles:
        for _, argument, _ in pickletools.genops(data):
            # dotted names only ("rich.console", "numpy"): not paths or prose, whose
            # pieces ("py" of "script.py") would name unrelated distributions
            if isinstance(argument, str) and _DOTTED.match(argument):
                top = argument.split(".")[0]
                if top in loaded:
                    found.add(top)
    return found


def _installed() -> dict[str, metadata.Distribution]:
    return {
        _canonical(d.metadata["Name"]): d for d in metadata.distributions() if d.metadata["Name"]
    }


def _requirements_of(dist: metadata.Distribution) -> list[str]:
    names = []
    for requirement in dist.requires or []:
        if "extra ==" in requirement.replace('"', "").replace("'", ""):
            continue  # optional extras are not needed to import the package
        match = _NAME.match(requirement)
        if match:
            names.append(_canonical(match.group(1)))
    return names


def _local_owner(module: str, installed: dict[str, metadata.Distribution]) -> list[str]:
    """The local (editable) distribution a module comes from: editable installs are
    often missing from `packages_distributions()`, so look where the module lives."""
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return []
    path = Path(file).resolve()
    for name, dist in installed.items():
        source = _local_source(dist)
        if source is None or not path.is_relative_to(source.resolve()):
            continue
        # the module must be the project's own package (or under src/), not a script
        # that merely lives in the project's directory
        parts = path.relative_to(source.resolve()).parts
        parts = parts[1:] if parts[:1] == ("src",) else parts
        if parts and parts[0] in (module, f"{module}.py"):
            return [name]
    return []


def _local_source(dist: metadata.Distribution) -> Path | None:
    """The directory an editable or local install came from (no index has it)."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    url = str(info.get("url", ""))
    if "dir_info" in info or url.startswith("file:"):
        return Path(unquote(urlparse(url).path))
    return None


def environment_spec(
    pickles: Iterable[bytes], *, scope: str = "payload", offline: bool = False
) -> EnvironmentSpec:
    """The pinned environment a payload needs (see the module docstring).

    Blocking (it may run pip to build or download wheels): call it in a thread.
    """
    return spec_for_modules(frozenset(mentioned_modules(pickles)), scope=scope, offline=offline)


def spec_for_modules(
    modules: frozenset[str], *, scope: str = "payload", offline: bool = False
) -> EnvironmentSpec:
    """The pinned environment for these top-level modules. Blocking: call in a thread."""
    installed = _installed()
    if scope == "all":
        wanted = set(installed) - _BUILD_TOOLS
    else:
        owners = metadata.packages_distributions()
        wanted = set()
        for module in modules:
            found = owners.get(module) or _local_owner(module, installed)
            wanted.update(_canonical(d) for d in found or [])
        queue = list(wanted)
        while queue:
            dist = installed.get(queue.pop())
            for name in _requirements_of(dist) if dist else []:
                if name in installed and name not in wanted:
                    wanted.add(name)
                    queue.append(name)
    requirements, wheels, local = [], [], []
    for name in sorted(wanted):
        dist = installed.get(name)
        if dist is None:
            continue
        line = f"{dist.metadata['Name']}=={dist.version}"
        requirements.append(line)
        source = _local_source(dist)
        if source is not None:
            wheel = _build_wheel(dist.metadata["Name"], source)
            wheels.append(wheel)
            local.append((line, wheel[0]))
    if offline:  # the cluster has no index: ship every wheel from here
        shipped = {line for line, _ in local}
        wheels += _download_wheels([r for r in requirements if r not in shipped])
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return EnvironmentSpec(python, tuple(requirements), tuple(wheels), tuple(local))


def _download_wheels(requirements: list[str]) -> list[tuple[str, bytes]]:
    """Wheels of pinned requirements from this machine's index (for offline clusters)."""
    if not requirements:
        return []
    with tempfile.TemporaryDirectory() as out:
        fetched = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                out,
                *requirements,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fetched.returncode != 0:
            raise EnvironmentMismatchError(
                "replicate_offline: could not download the wheels to ship "
                f"({', '.join(requirements)}): {fetched.stderr.strip()[-1500:]}"
            )
        return sorted((p.name, p.read_bytes()) for p in Path(out).glob("*.whl"))


def _build_wheel(name: str, source: Path) -> tuple[str, bytes]:
    """Build a local-only distribution into a wheel, or say clearly why not."""
    with tempfile.TemporaryDirectory() as out:
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(out).glob("*.whl"))
        if built.returncode != 0 or not wheels:
            raise EnvironmentMismatchError(
                f"{name} is installed from {source}, which no package index has, and it "
                f"could not be built into a wheel to ship: {built.stderr.strip()[-1500:]}"
            )
        return wheels[0].name, wheels[0].read_bytes()
