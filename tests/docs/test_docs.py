"""The documentation: the site builds strictly, and its code really runs.

Code blocks are run when a marker comment comes right before their fence:

* ``<!-- docs-test: run -->`` before a ```` ```python ```` block: run it (local backend).
* ``<!-- docs-test: run lab=slurm -->``: run it against the test lab's ``slurm`` flavour
  (``ssh``, ``slurm``, ``sge``, ``pbs``); marked ``lab``.
* ``<!-- docs-test: config [lab=...] -->`` before a ```` ```yaml ```` block: load it as a
  config file, which must give a valid `ClusterConfig`.

The marked blocks of one page and flavour are joined, in order, into one script that
runs in a fresh interpreter. ``LAB_HOST``, ``LAB_PORT``, ``LAB_USER``, ``LAB_KEY``,
``LAB_KNOWN_HOSTS``, ``LAB_PARTITION``, ``LAB_ACCOUNT``, ``LAB_SGE_QUEUE``,
``LAB_SGE_PE`` and ``LAB_PBS_QUEUE`` in a block are replaced by the values in the lab's
description (/var/lib/clustrix-lab/lab.json), never hard-coded here.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import clustrix
from clustrix import ClusterConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = re.compile(
    r"^<!-- docs-test: (?P<kind>run|config)(?: lab=(?P<lab>\w+))? -->\n"
    r"```(?P<lang>\w+)[^\n]*\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
#: Pages that must keep at least one block that runs (getting started, the backends).
MUST_RUN = {
    "index.md",
    "backends/local.md",
    "backends/ssh.md",
    "backends/slurm.md",
    "backends/pbs.md",
    "backends/sge.md",
}
LAB_JSON = Path("/var/lib/clustrix-lab/lab.json")
#: Seconds a page's script may take (they run at the same time; a busy queue is slow).
BLOCK_TIMEOUT = 300
#: Data, not API: no docstring of its own to have.
DATA_NAMES = {"__version__"}
#: Overrides of framework hooks (pydantic-settings), documented by the framework.
FRAMEWORK_HOOKS = {"settings_customise_sources"}


@dataclass(frozen=True)
class Snippet:
    page: str
    kind: str  # "run" or "config"
    lab: str | None  # lab flavour, or None for the local backend
    code: str


def snippets() -> list[Snippet]:
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        for match in MARKER.finditer(path.read_text(encoding="utf-8")):
            kind, lang = match["kind"], match["lang"]
            expected = "python" if kind == "run" else "yaml"
            assert lang == expected, f"{page}: a docs-test {kind} marker precedes a {lang} block"
            found.append(Snippet(page, kind, match["lab"], match["code"]))
    return found


def grouped(kind: str) -> list[Any]:
    """pytest params: the blocks of one page and flavour, in page order."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for snippet in snippets():
        if snippet.kind == kind:
            groups.setdefault((snippet.page, snippet.lab), []).append(snippet.code)
    return [
        pytest.param(
            page,
            lab,
            codes,
            id=f"{page}[{lab or 'local'}]",
            marks=[pytest.mark.lab] if lab else [],
        )
        for (page, lab), codes in groups.items()
    ]


def lab_values(lab: dict[str, Any], flavour: str) -> dict[str, str]:
    return {
        "LAB_HOST": lab["host"],
        "LAB_PORT": str(lab["ports"][flavour]),
        "LAB_USER": lab["user"],
        "LAB_KEY": lab["key_file"],
        "LAB_KNOWN_HOSTS": lab["known_hosts"],
        "LAB_PARTITION": lab["slurm"]["partition"],
        "LAB_ACCOUNT": lab["slurm"]["account"],
        "LAB_SGE_QUEUE": lab["sge"]["queue"],
        "LAB_SGE_PE": lab["sge"]["pe"],
        "LAB_PBS_QUEUE": lab["pbs"]["queue"],
    }


