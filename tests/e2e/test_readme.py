"""The README's example outputs are what really prints (issue 9).

Each ``print(...)`` line of a README snippet carries the output as its comment; the
snippet runs here (after the README's first snippet, which defines ``simulate``) on
the local backend and each printed line must match. In a comment, a run of digits
stands for any number (a pid, a job id) and a ``(...)`` after two spaces is prose.
"""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def expected_outputs(snippet: str) -> list[re.Pattern[str]]:
    patterns = []
    for line in snippet.splitlines():
        code, _, comment = line.partition("#")
        if code.strip().startswith("print(") and comment:
            shown = comment.strip().split("  (")[0].strip()
            patterns.append(re.compile(re.sub(r"\d+", r"\\d+", re.escape(shown)) + r"\Z"))
    return patterns


async def run(snippet: str, namespace: dict[str, object]) -> None:
    code = compile(snippet, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    outcome = types.FunctionType(code, namespace)()
    if outcome is not None:
        await outcome


@pytest.mark.filterwarnings("ignore:simulate asks for 8 cores")
async def test_every_printed_output_in_the_readme_is_what_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = snippets()
    printing = [block for block in blocks if expected_outputs(block)]
    assert printing, "the README shows no outputs any more: drop this test"
    namespace: dict[str, object] = {"__name__": "readme"}
    await run(blocks[0], namespace)  # defines simulate (and runs it)
    for block in printing:
        capsys.readouterr()
        await run(block, namespace)
        printed = capsys.readouterr().out.splitlines()
        expected = expected_outputs(block)
        assert len(printed) == len(expected), (printed, block)
        for line, pattern in zip(printed, expected, strict=True):
            assert pattern.match(line), f"README says {pattern.pattern!r}, it prints {line!r}"
