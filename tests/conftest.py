"""Shared fixtures: every test runs with an isolated configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import clustrix
from clustrix import _config


@pytest.fixture(autouse=True)
def isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A private HOME and working directory, no CLUSTRIX_* variables, no /etc file."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for name in list(os.environ):
        if name.startswith("CLUSTRIX_"):
            monkeypatch.delenv(name)
    real_search_path = _config.search_path
    monkeypatch.setattr(
        _config,
        "search_path",
        lambda: [p for p in real_search_path() if not str(p).startswith("/etc/")],
    )
    clustrix.reset_config()
    yield work
    clustrix.reset_config()
