"""``clustrix clean``: remove remote run directories and environments past retention.

Under ``remote_work_dir`` (see `clustrix.backends.remote.area`), ``runs/<key>/`` is
one submission and ``envs/<hash>`` (with ``.src``, ``.log``, ``.lock``) a replicated
environment. An entry's age is that of the newest file in it (so a run still writing
output is young). An old run is kept while a recorded task of its submission has not
ended; an old environment is kept while it is being built or a kept run's job
script uses it. Records of submissions that ended before the cutoff are pruned too.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .._config import ClusterConfig
from .._records import RecordStore
from ..backends.remote.area import RemoteArea
from ..transport.base import Transport
from ..transport.local import LocalTransport
from ..transport.ssh import SSHTransport
from ._output import Problem, console, format_age
from .config_sources import resolve

# Runs with the cluster's python_executable (stdlib only); argv[1] is the work dir.
# Prints {"now": t, "runs": {name: {...}}, "envs": {hash: {...}}} as JSON.
_SCAN = r"""
import json, os, re, sys, time
work = sys.argv[1]
def walk(path):
    newest, size = os.lstat(path).st_mtime, 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            newest, size = max(newest, st.st_mtime), size + st.st_size
    return newest, size
def entries(folder):
    try:
        return sorted(os.listdir(os.path.join(work, folder)))
    except OSError:
        return []
out = {"now": time.time(), "runs": {}, "envs": {}}
for name in entries("runs"):
    path = os.path.join(work, "runs", name)
    mtime, size = walk(path)
    refs = set()
    for script in (entries(os.path.join("runs", name)) if os.path.isdir(path) else []):
        if script.startswith("job") and script.endswith(".sh"):
            try:
                with open(os.path.join(path, script), errors="replace") as handle:
                    refs.update(re.findall(r"/envs/([^/\s'\"]+)/", handle.read()))
            except OSError:
                pass
    out["runs"][name] = {"mtime": mtime, "size": size, "envs": sorted(refs)}
for name in entries("envs"):
    mtime, size = walk(os.path.join(work, "envs", name))
    env = out["envs"].setdefault(name.split(".", 1)[0],
                                 {"mtime": 0, "size": 0, "names": [], "building": False})
    env["mtime"], env["size"] = max(env["mtime"], mtime), env["size"] + size
    env["names"].append(name)
    env["building"] = env["building"] or name.endswith(".lock")
print(json.dumps(out))
"""
_REMOVE_BATCH = 100  # paths per rm command


@dataclass(frozen=True)
class Entry:
    """One run directory or environment and what clean does with it."""

    kind: str  # "run" or "env"
    name: str
    paths: tuple[str, ...]
    age: float  # seconds since its newest file changed
    size: int
    action: str  # "remove" or why it stays ("in use", "young")


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def _unfinished(store: RecordStore) -> set[str]:
    """Run directory names (submission keys) with a recorded task still unfinished."""
    names: set[str] = set()
    for job in store.jobs():
        if not job.state.final:
            names.add(job.submission_key)
            if job.run_dir:
                names.add(posixpath.basename(job.run_dir.rstrip("/")))
    return names


def plan(scan: dict[str, Any], work_dir: str, cutoff: float, busy: set[str]) -> list[Entry]:
    """What to remove from the `scan` of `work_dir`: entries older than `cutoff`
    seconds, except runs in `busy` and environments a kept run uses or that are
    being built."""
    now = float(scan["now"])
    entries: list[Entry] = []
    kept_envs: set[str] = set()
    for name, run in scan["runs"].items():
        age = now - float(run["mtime"])
        action = "in use" if name in busy else "remove" if age > cutoff else "young"
        if action != "remove":
            kept_envs.update(run["envs"])
        path = posixpath.join(work_dir, "runs", name)
        entries.append(Entry("run", name, (path,), age, int(run["size"]), action))
    for digest, env in scan["envs"].items():
        age = now - float(env["mtime"])
        action = "remove" if age > cutoff else "young"
        if action == "remove" and (env["building"] or digest in kept_envs):
            action = "in use"
        paths = tuple(posixpath.join(work_dir, "envs", n) for n in env["names"])
        entries.append(Entry("env", digest, paths, age, int(env["size"]), action))
    return entries


def _safe(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name


async def _clean(config: ClusterConfig, busy: set[str], cutoff: float, dry_run: bool
                 ) -> tuple[str, list[Entry]]:  # fmt: skip
    transport: Transport = SSHTransport(config) if config.cluster_host else LocalTransport()
    try:
        area = RemoteArea(transport, config)
        work_dir = await area.expand(config.remote_work_dir)
        result = await area.run_python([config.python_executable, "-c", _SCAN, work_dir])
        entries = plan(json.loads(result.stdout), work_dir, cutoff, busy)
        doomed = [p for e in entries if e.action == "remove" and _safe(e.name) for p in e.paths]
        if not dry_run:
            for i in range(0, len(doomed), _REMOVE_BATCH):
                await transport.run(["rm", "-rf", "--", *doomed[i : i + _REMOVE_BATCH]])
        return work_dir, entries
    finally:
        await transport.aclose()


def clean(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only list what would be removed.")
    ] = False,
    older_than: Annotated[
        float | None,
        typer.Option(min=0, help="Age in days (default: records_retention_days)."),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Also list what stays, and why.")
    ] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Clean this profile's cluster.")
    ] = None,
) -> None:
    """Remove old run directories and environments from the cluster.

    Old means not changed for records_retention_days (or --older-than days). Runs
    of recorded jobs that have not ended stay, and so do the environments they use.
    Records of submissions that ended before then are pruned too.
    """
    config = resolve(profile).config
    if config.cluster_type in ("local", "kubernetes"):
        console.print(f"cluster_type is {config.cluster_type}: no remote_work_dir to clean")
        return
    days = config.records_retention_days if older_than is None else older_than
    store = RecordStore.for_config(config)
    busy = _unfinished(store)
    work_dir, entries = asyncio.run(_clean(config, busy, days * 86400, dry_run))
    doomed = [e for e in entries if e.action == "remove"]
    shown = entries if show_all else doomed
    verb = "would remove" if dry_run else "removed"
    if shown:
        table = Table(title=f"{escape(work_dir)} (older than {days:g} days)", title_justify="left")
        for column in ("kind", "name", "age", "size", "action"):
            table.add_column(column, no_wrap=column != "name")
        for entry in shown:
            action = verb if entry.action == "remove" else f"kept ({entry.action})"
            changed = datetime.now(UTC) - timedelta(seconds=entry.age)
            table.add_row(entry.kind, escape(entry.name),
                          format_age(changed), _size(entry.size), action)  # fmt: skip
        console.print(table)
    total = _size(sum(e.size for e in doomed))
    kept = sum(1 for e in entries if e.action == "in use")
    console.print(
        f"{verb} {sum(e.kind == 'run' for e in doomed)} run(s) and "
        f"{sum(e.kind == 'env' for e in doomed)} environment(s), {total}"
        + (f"; kept {kept} still in use" if kept else "")
    )
    if dry_run or not store.path.exists():
        return
    pruned = asyncio.run(_prune(store, days))
    console.print(f"pruned {pruned} finished submission(s) from the records ({store.path})")


async def _prune(store: RecordStore, days: float) -> int:
    try:
        return await store.prune(days)
    except OSError as error:
        raise Problem(f"could not prune the records in {store.path}: {error}") from error
    finally:
        await store.aclose()


def register(app: typer.Typer) -> None:
    """Add ``clustrix clean`` to `app`."""
    app.command("clean")(clean)