def substitute(code: str, values: dict[str, str], page: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(0)
        assert name in values, f"{page}: unknown placeholder {name} (known: {sorted(values)})"
        return values[name]

    return re.sub(r"\bLAB_[A-Z_]+\b", replace, code)


def mkdocs_available() -> bool:
    if importlib.util.find_spec("mkdocs") is not None:
        return True
    if os.environ.get("CI") == "true":
        pytest.fail("mkdocs is not installed (pip install -e '.[dev]'); CI must build the docs")
    pytest.skip("mkdocs is not installed: pip install -e '.[docs]'")


# -- the site ------------------------------------------------------------------------------
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs_available()
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    reference = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    for name in ClusterConfig.model_fields:
        assert f"CLUSTRIX_{name.upper()}" in reference, f"{name} missing from the reference"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in sorted(set(clustrix.__all__) - DATA_NAMES):
        assert f'id="clustrix.{name}"' in api, f"clustrix.{name} missing from the API reference"


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hook", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_config_field_without_a_description_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mkdocs_available()
    from mkdocs.exceptions import PluginError

    hook = load_hook()
    assert "`CLUSTRIX_SGE_PE`" in hook.config_reference()
    monkeypatch.setattr(ClusterConfig.model_fields["sge_pe"], "description", None)
    with pytest.raises(PluginError, match="sge_pe"):
        hook.config_reference()


def test_an_undocumented_exception_fails_the_build() -> None:
    mkdocs_available()
    from mkdocs.exceptions import PluginError

    hook = load_hook()
    errors_page = (DOCS / "errors.md").read_text(encoding="utf-8")
    hook.check_errors_page(errors_page)
    names = {cls.__name__ for cls in hook.exception_tree()}
    assert {"ClustrixError", "HostKeyError", "JobLostError", "UsageError"} <= names
    without = errors_page.replace("### `JobLostError`", "### JobLost")
    with pytest.raises(PluginError, match="JobLostError"):
        hook.check_errors_page(without)


# -- docstrings and descriptions --------------------------------------------------------------
def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in clustrix.__all__:
        if name in DATA_NAMES:
            continue
        obj = getattr(clustrix, name)
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if not (doc or "").strip():
            missing.append(name)
    assert not missing, f"public names without a docstring of their own: {missing}"


def _parameters_of(fn: Any) -> list[str]:
    """Parameter names of `fn` other than self/cls, stars kept for *args/**kwargs."""
    names = []
    for param in inspect.signature(fn).parameters.values():
        if param.name in ("self", "cls"):
            continue
        stars = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        names.append(stars + param.name)
    return names


def _public_callables() -> Iterator[tuple[str, Any]]:
    """Every callable of ``clustrix.__all__`` and the public methods clustrix defines."""
    for name in sorted(set(clustrix.__all__) - DATA_NAMES):
        obj = getattr(clustrix, name)
        if not inspect.isclass(obj):
            yield name, obj
            continue
        for attr in dir(obj):
            if attr.startswith("_") or attr in FRAMEWORK_HOOKS:
                continue
            owner = next(k for k in obj.__mro__ if attr in k.__dict__)
            if not owner.__module__.startswith("clustrix") or issubclass(owner, BaseException):
                continue  # inherited from pydantic, Enum, Exception, object...
            member = owner.__dict__[attr]
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property) or not callable(member):
                continue
            yield f"{name}.{attr}", member


def test_public_callables_document_their_arguments() -> None:
    undocumented = {}
    for name, fn in _public_callables():
        params = _parameters_of(fn)
        if not params:
            continue
        doc = inspect.getdoc(fn) or ""
        if "Args:" not in doc:
            undocumented[name] = ["Args:", *params]
            continue
        section = doc[doc.index("Args:") :]
        missing = [p for p in params if not re.search(rf"\b{p.lstrip('*')}\b", section)]
        if missing:
            undocumented[name] = missing
    assert not undocumented, f"document these arguments (Google style): {undocumented}"


def test_every_config_field_has_a_description() -> None:
    missing = [n for n, f in ClusterConfig.model_fields.items() if not (f.description or "")]
    assert not missing, f"add descriptions to clustrix/_config_fields.py for: {missing}"
    assert ClusterConfig.model_json_schema()["properties"]["cluster_type"]["description"]


