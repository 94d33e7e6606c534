"""MkDocs hook: pages generated from the code at build time, and checks that fail the build.

* ``configuration.md``: the marker ``<!-- generated: config-reference -->`` is replaced by
  a table of every `ClusterConfig` field (type, default, environment variable, meaning),
  grouped as the fields are in ``clustrix/_config.py``. The meaning is the field's
  description (``clustrix/_config_fields.py``); a field without one fails the build.
* ``errors.md``: every exception class of clustrix's tree must have its own heading
  (`` ### `Name` ``); one that has none fails the build.

Run by ``mkdocs build`` / ``mkdocs serve`` (``hooks:`` in mkdocs.yml); no plugin needed.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

CONFIG_MARKER = "<!-- generated: config-reference -->"


# -- configuration reference --------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    """A reader's name for a field's type."""
    from clustrix._config import MemoryString, TimeString

    if annotation == MemoryString:
        return 'memory string (`"4GB"`)'
    if annotation == TimeString:
        return 'time string (`"HH:MM:SS"`)'
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f'`"{a}"`' for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = len(names) < len(args)
        return " or ".join(names) + (" or None" if optional else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping {_type_name(args[0])} → {_type_name(args[1])}"
    names = {str: "str", int: "int", float: "float", bool: "bool", Path: "path"}
    if annotation in names:
        return names[annotation]
    if getattr(annotation, "__name__", "") == "SecretStr":
        return "secret str"
    return getattr(annotation, "__name__", str(annotation))


def _annotated(field: Any) -> Any:
    """The declared type: pydantic moves a bare ``Annotated``'s metadata to the field."""
    from clustrix._config import MemoryString, TimeString

    for alias in (MemoryString, TimeString):
        if any(item in field.metadata for item in typing.get_args(alias)[1:]):
            return alias
    return field.annotation


def _constraints(field: Any) -> str:
    marks = []
    for item in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                marks.append(f"{sign} {value}")
    return f" ({', '.join(marks)})" if marks else ""


def _default(field: Any) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "None"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _groups(cls: type) -> dict[str, str]:
    """Field name -> the ``# comment`` heading it is declared under in the class body."""
    groups, current = {}, "Other"
    # The class's own module (clustrix re-exports it with __module__ = "clustrix").
    source = inspect.getsource(importlib.import_module("clustrix._config"))
    body = source.split(f"\nclass {cls.__name__}(", 1)[1].split("\n\n\n", 1)[0]
    for line in body.splitlines():
        comment = re.match(r"^    # (.+)$", line)
        if comment:
            current = comment.group(1).split("(")[0].strip().rstrip(";:")
            continue
        declared = re.match(r"^    (\w+): ", line)
        if declared:
            groups[declared.group(1)] = current
    return groups


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "&#124;")  # a bare | would split the cell


def config_reference() -> str:
    """The Markdown of the configuration reference; fails if a field is undocumented."""
    from clustrix import ClusterConfig
    from clustrix._config import _ALIASES

    fields = ClusterConfig.model_fields
    missing = [name for name, field in fields.items() if not (field.description or "").strip()]
    if missing:
        raise PluginError(
            "ClusterConfig field(s) without a description: "
            + ", ".join(missing)
            + " — add one to clustrix/_config_fields.py (the configuration reference is "
            "generated from it)"
        )
    groups = _groups(ClusterConfig)
    out: list[str] = []
    current = None
    for name, field in fields.items():
        group = groups.get(name, "Other")
        if group != current:
            current = group
            out += ["", f"## {group[:1].upper()}{group[1:]}", ""]
            out += ["| field | type | default | meaning |", "|---|---|---|---|"]
        env = f"CLUSTRIX_{name.upper()}"
        kind = _type_name(_annotated(field)) + _constraints(field)
        out.append(
            f"| `{name}`<br>`{env}` | {_cell(kind)} | {_default(field)} "
            f"| {_cell(field.description or '')} |"
        )
    out += ["", "## Aliases", ""]
    out += [f"* `{alias}` is accepted for `{name}`." for alias, name in sorted(_ALIASES.items())]
    return "\n".join(out) + "\n"


# -- errors reference ----------------------------------------------------------------------
def exception_tree() -> list[type[BaseException]]:
    """Every exception class of clustrix: ClustrixError and all its subclasses."""
    import clustrix
    from clustrix import ClustrixError

    seen: list[type[BaseException]] = []
    todo: list[type[BaseException]] = [ClustrixError]
    while todo:
        cls = todo.pop(0)
        if cls not in seen and cls.__module__.startswith("clustrix"):
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    for name in clustrix.__all__:
        obj = getattr(clustrix, name)
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj not in seen:
            seen.append(obj)
    return seen


def check_errors_page(markdown: str) -> None:
    """Fail unless every exception of the tree has a ``### `Name` `` heading."""
    headings = set(re.findall(r"^###\s+`(\w+)`", markdown, flags=re.MULTILINE))
    missing = [cls.__name__ for cls in exception_tree() if cls.__name__ not in headings]
    if missing:
        raise PluginError(
            "docs/errors.md does not document: " + ", ".join(missing) + " (add a heading "
            "`### `Name`` with when it is raised and what to do)"
        )


# -- the MkDocs event ----------------------------------------------------------------------
def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the generated parts and run the checks of the pages that have them."""
    source = page.file.src_uri
    if source == "configuration.md":
        if CONFIG_MARKER not in markdown:
            raise PluginError(f"configuration.md lost its marker {CONFIG_MARKER}")
        return markdown.replace(CONFIG_MARKER, config_reference())
    if source == "errors.md":
        check_errors_page(markdown)
    return markdown