# -- code blocks ----------------------------------------------------------------------------
def test_the_pages_that_must_run_have_runnable_blocks() -> None:
    pages = {s.page for s in snippets() if s.kind == "run"}
    assert pages >= MUST_RUN, f"no docs-test run block on: {sorted(MUST_RUN - pages)}"
    assert {s.lab for s in snippets() if s.lab} == {"ssh", "slurm", "sge", "pbs"}


@pytest.mark.parametrize(("page", "flavour", "codes"), grouped("config"))
def test_config_blocks_are_valid(
    page: str, flavour: str | None, codes: list[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    values = lab_values(request.getfixturevalue("lab"), flavour) if flavour else {}
    for number, code in enumerate(codes):
        path = tmp_path / f"config{number}.yml"
        path.write_text(substitute(code, values, page), encoding="utf-8")
        config = ClusterConfig(config_file=path)
        if flavour:
            assert config.cluster_type == flavour
            assert config.cluster_host == values["LAB_HOST"]


@dataclass
class Run:
    process: subprocess.Popen[str]
    remote_dir: Path | None  # the lab user's run area of this script, removed afterwards


def lab_or_none() -> dict[str, Any] | None:
    """The lab's description when it is up (the `lab` fixture decides skip or fail)."""
    if os.environ.get("CLUSTRIX_LAB_STATUS") not in (None, "up") or not LAB_JSON.is_file():
        return None
    data: dict[str, Any] = json.loads(LAB_JSON.read_text())
    return data if data.get("ok") else None


@pytest.fixture(scope="module")
def block_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every page's script, started AT ONCE (each waits mostly for its cluster)."""
    lab = lab_or_none()
    base = tmp_path_factory.mktemp("doc-blocks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTRIX_")}
    env["HOME"] = str(base / "home")  # no user config file, records kept apart
    (base / "home").mkdir()
    runs: dict[str, Run] = {}
    for param in grouped("run"):
        page, flavour, codes = param.values
        if flavour and lab is None:
            continue
        values, run_env, remote = {}, dict(env), None
        if flavour:
            values = lab_values(lab, flavour)  # type: ignore[arg-type]
            name = f".clustrix-docs-{secrets.token_hex(4)}"
            remote = Path(lab["home"]) / name  # type: ignore[index]
            # the pages leave remote_work_dir at its default; each script gets its own
            run_env["CLUSTRIX_REMOTE_WORK_DIR"] = f"~/{name}"
        work = base / param.id.replace("/", "_")
        work.mkdir()
        script = work / "blocks.py"
        script.write_text(substitute("\n".join(codes), values, page), encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=work,
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs[param.id] = Run(process, remote)
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.communicate()
        if run.remote_dir is not None:
            shutil.rmtree(run.remote_dir, ignore_errors=True)


@pytest.mark.parametrize(("page", "flavour", "codes"), grouped("run"))
def test_code_blocks_run(
    page: str,
    flavour: str | None,
    codes: list[str],
    request: pytest.FixtureRequest,
    block_runs: dict[str, Run],
) -> None:
    if flavour:
        request.getfixturevalue("lab")  # skips, or fails in CI, when the lab is not up
    run = block_runs.get(request.node.callspec.id)
    if run is None:  # not started: the lab is not up (CLUSTRIX_LAB_STATUS, lab.json)
        message = f"{page} needs the test lab ({flavour}), which is not up"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        stdout, stderr = run.process.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGINT cancels the script's asyncio task, and with it its jobs on the cluster
        run.process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = run.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            run.process.kill()
            stdout, stderr = run.process.communicate()
        pytest.fail(f"the code of {page} did not finish in {BLOCK_TIMEOUT} s:\n{stdout}\n{stderr}")
    assert run.process.returncode == 0, (
        f"the code of {page} ({flavour or 'local'}) failed:\n{stdout}\n{stderr}"
    )
    assert stdout.strip(), f"the code of {page} printed nothing"
